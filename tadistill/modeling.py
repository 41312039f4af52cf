"""Loading language models and turning (prompt, target) pairs into token tensors.

Every model goes through ``from_pretrained(name_or_path)``: a local folder, a hub name on
a machine that reaches the hub, or 'synthetic' (resolved to the embedded models' cache).
Decoder-only (causal) models are the default; an encoder-decoder student (the T5 family of
the distillation literature) is recognised from its config and handled by the same
functions: the prompt goes to the encoder and the target is the decoder's labels.
Training, sampling, scoring and evaluation share these encoders, so the tokens a model is
trained on are exactly the tokens it is later scored on.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Optional

import torch

IGNORE_INDEX = -100


def load_tokenizer(path: str, chat_template: bool = True):
    """The model's tokenizer. chat_template: prompts go through the tokenizer's chat template,
    when it has one (an instruct model, as users hold it), as one user turn; see encode_prompt."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        # Many causal LMs ship no pad token; padding positions are masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.tadistill_chat = bool(chat_template and getattr(tokenizer, "chat_template", None))
    return tokenizer


def uses_chat(tokenizer) -> bool:
    return bool(getattr(tokenizer, "tadistill_chat", False))


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """Where generation ends: the tokenizer's end of sequence (for chat models, the end of the
    assistant's turn) and whatever else the model's generation config names."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for token in configured if isinstance(configured, list) else [configured]:
        if token is not None and token not in ids:
            ids.append(token)
    return ids


def is_seq2seq_path(path: str) -> bool:
    from transformers import AutoConfig

    return bool(getattr(AutoConfig.from_pretrained(path), "is_encoder_decoder", False))


def is_seq2seq(model) -> bool:
    model = getattr(model, "module", model)  # DDP and DeepSpeed wrap the model
    return bool(getattr(model.config, "is_encoder_decoder", False))


def load_model(path: str, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    kind = AutoModelForSeq2SeqLM if is_seq2seq_path(path) else AutoModelForCausalLM
    return kind.from_pretrained(path, dtype=dtype)


@dataclass
class Encoded:
    input_ids: list[int]
    # Causal: aligned with input_ids, IGNORE_INDEX on the prompt. Seq2seq: the decoder's
    # target ids alone.
    labels: list[int]
    seq2seq: bool = False


def encode_pair(tokenizer, prompt: str, target: str, max_length: int, add_eos: bool = True,
                seq2seq: bool = False, given: str = "") -> Encoded:
    """The loss only on target tokens, truncated on the right to max_length.

    Causal: [bos] prompt given target [eos] in one sequence, `given` the start of the answer
    that is read, not learnt (a verifier reads an output and learns only its verdict).
    Seq2seq (no `given`): prompt [eos] for the encoder, target [eos] for the decoder, each within max_length.
    """
    chat = uses_chat(tokenizer)  # the assistant's turn starts on its own line: no separating space
    if chat:
        given, target = (given.lstrip(), target) if given else ("", target.lstrip())
    given_ids = tokenizer(given, add_special_tokens=False)["input_ids"] if given else []
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        target_ids = target_ids + [tokenizer.eos_token_id]
    if seq2seq:
        if given_ids:
            raise ValueError("a read-not-learnt start of the answer (given) needs a decoder-only model")
        return Encoded(encode_prompt(tokenizer, prompt, seq2seq=True)[:max_length], target_ids[:max_length], True)
    prompt_ids = encode_prompt(tokenizer, prompt)
    ids = (prompt_ids + given_ids + target_ids)[:max_length]
    labels = ([IGNORE_INDEX] * (len(prompt_ids) + len(given_ids)) + target_ids)[:max_length]
    return Encoded(ids, labels)


def encode_prompt(tokenizer, prompt: str, seq2seq: bool = False) -> list[int]:
    """Token ids of a prompt: through the chat template as one user turn, up to the start of the
    assistant's answer (load_tokenizer decides), else [bos] prompt."""
    if uses_chat(tokenizer) and not seq2seq:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if seq2seq:  # T5-style encoders read "text </s>"
        return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return prefix + ids


def _pad_right(rows: list[list[int]], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    values = torch.full((len(rows), width), fill, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        values[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return values, mask


def collate_right(encoded: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch for teacher forcing; padding is masked and never a label."""
    ids, mask = _pad_right([e.input_ids for e in encoded], pad_id)
    labels, _ = _pad_right([e.labels for e in encoded], IGNORE_INDEX)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def collate_left(prompts: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for generation, so every row's next token is at the end."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return {"input_ids": ids, "attention_mask": mask}


def per_example_token_logprobs(model, batch: dict[str, torch.Tensor],
                               with_min: bool = False) -> tuple[torch.Tensor, ...]:
    """Sum of target-token log-probabilities and the target-token count, per example (and, with
    with_min, the least likely target token's log-probability)."""
    if is_seq2seq(model):
        # The model shifts the labels into decoder inputs itself; logits line up with labels.
        shifted_logits = model(**batch).logits.float()
        shifted_labels = batch["labels"]
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shifted_logits = logits[:, :-1, :].float()
        shifted_labels = batch["labels"][:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    logprobs = torch.log_softmax(shifted_logits, dim=-1)
    picked = logprobs.gather(-1, shifted_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    picked = picked * mask
    if with_min:
        return picked.sum(dim=1), mask.sum(dim=1), picked.min(dim=1).values  # masked positions count as 0
    return picked.sum(dim=1), mask.sum(dim=1)


CONFIDENCES = ("mean", "min", "sum")


def confidence_of(token_logprobs, kind: str = "mean") -> float:
    """A model's confidence in a text from its tokens' log-probabilities: 'mean', exp(mean
    log-prob), length-normalised (the paper's); 'min', the least likely token's probability,
    which one slipped step in a long chain cannot hide behind many easy tokens; 'sum', the
    text's whole log-probability (not a probability: log p(a + b) - log p(a) is log p(b | a))."""
    values = [float(v) for v in token_logprobs]
    if kind == "sum":
        return sum(values)
    if not values:
        return 0.0
    if kind == "min":
        return math.exp(min(values))
    if kind == "mean":
        return math.exp(sum(values) / len(values))
    raise ValueError(f"unknown confidence {kind!r}; one of {', '.join(CONFIDENCES)}")


def weighted_lm_loss(model, batch: dict[str, torch.Tensor], weights: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over examples of weight x mean target-token cross-entropy.

    Divided by the number of examples, not the sum of weights, so a weight of 0 removes an
    example exactly and a batch of low-trust outputs moves the model less.
    """
    logprob_sum, counts = per_example_token_logprobs(model, batch)
    per_example = -logprob_sum / counts.clamp(min=1)
    if weights is None:
        weights = torch.ones_like(per_example)
    return (weights * per_example).sum() / per_example.numel()

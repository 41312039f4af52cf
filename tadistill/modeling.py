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
from typing import Callable, Optional

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
    # Where the target's answer starts, as an index into labels (its tokens run from there to the
    # end, eos included), when the row's weight scales only the answer; None: the whole target.
    answer_from: Optional[int] = None


def encode_pair(tokenizer, prompt: str, target: str, max_length: int, add_eos: bool = True,
                seq2seq: bool = False, given: str = "", answer_start: Optional[int] = None) -> Encoded:
    """The loss only on target tokens, truncated on the right to max_length.

    Causal: [bos] prompt given target [eos] in one sequence, `given` the start of the answer
    that is read, not learnt (a verifier reads an output and learns only its verdict).
    Seq2seq (no `given`): prompt [eos] for the encoder, target [eos] for the decoder, each within max_length.
    answer_start: the character in target where its answer starts; the first token that reaches
    past it starts the answer's tokens (Encoded.answer_from).
    """
    chat = uses_chat(tokenizer)  # the assistant's turn starts on its own line: no separating space
    stripped = 0
    if chat:
        stripped = 0 if given else len(target) - len(target.lstrip())
        given, target = (given.lstrip(), target) if given else ("", target.lstrip())
    given_ids = tokenizer(given, add_special_tokens=False)["input_ids"] if given else []
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    answer_token = None if answer_start is None else _first_token_after(tokenizer, target, answer_start - stripped)
    if add_eos and tokenizer.eos_token_id is not None:
        target_ids = target_ids + [tokenizer.eos_token_id]
    if seq2seq:
        if given_ids:
            raise ValueError("a read-not-learnt start of the answer (given) needs a decoder-only model")
        return Encoded(encode_prompt(tokenizer, prompt, seq2seq=True)[:max_length], target_ids[:max_length], True,
                       answer_token)
    prompt_ids = encode_prompt(tokenizer, prompt)
    ids = (prompt_ids + given_ids + target_ids)[:max_length]
    labels = ([IGNORE_INDEX] * (len(prompt_ids) + len(given_ids)) + target_ids)[:max_length]
    answer_from = None if answer_token is None else len(prompt_ids) + len(given_ids) + answer_token
    return Encoded(ids, labels, answer_from=answer_from)


def _first_token_after(tokenizer, text: str, start: int) -> int:
    """The index of text's first token that ends past character `start` (a token straddling it,
    ' The' with its space, belongs to what starts there); len(tokens) when none does."""
    if start <= 0:
        return 0
    if not getattr(tokenizer, "is_fast", False):  # no offsets: the tokens of what comes before
        return len(tokenizer(text[:start], add_special_tokens=False)["input_ids"])
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return next((i for i, (_, end) in enumerate(offsets) if end > start), len(offsets))


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


def answer_token_weights(encoded: list[Encoded], weights: list[float]) -> torch.Tensor:
    """Per label position of collate_right's batch: each row's weight from its answer's first
    token on (Encoded.answer_from; the whole row without one), 1 before it, on the rationale."""
    per_token = torch.ones((len(encoded), max(len(e.labels) for e in encoded)), dtype=torch.float32)
    for row, (example, weight) in enumerate(zip(encoded, weights)):
        per_token[row, example.answer_from or 0:] = weight
    return per_token


def loss_weights(encoded: list[Encoded], weights: list[float]) -> torch.Tensor:
    """weighted_lm_loss's weights for a batch: one per row, or one per label position where the
    rows weigh only their answers (they carry answer_from)."""
    if any(e.answer_from is not None for e in encoded):
        return answer_token_weights(encoded, weights)
    return torch.tensor(weights, dtype=torch.float32)


def _aligned_with_predictions(model, per_label: torch.Tensor) -> torch.Tensor:
    """A per-label tensor shifted as the labels are against the logits (a causal model predicts
    label t + 1 at position t)."""
    return per_label if is_seq2seq(model) else per_label[:, 1:]


def target_token_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each target token's log-probability (0 where there is no target) and the mask of target
    tokens, aligned with the model's predictions."""
    if is_seq2seq(model):
        # The model shifts the labels into decoder inputs itself; logits line up with labels.
        shifted_logits = model(**batch).logits.float()
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shifted_logits = logits[:, :-1, :].float()
    shifted_labels = _aligned_with_predictions(model, batch["labels"])
    mask = shifted_labels != IGNORE_INDEX
    logprobs = torch.log_softmax(shifted_logits, dim=-1)
    picked = logprobs.gather(-1, shifted_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def per_example_token_logprobs(model, batch: dict[str, torch.Tensor],
                               with_min: bool = False) -> tuple[torch.Tensor, ...]:
    """Sum of target-token log-probabilities and the target-token count, per example (and, with
    with_min, the least likely target token's log-probability)."""
    picked, mask = target_token_logprobs(model, batch)
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


def weighted_lm_loss(model, batch: dict[str, torch.Tensor], weights: Optional[torch.Tensor],
                     token_loss: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Mean over examples of weight x mean target-token loss: cross-entropy (-log p), or what
    token_loss makes of each token's log-probability (train/losses.py).

    weights: one per example, or one per label position (answer_token_weights: a row's trust on its
    answer's tokens alone), each token's loss then weighted before the example's mean.
    Divided by the number of examples, not the sum of weights, so a weight of 0 removes an
    example exactly and a batch of low-trust outputs moves the model less.
    """
    logprobs, mask = target_token_logprobs(model, batch)
    losses = -logprobs if token_loss is None else token_loss(logprobs) * mask
    if weights is not None and weights.dim() == 2:
        losses, weights = losses * _aligned_with_predictions(model, weights), None
    per_example = losses.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    if weights is None:
        weights = torch.ones_like(per_example)
    return (weights * per_example).sum() / per_example.numel()

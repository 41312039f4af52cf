"""Loading causal LMs and turning (prompt, target) pairs into token tensors.

Every model goes through ``from_pretrained(name_or_path)``: a local folder, a hub name on
a machine that reaches the hub, or 'synthetic' (resolved to the embedded models' cache).
Training, sampling, scoring and evaluation share these encoders, so the tokens a model is
trained on are exactly the tokens it is later scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

IGNORE_INDEX = -100


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        # Many causal LMs ship no pad token; padding positions are masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt, token ids on the target


def encode_pair(tokenizer, prompt: str, target: str, max_length: int, add_eos: bool = True) -> Encoded:
    """[bos] prompt target [eos], with the loss only on target tokens; truncated on the right."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        target_ids = target_ids + [tokenizer.eos_token_id]
    ids = (prompt_ids + target_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_length]
    return Encoded(ids, labels)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return prefix + tokenizer(prompt, add_special_tokens=False)["input_ids"]


def collate_right(encoded: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch for teacher forcing; padding is masked and never a label."""
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
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


def per_example_token_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of target-token log-probabilities and the target-token count, per example."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = batch["labels"][:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    logprobs = torch.log_softmax(shifted_logits, dim=-1)
    picked = logprobs.gather(-1, shifted_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    picked = picked * mask
    return picked.sum(dim=1), mask.sum(dim=1)


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

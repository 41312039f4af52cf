"""The optimisation step both training stages (and the synthetic model builder) share."""

from __future__ import annotations

import math
import random
from typing import Callable, Iterable, Optional, Sequence

import torch

from ..modeling import collate_right, encode_pair, is_seq2seq, weighted_lm_loss


def lr_factor(step: int, warmup: int, total_steps: int) -> float:
    """Linear warm-up over `warmup` steps, then a linear decay to 10% of the peak.

    The warm-up matters when fine-tuning: a fresh AdamW's first updates move every
    parameter by about the full learning rate and knock a trained model off course.
    """
    warmup = max(1, warmup)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return max(0.1, 1.0 - 0.9 * progress)


def make_optimizer(model, lr: float, weight_decay: float, total_steps: int):
    """AdamW with lr_factor's schedule (10% warm-up), for training in this process."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = total_steps // 10
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total_steps))


def rows_to_batch(tokenizer, prompts: Sequence[str], targets: Sequence[str], max_length: int, seq2seq: bool = False):
    encoded = [encode_pair(tokenizer, p, t, max_length, seq2seq=seq2seq) for p, t in zip(prompts, targets)]
    return collate_right(encoded, tokenizer.pad_token_id)


def train_step(model, optimizer, scheduler, batch, weights: Optional[torch.Tensor], max_grad_norm: float = 1.0) -> float:
    model.train()
    loss = weighted_lm_loss(model, batch, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def fit_local(
    model,
    tokenizer,
    rows: list[dict],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_length: int = 160,
    weight_decay: float = 0.01,
    on_epoch: Optional[Callable[[int, float], None]] = None,
) -> list[float]:
    """Train in this process on rows with 'prompt', 'target' and optional 'weight'.

    Used where a cluster would be overkill: building the embedded synthetic models once.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    optimizer, scheduler = make_optimizer(model, lr, weight_decay, steps_per_epoch * epochs)
    losses = []
    order = list(range(len(rows)))
    for epoch in range(epochs):
        rng.shuffle(order)
        epoch_losses = []
        for start in range(0, len(order), batch_size):
            chunk = [rows[i] for i in order[start:start + batch_size]]
            batch = rows_to_batch(tokenizer, [r["prompt"] for r in chunk], [r["target"] for r in chunk], max_length,
                                  seq2seq=is_seq2seq(model))
            weights = torch.tensor([float(r.get("weight", 1.0)) for r in chunk])
            epoch_losses.append(train_step(model, optimizer, scheduler, batch, weights))
        losses.extend(epoch_losses)
        if on_epoch:
            on_epoch(epoch, sum(epoch_losses) / len(epoch_losses))
    return losses


def iterate_chunks(items: Iterable, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

"""Training in this process, for what needs no cluster (building the synthetic models).

The optimisation itself is the stages' engine (engines.DDPEngine on one process), so there is one
optimizer, schedule, clipping and loss; only the epoch loop over a list of rows lives here."""

from __future__ import annotations

import math
import random
from typing import Callable, Optional, Sequence

import torch

from ..modeling import collate_right, encode_pair, is_seq2seq


def rows_to_batch(tokenizer, prompts: Sequence[str], targets: Sequence[str], max_length: int, seq2seq: bool = False,
                  givens: Optional[Sequence[str]] = None):
    givens = givens or [""] * len(prompts)
    encoded = [encode_pair(tokenizer, p, t, max_length, seq2seq=seq2seq, given=g)
               for p, t, g in zip(prompts, targets, givens)]
    return collate_right(encoded, tokenizer.pad_token_id)


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
    """Train in this process on rows with 'prompt', 'target' and optional 'weight' and 'given' (the
    start of the answer that is read, not learnt).

    Used where a cluster would be overkill: building the embedded synthetic models once.
    """
    from ..config import TrainConfig
    from .engines import DDPEngine

    torch.manual_seed(seed)
    rng = random.Random(seed)
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    # The stages' engine, on one process: the same optimizer, schedule, clipping and loss.
    config = TrainConfig(global_batch_size=batch_size, micro_batch_size=batch_size, num_workers=1, lr=lr,
                         weight_decay=weight_decay)
    engine = DDPEngine(model, config, steps_per_epoch * epochs, torch.device("cpu"), world_size=1)
    seq2seq = is_seq2seq(model)
    losses = []
    order = list(range(len(rows)))
    for epoch in range(epochs):
        rng.shuffle(order)
        epoch_losses = []
        for start in range(0, len(order), batch_size):
            chunk = [rows[i] for i in order[start:start + batch_size]]
            batch = rows_to_batch(tokenizer, [r["prompt"] for r in chunk], [r["target"] for r in chunk], max_length,
                                  seq2seq=seq2seq, givens=[r.get("given", "") for r in chunk])
            epoch_losses.append(engine.micro_step(batch, torch.tensor([float(r.get("weight", 1.0)) for r in chunk])))
            engine.finish_step()
        losses.extend(epoch_losses)
        if on_epoch:
            on_epoch(epoch, sum(epoch_losses) / len(epoch_losses))
    return losses

"""Which rows each worker trains on at each step: a pure function of the seed and the step.

Every epoch has one global order (a seeded permutation of all rows), cut into global batches
of ``global_batch_size``; each global batch is cut into ``num_workers x accumulation``
micro-batches and a worker takes its own. So:

- the rows of optimizer step g are the same on 1 worker or 8 (with the same global batch),
  which makes the loss curve independent of the cluster's size;
- the position in the data is just the step counter: a resumed run picks up at exactly the
  next micro-batch, with nothing to replay and nothing skipped.

The last global batch of an epoch is filled up from the start of the same epoch's order (as
torch's DistributedSampler pads), so every row is seen at least once per epoch and every
worker runs the same number of steps (collectives would hang otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchPlan:
    num_rows: int
    global_batch_size: int
    micro_batch_size: int
    world_size: int
    seed: int

    def __post_init__(self):
        if self.num_rows < 1:
            raise ValueError("a batch plan needs at least one row")
        if self.global_batch_size % (self.micro_batch_size * self.world_size):
            raise ValueError("global_batch_size must be a multiple of micro_batch_size x world_size")

    @property
    def accumulation_steps(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.world_size)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_rows / self.global_batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
        padded = self.steps_per_epoch * self.global_batch_size
        # Tiny data sets can need the order repeated more than once to fill one batch.
        return np.resize(order, padded)

    def micro_batches(self, order: np.ndarray, step_in_epoch: int, rank: int) -> list[np.ndarray]:
        """Row indices of this worker's micro-batches for one optimizer step, in order."""
        start = step_in_epoch * self.global_batch_size
        batch = order[start:start + self.global_batch_size]
        chunks = batch.reshape(self.accumulation_steps, self.world_size, self.micro_batch_size)
        return [chunks[a, rank] for a in range(self.accumulation_steps)]

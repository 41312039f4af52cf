"""The batch plan: which rows each worker trains on at each step."""

import numpy as np
import pytest

from tadistill.train.batch_plan import BatchPlan


def _step_rows(plan: BatchPlan, epoch: int, step: int) -> list[int]:
    order = plan.epoch_order(epoch)
    return sorted(int(i) for rank in range(plan.world_size) for mb in plan.micro_batches(order, step, rank) for i in mb)


@pytest.mark.parametrize("num_rows", [1, 7, 48, 50])
def test_a_global_batch_holds_the_same_rows_on_any_number_of_workers(num_rows):
    one = BatchPlan(num_rows, 16, 4, 1, seed=3)    # 4 micro-batches accumulated
    two = BatchPlan(num_rows, 16, 4, 2, seed=3)    # 2 per worker
    four = BatchPlan(num_rows, 16, 4, 4, seed=3)   # 1 per worker
    assert one.steps_per_epoch == two.steps_per_epoch == four.steps_per_epoch
    for epoch in range(3):
        for step in range(one.steps_per_epoch):
            assert _step_rows(one, epoch, step) == _step_rows(two, epoch, step) == _step_rows(four, epoch, step)


def test_every_row_is_seen_every_epoch_and_the_order_changes():
    plan = BatchPlan(50, 16, 8, 2, seed=0)
    seen = [set(np.concatenate([_step_rows(plan, e, s) for s in range(plan.steps_per_epoch)]).tolist()) for e in range(2)]
    assert seen[0] == seen[1] == set(range(50))
    assert not np.array_equal(plan.epoch_order(0), plan.epoch_order(1))
    # The last batch is topped up from the same epoch's order: 4 steps of 16 rows.
    assert plan.steps_per_epoch == 4 and len(plan.epoch_order(0)) == 64


def test_workers_get_disjoint_equal_micro_batches():
    plan = BatchPlan(64, 32, 4, 2, seed=1)
    order = plan.epoch_order(0)
    mine = [np.concatenate(plan.micro_batches(order, 1, rank)) for rank in range(2)]
    assert len(mine[0]) == len(mine[1]) == 16 and not set(mine[0]) & set(mine[1])
    assert all(len(mb) == 4 for mb in plan.micro_batches(order, 1, 0))


def test_the_plan_is_a_pure_function_of_seed_and_step():
    assert np.array_equal(BatchPlan(30, 8, 4, 2, 5).epoch_order(2), BatchPlan(30, 8, 4, 2, 5).epoch_order(2))
    assert not np.array_equal(BatchPlan(30, 8, 4, 2, 5).epoch_order(2), BatchPlan(30, 8, 4, 2, 6).epoch_order(2))


def test_batch_sizes_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        BatchPlan(10, 12, 4, 2, 0)

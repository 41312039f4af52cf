"""Load: 10,000 questions through the run's teacher calls and TA scoring on a local Ray
cluster (bench/load drives a real `tadistill run`), every step's rows counted from its files,
and the driver's memory compared with a run a tenth the size.

The final training is capped at the same 20 optimizer steps at both sizes: what grows with the
rows here is the purchase and the scoring (the training set of 10,000 rows is still written and
counted); a pass over it would add minutes of CI and measure nothing more of the driver."""

import pytest

from bench.load.bench import run_size

from .conftest import free_port

pytestmark = pytest.mark.slow

TRAIN_STEPS = 20


def test_ten_thousand_questions_lose_no_row_and_keep_the_drivers_memory_flat(synthetic_models, tmp_path):
    small = run_size(1000, tmp_path, http_port=free_port(), train_steps=TRAIN_STEPS)
    large = run_size(10_000, tmp_path, http_port=free_port(), train_steps=TRAIN_STEPS)
    for run in (small, large):
        n = run["questions"]
        assert run["rows"] == {"pool": n, "picked": n, "teacher_outputs": n, "teacher_unique_ids": n,
                               "ta_scored": n, "trust_unique_ids": n, "trained": n}
    print(f"peak RSS, 1,000 -> 10,000 questions: driver {small['peak_rss_driver_mb']} -> "
          f"{large['peak_rss_driver_mb']} MB, all processes {small['peak_rss_all_processes_mb']} -> "
          f"{large['peak_rss_all_processes_mb']} MB")
    # Ten times the rows: the models and the requests live in Ray's workers and Serve replicas, so
    # the driver grows only by the step output tables it writes (a few MB at 10,000 rows).
    assert large["peak_rss_driver_mb"] < 1.25 * small["peak_rss_driver_mb"]

"""A committee's round in a whole run (in the driver's process, at the smallest size): members
trained on resamples of the warm-up sample every candidate, the round buys where they disagree,
and the manifest and the report say what was measured."""

import json

import pandas as pd

from tadistill.config import load_config
from tadistill.pipeline import run_pipeline

from ..conftest import tiny_run


def test_the_round_buys_where_students_trained_on_resamples_disagree_and_says_so(ray_local, recorded_teacher, tmp_path):
    run = tmp_path / "run"
    ctx = run_pipeline(load_config(None, tiny_run(run, recorded_teacher, "committee_none", "budget.requests=40",
                                                   "selection.committee_size=3")))
    ran = [s["step"] for s in ctx.step_log]
    assert "round1.select" in ran and not any(s.endswith((".sample", ".score")) or s == "round1.train" for s in ran)
    select = json.loads((run / "manifest.json").read_text())["steps"]["round1.select"]
    chosen = pd.read_parquet(run / "round1" / "question_signals.parquet")
    # A warm-up of 12 (30% of 40); three members, each sampling every candidate inference.num_samples (2) times.
    assert select["committee_members"] == 3 and select["committee_samples"] == 3 * 2 * len(chosen)
    assert select["committee"].startswith("3 students on bootstrap resamples of 12 bought outputs disagree on ")
    assert chosen["committee_disagreement"].ge(0).all()
    bought, passed = chosen[chosen["selected"]], chosen[~chosen["selected"]]
    assert len(bought) == 28 and bought["committee_disagreement"].min() >= passed["committee_disagreement"].max()
    assert not list(run.glob("committee-*"))  # the members are scratch
    report = (run / "report.md").read_text()
    assert "## Why these questions were bought" in report and "- round 1: 3 students on bootstrap" in report

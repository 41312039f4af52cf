"""The plan checks itself: each step runs with a view of the run directory that allows only the
artifacts it declares (rundir.StepView), so the declarations plan.py orders and fingerprints the
run by cannot drift from what the steps do."""

import dataclasses
import json

import pandas as pd
import pytest

from tadistill.artifacts import ANSWERS, BOUGHT, METRICS, MODEL, ROWS, TRUSTED, model, round_name
from tadistill.config import load_config
from tadistill.methods import METHODS
from tadistill.plan import plan
from tadistill.rundir import RunDir, StepView, UndeclaredArtifact

from .conftest import tiny_run

FRAME = pd.DataFrame({c: [] for c in ROWS.columns})


def test_a_step_may_touch_only_what_it_declares_and_the_error_names_both(tmp_path):
    view = StepView(RunDir(tmp_path))
    view.write_table(ROWS, FRAME)  # outside a step: the whole run directory
    with view.running("evaluate", reads=(model("final"),), writes=(ANSWERS,)):
        assert view.location(model("final")) == tmp_path / "final" / "model"
        with pytest.raises(UndeclaredArtifact, match="step evaluate reads corpus/rows.parquet, which its "
                                                     "declaration in plan.py does not name"):
            view.read_table(ROWS)
        with pytest.raises(UndeclaredArtifact, match="step evaluate writes corpus/rows.parquet"):
            view.write_table(ROWS, FRAME)
        with pytest.raises(UndeclaredArtifact, match="step evaluate writes final/model"):
            view.location(model("final"), write=True)  # declared as read, not as written
    assert len(view.read_table(ROWS)) == 0  # the step ended: the whole run directory again


DEFAULT_PICK = ("none", "full")


def test_every_method_runs_its_plan_under_the_enforcing_view(ray_local, recorded_teacher, tmp_path):
    """Every registered method, end to end at the smallest size, in one run directory so the steps
    methods agree on run once; every step that runs is held to its declaration."""
    from tadistill.pipeline import run_pipeline
    from tadistill.services import Services

    run_dir, ran = tmp_path / "run", set()
    services = Services(load_config(None, tiny_run(run_dir, recorded_teacher, "none")))
    try:
        for name in METHODS:
            # The default final pick reads the probe (13 candidates answer it: seconds a method); two
            # methods, one purchase and rounds, hold its declaration to it, the rest keep the last weights.
            pick = [] if name in DEFAULT_PICK else ["train.final_pick=last"]
            config = load_config(None, tiny_run(run_dir, recorded_teacher, name, *pick))
            ctx = run_pipeline(config, services)
            ran |= {entry["step"] for entry in ctx.step_log if entry["status"] == "ran"}
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["method"] == name and 0 <= summary["accuracy"] <= 1, name
            final = json.loads((run_dir / "manifest.json").read_text())["steps"].get("final.train")
            assert final is None or ("final_pick" in final) == (not pick), name  # the default picked on the probe
    finally:
        services.shutdown()
    # What ran is every kind of step a method has: purchases, rounds, trust, training, the report.
    assert {"corpus", "warmup.pick", "warmup.buy", "calibrate_trust", "round1.train", "round1.sample",
            "round1.score", "round1.select", "round1.buy", "round1.trust", "warmup.trust", "final.train",
            "evaluate", "report"} <= ran


def test_a_step_that_reads_an_artifact_it_does_not_declare_stops_the_run_naming_both(
        ray_local, recorded_teacher, tmp_path, monkeypatch):
    """A plan whose evaluate step forgot that it reads the corpus: the run stops at that step."""
    import tadistill.pipeline as pipeline

    def forgetful(config):
        steps = plan(config)
        evaluate = next(s for s in steps if s.name == "evaluate")
        steps.steps[steps.steps.index(evaluate)] = dataclasses.replace(
            evaluate, reads=tuple(a for a in evaluate.reads if a != ROWS))
        return steps

    monkeypatch.setattr(pipeline, "plan", forgetful)
    with pytest.raises(UndeclaredArtifact, match="step evaluate reads corpus/rows.parquet"):
        pipeline.run_pipeline(load_config(None, tiny_run(tmp_path / "run", recorded_teacher, "base")))


def test_the_built_plan_alone_says_what_the_run_holds():
    """Purchases, the final student's trust table and the trained students come from the plan's
    steps (what the report and the export read), not from a second reading of the config."""
    full = plan(load_config(None, ["method=full", "budget.rounds=2"]))
    assert [a.of for a in full.written(BOUGHT)] == ["warmup", "round1", "round2"]
    assert full.final_source().kind == TRUSTED and full.final_source().of == round_name(2)
    assert [a.of for a in full.written(MODEL)] == ["round1", "round2", "final"]
    assert [a.of for a in full.written(METRICS)] == ["round1", "round2", "final"]
    none = plan(load_config(None, ["method=none"]))
    assert none.final_source().kind == BOUGHT and [a.of for a in none.written(BOUGHT)] == ["warmup"]
    assert plan(load_config(None, ["method=base"])).final_source() is None
    report = {s.name: s for s in full}["report"]
    assert {str(a) for a in full.written(BOUGHT)} <= {str(a) for a in report.reads}
    assert report.every_invocation and "round2/trust.parquet" in {str(a) for a in report.reads}

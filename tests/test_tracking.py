"""One tracker run per tadistill run, with what compares methods: a real run against a local
MLflow store, W&B offline and TensorBoard event files."""

import json
from pathlib import Path

import pytest

from tadistill.config import ConfigError, load_config
from tadistill.config import choices
from tadistill.tracking import Sink


def _mlflow_runs(run_dir):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tadistill")
    return client, client.search_runs([experiment.experiment_id])


def test_a_run_is_one_tracker_run_with_its_settings_results_and_both_curves(ray_local, small_config,
                                                                              monkeypatch):
    from tadistill.pipeline import run_pipeline

    monkeypatch.setenv("WANDB_SILENT", "true")
    config = small_config("method=full", "train.launcher=local", "inference.launcher=local",
                          "train.tracking.backends=[mlflow,wandb,tensorboard]", "train.tracking.wandb_mode=offline",
                          "train.tracking.log_model=true")
    run_pipeline(config)
    run_dir = Path(config.run_dir)
    facts = json.loads((run_dir / "summary.json").read_text())
    assert {"accuracy", "requests_used", "selection_picked", "trust_ta_auroc"} <= set(facts)

    client, runs = _mlflow_runs(run_dir)
    (run,) = runs
    assert run.data.params["method"] == "full" and run.data.params["budget"] == "40"
    assert run.data.metrics["accuracy"] == pytest.approx(facts["accuracy"])
    assert run.data.metrics["trust_ta_auroc"] == pytest.approx(facts["trust_ta_auroc"])
    for stage in ("round1", "final"):
        steps = json.loads((run_dir / stage / "metrics.json").read_text())["step_losses"]
        history = sorted(client.get_metric_history(run.info.run_id, f"{stage}.loss"), key=lambda m: m.step)
        assert [m.value for m in history] == pytest.approx(steps)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["model"]
    assert list((run_dir / "mlflow-artifacts").rglob("model/config.json"))  # kept in the run directory

    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert json.loads((run_dir / "tracking.json").read_text())["wandb"] in offline.name
    assert list((run_dir / "tensorboard").glob("full-run/events.out.tfevents.*"))

    # The same command again (every step finished; the report is written anew): the same tracker run.
    run_pipeline(config)
    _, again = _mlflow_runs(run_dir)
    assert [r.info.run_id for r in again] == [run.info.run_id]
    # W&B offline writes each invocation's part in a folder of its own, under the run's one id
    # (`wandb sync` joins them into one run).
    assert {p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")} == {offline.name.rsplit("-", 1)[1]}


def test_every_registered_tracker_is_a_choice_and_a_missing_package_is_refused_on_load(monkeypatch):
    assert choices.names("train.tracking.backends") == ("tensorboard", "mlflow", "wandb")
    for name in choices.names("train.tracking.backends"):
        sink = choices.load("train.tracking.backends", name)
        assert issubclass(sink, Sink) and sink.name == name
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"train.tracking.backends.*pip install 'tadistill\[wandb\]'"):
        load_config(None, ["train.tracking.backends=[mlflow,wandb]"])

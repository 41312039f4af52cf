"""One experiment-tracker run per tadistill run: TensorBoard, MLflow or Weights & Biases.

The driver holds it, so a run's method, budget and settings, its teacher spend, the signals'
and the TA's AUROCs, the selection, the test accuracy and every trained student's curves land in
one tracker run (grouped by `train.tracking.project`), where runs of different methods compare
side by side. The run ids are kept in the run directory (`tracking.json`): a resumed run
continues its tracker run instead of starting another. Each backend is one class here and
its line in the config's choice table (config/choices.py: its name and package), its package
imported only when used; asking for one that is not installed fails when the config loads, with
the pip command.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from .config import choices

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

STATE_FILE = "tracking.json"


class Sink:
    """One backend's run. `resume`: the id this run directory's earlier invocation used."""

    name: ClassVar[str]  # its train.tracking.backends name, the key of its run id in tracking.json

    def __init__(self, config: "Config", run_dir: Path, run_name: str, params: dict, resume: Optional[str]):
        raise NotImplementedError

    run_id: Optional[str] = None

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def result(self, facts: dict[str, float]) -> None: ...

    def model(self, folder: Path) -> None: ...

    def close(self) -> None: ...


class TensorBoard(Sink):
    name = "tensorboard"

    def __init__(self, config, run_dir, run_name, params, resume):
        from tensorboardX import SummaryWriter

        folder = config.train.tracking.tensorboard_dir or str(run_dir / "tensorboard")
        self.writer = SummaryWriter(logdir=f"{folder}/{run_name}")
        self.writer.add_text("params", "\n".join(f"    {k}: {v}" for k, v in params.items()))

    def log(self, metrics, step):
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def result(self, facts):
        for key, value in facts.items():
            self.writer.add_scalar(f"result/{key}", value, 0)

    def close(self):
        self.writer.close()


class MLflow(Sink):
    name = "mlflow"

    def __init__(self, config, run_dir, run_name, params, resume):
        from mlflow.tracking import MlflowClient

        tracking = config.train.tracking
        self.client = MlflowClient(tracking_uri=tracking.mlflow_tracking_uri or f"sqlite:///{run_dir / 'mlflow.db'}")
        if resume:
            self.run_id = resume
            return
        # The default local store keeps artifacts beside it (MLflow's default is ./mlruns, wherever
        # the command ran); a tracking server decides for itself.
        artifacts = None if tracking.mlflow_tracking_uri else (run_dir / "mlflow-artifacts").as_uri()
        experiment = self.client.get_experiment_by_name(tracking.project)
        experiment_id = (experiment.experiment_id if experiment
                         else self.client.create_experiment(tracking.project, artifact_location=artifacts))
        self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                             tags={"tadistill.method": params["method"]}).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, value)

    def log(self, metrics, step):
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key.replace("/", "."), value, step=step)

    def result(self, facts):
        for key, value in facts.items():
            self.client.log_metric(self.run_id, key, value)

    def model(self, folder):
        self.client.log_artifacts(self.run_id, str(folder), artifact_path="model")

    def close(self):
        self.client.set_terminated(self.run_id)


class WandB(Sink):
    name = "wandb"

    def __init__(self, config, run_dir, run_name, params, resume):
        import wandb

        tracking = config.train.tracking
        self.wandb = wandb
        self.run = wandb.init(project=tracking.project, name=run_name, id=resume, resume="allow" if resume else None,
                              mode=tracking.wandb_mode, dir=str(run_dir), config=params, group=params["method"],
                              reinit="create_new", settings=wandb.Settings(console="off", silent=True))
        self.run_id = self.run.id
        self._stages: set[str] = set()

    def log(self, metrics, step):
        stage = next(iter(metrics)).split("/")[0]
        if stage not in self._stages:  # each student's curve along its own optimizer steps
            self.run.define_metric(f"{stage}/step", hidden=True)
            self.run.define_metric(f"{stage}/*", step_metric=f"{stage}/step")
            self._stages.add(stage)
        self.run.log({**metrics, f"{stage}/step": step})

    def result(self, facts):
        self.run.summary.update(facts)

    def model(self, folder):
        artifact = self.wandb.Artifact(f"{self.run.name}-model", type="model")
        artifact.add_dir(str(folder))
        self.run.log_artifact(artifact)

    def close(self):
        self.run.finish()


def run_params(config: "Config") -> dict[str, Any]:
    """What tells runs apart in a tracker's table."""
    return {
        "method": config.method, "budget": config.budget.requests, "warmup_share": config.budget.warmup_share,
        "rounds": config.rounds,
        "teacher": config.teacher.source, "teacher_model": config.teacher.model or "",
        "student": config.models.student, "ta": config.models.ta, "selection": config.selection.strategy,
        "trust_mode": config.trust.mode, "trust_scale": config.trust.scale, "seed": config.seed,
        "train_strategy": config.train.strategy, "train_lr": config.train.lr, "train_epochs": config.train.epochs,
        "train_schedule": config.train.schedule, "run_dir": str(config.run_dir),
    }


class RunTracker:
    """The run's tracker runs, one per configured backend, opened on first use."""

    def __init__(self, config: "Config", run_dir: Path):
        self.config, self.run_dir = config, Path(run_dir).resolve()
        self.backends = list(config.train.tracking.backends)
        self._sinks: Optional[list[Sink]] = None

    def _open(self) -> list[Sink]:
        """The sinks, opened on first use (none when no backend is configured)."""
        if self._sinks is None:
            self._sinks = self._start() if self.backends else []
        return self._sinks

    def _start(self) -> list[Sink]:
        """One sink per backend, continuing the runs this run directory's tracking.json names."""
        state_path = self.run_dir / STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        run_name = f"{self.config.method}-{self.run_dir.name}"
        params = run_params(self.config)
        sinks = [choices.load("train.tracking.backends", b)(self.config, self.run_dir, run_name, params, state.get(b)) for b in self.backends]
        state.update({s.name: s.run_id for s in sinks if s.run_id})
        state_path.write_text(json.dumps(state, indent=2) + "\n")
        return sinks

    def stage_curve(self, stage: str, losses: list[float], lrs: list[float]) -> None:
        """A training stage's loss and learning rate at each of its optimizer steps."""
        for sink in self._open():
            for step, (loss, lr) in enumerate(zip(losses, lrs), start=1):
                sink.log({f"{stage}/loss": loss, f"{stage}/lr": lr}, step)

    def result(self, facts: dict[str, Any], model: Optional[Path] = None) -> None:
        """The run's numbers (summary.json), and the output model when train.tracking.log_model."""
        numbers = {k: float(v) for k, v in facts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for sink in self._open():
            sink.result(numbers)
            if model is not None and self.config.train.tracking.log_model:
                sink.model(model)

    def close(self) -> None:
        for sink in self._sinks or []:
            try:
                sink.close()
            except Exception:  # a tracker that cannot close must not fail a finished run
                log.warning("closing the %s tracker run failed", sink.name, exc_info=True)
        self._sinks = None

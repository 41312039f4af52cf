"""Training curves to TensorBoard, MLflow or Weights & Biases, from rank 0 of a stage.

MLflow and W&B go through Ray Train's own integrations (``setup_mlflow`` / ``setup_wandb``,
which know about ranks and Ray's runtime); TensorBoard through tensorboardX, which Ray's
TensorBoard support uses too. Each backend's package is an optional install: asking for one
that is missing fails at the start of the stage with the pip command, not after an hour.
"""

from __future__ import annotations

from typing import Any

from ..config import TrackingConfig

PACKAGES = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}


def check_installed(config: TrackingConfig) -> None:
    import importlib.util

    missing = [b for b in config.backends if importlib.util.find_spec(PACKAGES[b]) is None]
    if missing:
        raise ImportError(
            f"train.tracking.backends needs {', '.join(PACKAGES[b] for b in missing)}: "
            f"pip install 'tadistill[{','.join(missing)}]'"
        )


class Tracker:
    """Logs metrics by optimizer step to every configured backend; a no-op off rank 0."""

    def __init__(self, config: TrackingConfig, run_name: str, dirs: dict[str, str], params: dict[str, Any],
                 active: bool):
        """dirs: 'tensorboard' (log folder), 'mlflow' (tracking URI), 'wandb' (local run folder)."""
        self._sinks: list[Any] = []
        if not active:
            return
        if "tensorboard" in config.backends:
            from tensorboardX import SummaryWriter

            self._sinks.append(_TensorBoard(SummaryWriter(logdir=f"{dirs['tensorboard']}/{run_name}")))
        if "mlflow" in config.backends:
            from ray.air.integrations.mlflow import setup_mlflow

            mlflow = setup_mlflow(
                config=params, tracking_uri=dirs["mlflow"], experiment_name=config.project,
                run_name=run_name, create_experiment_if_not_exists=True,
            )
            self._sinks.append(_MLflow(mlflow))
        if "wandb" in config.backends:
            import os

            from ray.air.integrations.wandb import setup_wandb

            if config.wandb_mode == "offline":
                os.environ["WANDB_MODE"] = "offline"  # how Ray's setup knows not to ask for a key
            os.makedirs(dirs["wandb"], exist_ok=True)
            run = setup_wandb(config=params, project=config.project, name=run_name, mode=config.wandb_mode,
                              dir=dirs["wandb"])
            self._sinks.append(_WandB(run))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for sink in self._sinks:
            sink.log(metrics, step)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()


class _TensorBoard:
    def __init__(self, writer):
        self.writer = writer

    def log(self, metrics, step):
        for key, value in metrics.items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def close(self):
        self.writer.close()


class _MLflow:
    def __init__(self, mlflow):
        self.mlflow = mlflow

    def log(self, metrics, step):
        self.mlflow.log_metrics(metrics, step=step)

    def close(self):
        self.mlflow.end_run()


class _WandB:
    def __init__(self, run):
        self.run = run

    def log(self, metrics, step):
        self.run.log(metrics, step=step)

    def close(self):
        self.run.finish()

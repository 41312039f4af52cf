"""One training stage on Ray Train's `TorchTrainer`, DeepSpeed or DDP inside.

The driver hands the stage's rows to the workers as a Ray Data dataset (``worker.py``
tokenises them), and copies the final model out of the run's storage
into the run directory. The Ray Train run is named after the stage and a fingerprint of
its inputs (rows, starting model, train config), so rerunning an interrupted stage resumes
from its latest checkpoint, while a stage whose inputs changed starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import ray

from ..config import TrainConfig


def stage_columns(rows: pd.DataFrame) -> list[str]:
    """What the workers learn from: prompt, target, weight, and `answer_start` where trust weighs
    only each target's answer (trust.mode 'answer_weight')."""
    return ["prompt", "target", "weight"] + (["answer_start"] if "answer_start" in rows.columns else [])


def stage_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The stage's rows with their position, which the batch plan indexes."""
    frame = rows[stage_columns(rows)].reset_index(drop=True)
    return frame.assign(row=frame.index, weight=frame["weight"].astype("float32"))


def stage_fingerprint(rows: pd.DataFrame, init_model: str, config: TrainConfig, chat_template: bool = True) -> str:
    digest = hashlib.sha256()
    if not chat_template:  # (the default leaves earlier fingerprints, and so resumable runs, as they were)
        digest.update(b"no-chat-template")
    digest.update(pd.util.hash_pandas_object(rows[stage_columns(rows)], index=False).values.tobytes())
    digest.update(_model_identity(init_model).encode())
    # Tracking and checkpoint cadence do not change what is learnt. The default loss leaves out both loss keys
    # (gce_q means nothing to it), so earlier fingerprints, and so resumable runs, stay as they were.
    ignored = {"tracking", "checkpoint_every_steps", "checkpoints_to_keep", "max_failures", "storage_path"}
    ignored.add("final_pick")  # which kept weights end as the student: chosen after training, from the same run
    ignored |= {"loss", "gce_q"} if config.loss == "nll" else set()
    digest.update(json.dumps(config.model_dump(exclude=ignored), sort_keys=True).encode())
    return digest.hexdigest()[:10]


def _model_identity(path: str) -> str:
    """A local folder by its files' names, sizes and times (a round student is rewritten in
    place when its step reruns); a hub name by itself."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    return path + "|" + "|".join(f"{f.relative_to(folder)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def train_stage(
    rows: pd.DataFrame,
    init_model: str,
    config: TrainConfig,
    storage_path: str | Path,
    name: str,
    model_out: Path,
    chat_template: bool = True,
) -> dict:
    """Train on rows (prompt, target, weight) starting from init_model; save the model to model_out.
    chat_template: prompts through the model's chat template, as sampling and scoring do."""
    if len(rows) == 0:
        raise ValueError(f"training stage {name!r} has no rows to train on")
    run_name = f"{name}-{stage_fingerprint(rows, init_model, config, chat_template)}"
    from .worker import StageSpec

    stage = StageSpec(init_model=init_model, train=config, run_name=run_name, chat_template=chat_template)
    started = time.time()
    if config.launcher == "local":
        with _display(name) as on_step:
            metrics, final = _train_locally(rows, stage, Path(storage_path) / run_name, on_step)
        _copy_folder(final, model_out)
    else:
        with _display(name) as on_step, _progress_actor(on_step) as progress:
            result = _fit_on_ray_train(rows, stage, storage_path, progress)
        if result.checkpoint is None:
            raise RuntimeError(f"training stage {name!r} finished without a checkpoint (see {storage_path}/{run_name})")
        with result.checkpoint.as_directory() as folder:  # downloads it from s3:// if need be
            _copy_folder(Path(folder), model_out)
        metrics = dict(result.metrics)
    return _stage_metrics(metrics, rows, config, started, f"{storage_path}/{run_name}")


@contextmanager
def _display(name: str):
    """A progress display for the stage (steps, loss, ETA); yields the per-step callback."""
    from ..console import progress

    with progress(0, f"training {name}", "step") as bar:
        def on_step(step: int, total: int, loss: float) -> None:
            bar.total = total
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.3f}")

        yield on_step


@ray.remote(num_cpus=0)
class StageProgress:
    """Where rank 0 of a Ray Train run posts each optimizer step, for the driver's display."""

    def __init__(self):
        self.latest = None

    def update(self, step: int, total: int, loss: float) -> None:
        self.latest = (step, total, loss)

    def get(self):
        return self.latest


@contextmanager
def _progress_actor(on_step):
    """A StageProgress actor for the workers, read twice a second into on_step."""
    import threading

    from ..services import on_drivers_node

    actor = StageProgress.options(scheduling_strategy=on_drivers_node()).remote()
    stop = threading.Event()

    def poll():
        seen = None
        while not stop.wait(0.5):
            try:
                latest = ray.get(actor.get.remote(), timeout=5)
            except Exception:  # a display must never stop a run
                continue
            if latest is not None and latest != seen:
                on_step(*latest)
                seen = latest

    reader = threading.Thread(target=poll, daemon=True, name="training-progress")
    reader.start()
    try:
        yield actor
    finally:
        stop.set()
        reader.join(timeout=5)
        ray.kill(actor)


def _train_locally(rows: pd.DataFrame, stage, folder: Path, on_step=None):
    import torch

    from .worker import FINAL_DIR, LocalSession, run_training

    config = stage.train
    device = torch.device("cuda" if config.use_gpu and torch.cuda.is_available() else "cpu")
    session = LocalSession(stage_frame(rows), folder, config.checkpoints_to_keep, device, on_step)
    run_training(session, stage)
    return session.metrics, folder / FINAL_DIR


def _fit_on_ray_train(rows, stage, storage_path, progress=None):
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from .worker import train_loop_per_worker

    config, run_name = stage.train, stage.run_name
    trainer = _stoppable(TorchTrainer)(
        train_loop_per_worker,
        train_loop_config={"stage": stage, "progress": progress},
        scaling_config=ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu,
            resources_per_worker={"CPU": config.cpus_per_worker}, placement_strategy=config.placement_strategy,
        ),
        run_config=RunConfig(
            name=run_name, storage_path=str(storage_path),
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoints_to_keep),
            failure_config=FailureConfig(max_failures=config.max_failures),
        ),
        datasets={"train": ray.data.from_pandas(stage_frame(rows))},
        # Each worker gets every row and picks its micro-batches by the batch plan: the loss
        # curve then depends on the global batch, not on how many workers share it.
        dataset_config=DataConfig(datasets_to_split=[]),
    )
    try:
        return trainer.fit()
    except KeyboardInterrupt:
        trainer.abandon()
        raise


def _stoppable(trainer_cls):
    """The trainer without Ray Train's Ctrl-C handler, which turns a stop into a "graceful abort"
    that ends as a training failure and stays installed after `fit`: Ctrl-C and SIGTERM raise in
    the driver as in every step (interrupt.py), and the run's training is then ended at once. On a
    cluster the run joined, its controller and workers are killed (they die with their owner);
    a local Ray goes down with the run anyway."""

    class Stoppable(trainer_cls):
        _controller = None

        def _register_sigint_handler(self, controller):  # Ray Train's hook, called inside fit()
            self._controller = controller

        def abandon(self) -> None:
            if self._controller is not None:
                try:
                    ray.kill(self._controller, no_restart=True)
                except Exception:  # already gone: nothing left to stop
                    pass

    return Stoppable


def _stage_metrics(metrics: dict, rows: pd.DataFrame, config: TrainConfig, started: float, run_path: str) -> dict:
    return {
        "seconds": round(time.time() - started, 1),
        "final_loss": metrics.get("loss"),
        "tokens_per_s": metrics.get("tokens_per_s"),
        "tokens": metrics.get("tokens"),
        "train_seconds": metrics.get("train_seconds"),
        "steps": metrics.get("step"),
        "resumed_at": metrics.get("resumed_at", []),
        "step_losses": metrics.get("step_losses", []),
        "step_lrs": metrics.get("step_lrs", []),
        "rows": len(rows),
        "workers": config.num_workers,
        "strategy": config.strategy if config.strategy == "ddp" else f"deepspeed-zero{config.deepspeed.zero_stage}",
        "launcher": config.launcher,
        "ray_train_run": run_path,
    }


def _copy_folder(folder: Path, model_out: Path) -> None:
    """Copy the exported model into the run directory, atomically."""
    from .worker import TRAINER_STATE

    staging = model_out.with_name(model_out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(TRAINER_STATE))
    if model_out.exists():
        shutil.rmtree(model_out)
    staging.rename(model_out)

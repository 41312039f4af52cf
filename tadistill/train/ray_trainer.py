"""One training stage on Ray Train `TorchTrainer`: DDP over gloo on CPU workers.

Each worker reads its shard of the stage's rows (prompt, target, weight) from Ray Data,
optimises the weighted loss, and rank 0 reports the final model as a Ray Train
checkpoint under the run's storage path; the caller moves it into the run directory.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import ray

from ..config import TrainConfig


def _train_loop_per_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from ..modeling import load_model, load_tokenizer
    from .loop import make_optimizer, rows_to_batch, train_step

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(loop_config["seed"])
    tokenizer = load_tokenizer(loop_config["init_model"])
    model = ray.train.torch.prepare_model(load_model(loop_config["init_model"]))
    per_worker_rows = math.ceil(loop_config["num_rows"] / world)
    steps_per_epoch = math.ceil(per_worker_rows / loop_config["batch_size"])
    optimizer, scheduler = make_optimizer(
        model, loop_config["lr"], loop_config["weight_decay"], steps_per_epoch * loop_config["epochs"]
    )
    shard = ray.train.get_dataset_shard("train")
    losses, tokens_seen, started = [], 0, time.time()
    for epoch in range(loop_config["epochs"]):
        epoch_losses = []
        for rows in shard.iter_batches(
            batch_size=loop_config["batch_size"], batch_format="pandas",
            local_shuffle_buffer_size=4 * loop_config["batch_size"], local_shuffle_seed=loop_config["seed"] + epoch,
        ):
            batch = rows_to_batch(tokenizer, list(rows["prompt"]), list(rows["target"]), loop_config["max_length"])
            weights = torch.tensor(rows["weight"].to_numpy(), dtype=torch.float32)
            epoch_losses.append(train_step(model, optimizer, scheduler, batch, weights))
            tokens_seen += int(batch["attention_mask"].sum())
        losses.extend(epoch_losses)
        metrics = {
            "epoch": epoch + 1,
            "loss": sum(epoch_losses) / max(1, len(epoch_losses)),
            "lr": scheduler.get_last_lr()[0],
            "tokens_per_s": tokens_seen * world / max(1e-9, time.time() - started),
        }
        if epoch + 1 < loop_config["epochs"]:
            ray.train.report(metrics)
            continue
        # Last epoch: rank 0 saves the unwrapped model; every rank reports (Train requires it).
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                unwrapped = model.module if hasattr(model, "module") else model
                unwrapped.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({**metrics, "step_losses": losses}, checkpoint=checkpoint)


def train_stage(
    rows: pd.DataFrame,
    init_model: str,
    config: TrainConfig,
    storage_path: Path,
    name: str,
    model_out: Path,
) -> dict:
    """Train on rows (prompt, target, weight) starting from init_model; save to model_out."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if len(rows) == 0:
        raise ValueError(f"training stage {name!r} has no rows to train on")
    dataset = ray.data.from_pandas(rows[["prompt", "target", "weight"]].reset_index(drop=True))
    trainer = TorchTrainer(
        _train_loop_per_worker,
        train_loop_config={
            "init_model": init_model,
            "num_rows": len(rows),
            "batch_size": config.batch_size,
            "epochs": config.epochs,
            "lr": config.lr,
            "weight_decay": config.weight_decay,
            "max_length": config.max_length,
            "seed": config.seed,
        },
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.use_gpu,
            resources_per_worker={"CPU": config.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage_path),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
        datasets={"train": dataset},
    )
    started = time.time()
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training stage {name!r} finished without a checkpoint (see {storage_path / name})")
    with result.checkpoint.as_directory() as folder:
        staging = model_out.with_name(model_out.name + ".tmp")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(folder, staging)
        if model_out.exists():
            shutil.rmtree(model_out)
        staging.rename(model_out)
    metrics = dict(result.metrics)
    return {
        "seconds": round(time.time() - started, 1),
        "final_loss": metrics.get("loss"),
        "tokens_per_s": metrics.get("tokens_per_s"),
        "step_losses": metrics.get("step_losses", []),
        "rows": len(rows),
        "workers": config.num_workers,
    }

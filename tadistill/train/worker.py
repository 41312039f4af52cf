"""The loop every Ray Train worker runs for one training stage.

It loads the stage's tokenised rows from Ray Data, follows the batch plan (``batch_plan.py``),
drives the configured engine (``engines.py``), and reports through ``ray.train.report``:
a resumable checkpoint every ``checkpoint_every_steps`` optimizer steps and at each epoch
end, and at the very end the trained model as a plain Hugging Face folder.

A resumable checkpoint holds the engine's state (weights, optimizer, schedule), each rank's
random-number state and ``trainer_state.json`` (the optimizer step reached and the losses so
far). The step is the whole data position, since the plan is a pure function of it. After a
lost worker, Ray Train restarts the group and every rank carries on from the latest
checkpoint; after a lost driver, a rerun of the same stage finds it in the run's storage.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from ..config import TrainConfig

TRAINER_STATE = "trainer_state.json"
FINAL_DIR = "model_final"


class StageSpec(BaseModel):
    """What one training stage's workers are told: validated where it is built, pickled whole to
    every worker (Ray Train's loop config carries it under "stage")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init_model: str
    train: TrainConfig
    run_name: str
    chat_template: bool = True  # prompts as sampling and scoring see them (inference.chat_template)


class RayTrainSession:
    """What the loop needs from Ray Train: its rank, its rows, the latest checkpoint, report."""

    def __init__(self, progress=None):
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()
        self._progress = progress if self.rank == 0 else None  # the driver's StageProgress actor

    def step_done(self, step: int, total: int, loss: float) -> None:
        if self._progress is not None:
            self._progress.update.remote(step, total, loss)  # not awaited: the display may lag, training never

    def batches(self):
        import ray.train

        return ray.train.get_dataset_shard("train").iter_batches(batch_size=4096, batch_format="pandas")

    def checkpoint(self):
        """A context manager giving the latest checkpoint's folder, or None."""
        import ray.train

        found = ray.train.get_checkpoint()
        return None if found is None else _as_path(found.as_directory())

    def report(self, metrics: dict, folder: Path | None, name: str | None = None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if folder is not None else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)


class LocalSession:
    """The same contract in the caller's process: one rank, checkpoints in a local folder."""

    def __init__(self, frame, folder: Path, keep: int, device, on_step=None):
        self.rank, self.world, self.device = 0, 1, device
        self.frame, self.folder, self.keep = frame, Path(folder), keep
        self.metrics: dict = {}
        self.on_step = on_step
        self.folder.mkdir(parents=True, exist_ok=True)

    def step_done(self, step: int, total: int, loss: float) -> None:
        if self.on_step is not None:
            self.on_step(step, total, loss)

    def batches(self):
        yield self.frame

    def checkpoint(self):
        latest = self.folder / "latest.json"
        if not latest.exists():
            return None
        return contextlib.nullcontext(self.folder / json.loads(latest.read_text())["name"])

    def report(self, metrics: dict, folder: Path | None, name: str | None = None) -> None:
        self.metrics = metrics
        if folder is None:
            return
        target = self.folder / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target)
        (self.folder / "latest.json").write_text(json.dumps({"name": name}))
        for old in sorted(self.folder.glob("step_*"))[:-self.keep] if name.startswith("step_") else []:
            shutil.rmtree(old)


@contextlib.contextmanager
def _as_path(directory_context):
    with directory_context as folder:
        yield Path(folder)


def train_loop_per_worker(loop_config: dict) -> None:
    """The Ray Train entry point (Ray Train's loop config is a dict; the stage rides in it whole)."""
    run_training(RayTrainSession(loop_config.get("progress")), loop_config["stage"])


def run_training(session, stage: StageSpec) -> None:
    from ..modeling import is_seq2seq_path, load_tokenizer
    from .batch_plan import BatchPlan

    config = stage.train
    rank, world = session.rank, session.world
    tokenizer = load_tokenizer(stage.init_model, stage.chat_template)
    seq2seq = is_seq2seq_path(stage.init_model)
    rows = _load_rows(session.batches(), tokenizer, config.max_length, seq2seq)
    plan = BatchPlan(len(rows["row"]), config.global_batch_size, config.micro_batch_size, world, config.seed)
    # A fixed step count (the fair schedule) cycles through the rows as epochs of the same plan.
    total_steps = config.steps or plan.steps_per_epoch * config.epochs

    state = {"step": 0, "losses": [], "lrs": [], "resumed_at": [], "tokens": 0, "seconds": 0.0}
    checkpoint = session.checkpoint()
    # One opening of the checkpoint (from s3:// it is a download) serves state, weights and RNG.
    with checkpoint if checkpoint is not None else contextlib.nullcontext() as folder:
        if folder is not None:
            state = json.loads((folder / TRAINER_STATE).read_text())
            if state.get("done"):
                # The run had finished; only its last report was lost. Report the same again.
                session.report(_final_metrics(state), None)
                return
        torch.manual_seed(config.seed)  # the same adapter initialisation on every rank
        engine = _build_engine(stage, total_steps, world, session.device)
        _seed_everything(config.seed, rank)
        if folder is not None:
            engine.load_state(folder)
            _load_rng(folder, rank)
            state["resumed_at"].append(state["step"])
    _run(engine, plan, rows, config, state, total_steps, session)
    state["done"] = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine.export(folder, tokenizer, rank)
        (folder / TRAINER_STATE).write_text(json.dumps(state))
        session.report(_final_metrics(state), folder if rank == 0 else None, FINAL_DIR)


def _run(engine, plan, rows, config, state, total_steps, session) -> None:
    rank, world = session.rank, session.world
    order, order_epoch = None, -1
    started, tokens_at_start = time.time(), state["tokens"]
    seconds_before = state["seconds"]
    for step in range(state["step"], total_steps):
        epoch, in_epoch = divmod(step, plan.steps_per_epoch)
        if epoch != order_epoch:
            order, order_epoch = plan.epoch_order(epoch), epoch
        losses, tokens = [], 0
        for indices in plan.micro_batches(order, in_epoch, rank):
            batch, weights = _collate(rows, indices, engine.device)
            losses.append(engine.micro_step(batch, weights))
            tokens += int(batch["attention_mask"].sum())
        engine.finish_step()
        loss, tokens = _all_mean_and_sum(float(np.mean(losses)), tokens, engine.device, world)
        state["step"] = step + 1
        state["losses"].append(loss)
        state["lrs"].append(engine.lr)
        state["tokens"] += tokens
        state["seconds"] = seconds_before + time.time() - started
        session.step_done(step + 1, total_steps, loss)
        end_of_epoch = in_epoch == plan.steps_per_epoch - 1
        every = config.checkpoint_every_steps
        if step + 1 < total_steps and (end_of_epoch or (every and (step + 1) % every == 0)):
            _report_checkpoint(engine, state, session, epoch, tokens_at_start, started)


def _report_checkpoint(engine, state, session, epoch, tokens_at_start, started) -> None:
    seconds = max(1e-9, time.time() - started)
    metrics = {
        "step": state["step"], "epoch": epoch + 1, "loss": state["losses"][-1], "lr": state["lrs"][-1],
        "tokens_per_s": (state["tokens"] - tokens_at_start) / seconds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine.save_state(folder, session.rank)
        _save_rng(folder, session.rank)
        if session.rank == 0:
            (folder / TRAINER_STATE).write_text(json.dumps(state))
        session.report(metrics, folder, f"step_{state['step']:07d}")


def _final_metrics(state: dict) -> dict:
    return {
        "step": state["step"], "loss": state["losses"][-1] if state["losses"] else None,
        "lr": state["lrs"][-1] if state["lrs"] else None,
        "tokens_per_s": state["tokens"] / max(1e-9, state["seconds"]),
        "tokens": state["tokens"], "train_seconds": state["seconds"],
        "step_losses": state["losses"], "step_lrs": state["lrs"], "resumed_at": state["resumed_at"],
        "done": True,
    }


def _build_engine(stage: StageSpec, total_steps: int, world: int, device):
    from ..modeling import load_model
    from .engines import apply_lora, make_engine

    model = apply_lora(load_model(stage.init_model), stage.train)
    return make_engine(model, stage.train, total_steps, device, world)


def _load_rows(batches, tokenizer, max_length: int, seq2seq: bool) -> dict[str, list]:
    """Every worker holds the stage's rows, tokenised: the plan needs random access by row.

    Token ids are small (a 100k-row stage of 200 tokens is ~160 MB per worker), and
    tokenising here costs less than the start of a separate Ray Data tokenising stage.
    """
    from ..modeling import encode_pair

    rows: dict[str, list] = {"row": [], "encoded": [], "weight": []}
    for batch in batches:
        rows["row"].extend(batch["row"].tolist())
        rows["weight"].extend(batch["weight"].tolist())
        # Where each target's answer starts, when trust weighs only the answer (trust.mode 'answer_weight').
        starts = batch["answer_start"].tolist() if "answer_start" in batch.columns else [None] * len(batch)
        rows["encoded"].extend(encode_pair(tokenizer, p, t, max_length, seq2seq=seq2seq, answer_start=s)
                               for p, t, s in zip(batch["prompt"], batch["target"], starts))
    order = np.argsort(rows["row"])
    return {key: [values[i] for i in order] for key, values in rows.items()}


def _collate(rows: dict, indices, device):
    from ..modeling import collate_right, loss_weights

    encoded = [rows["encoded"][i] for i in indices]
    # Padding is masked out of attention and loss, so any id will do.
    batch = collate_right(encoded, pad_id=0)
    weights = loss_weights(encoded, [rows["weight"][i] for i in indices])
    return {k: v.to(device) for k, v in batch.items()}, weights.to(device)


def _all_mean_and_sum(loss: float, tokens: int, device, world: int) -> tuple[float, int]:
    """The global batch's loss (mean over workers) and token count (sum), on every rank."""
    if world == 1:
        return loss, tokens
    import torch.distributed as dist

    values = torch.tensor([loss, float(tokens)], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return float(values[0]) / world, int(values[1])


def _seed_everything(seed: int, rank: int) -> None:
    # Per-rank streams: dropout masks differ across workers as they would across examples.
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def _save_rng(folder: Path, rank: int) -> None:
    torch.save({
        "python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }, folder / f"rng_rank{rank}.pt")


def _load_rng(folder: Path, rank: int) -> None:
    path = folder / f"rng_rank{rank}.pt"
    if not path.exists():  # a checkpoint written with a different number of workers
        return
    state = torch.load(path, weights_only=False)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

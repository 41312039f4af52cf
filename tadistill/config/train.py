"""How the student trains and is evaluated: `train.*` and `eval.*`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from .choices import described, fact, names
from .base import _Section
from .renamed import renamed

TRACKER_NAMES = names("train.tracking.backends")
LOSS_NAMES = names("train.loss")


class DeepSpeedConfig(_Section):
    """DeepSpeed ZeRO settings, used when train.strategy is 'deepspeed'."""

    zero_stage: Literal[0, 1, 2, 3] = Field(
        2,
        description=(
            "ZeRO stage: 0 = plain data parallel, 1 = shard optimizer state, 2 = also gradients, "
            "3 = also parameters (for students too big for one device)."
        ),
    )
    offload_optimizer: bool = Field(
        False, description="Keep optimizer state (and its update) in CPU memory; ZeRO 1-3."
    )
    offload_params: bool = Field(False, description="Keep parameters in CPU memory between uses; ZeRO 3 only.")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Raw DeepSpeed config entries merged over the generated ones (nested dicts merge), for "
            "settings this config does not name, e.g. {zero_optimization: {reduce_bucket_size: 5e7}}."
        ),
    )

    @model_validator(mode="after")
    def _offload_needs_a_stage(self):
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        return self


class LoraConfig(_Section):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    enabled: bool = Field(False, description="Train LoRA adapters on a frozen student (needs the 'lora' extra).")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: float = Field(32, gt=0, description="Adapter scale numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules that get adapters: 'all-linear' or a list of module names."
    )




class TrackingConfig(_Section):
    """Experiment trackers besides the run's report (tadistill/tracking.py): one tracker run per
    tadistill run, with its settings, results and both stages' training curves."""

    backends: list[Literal[TRACKER_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Any of: " + described("train.tracking.backends") + " (each needs its package)."
    )
    project: str = Field("tadistill", description="W&B project / MLflow experiment name (runs of one study compare there).")
    log_model: bool = Field(False, description="Also log the output model's folder to each tracker (as an artifact).")

    @field_validator("backends")
    @classmethod
    def _installed(cls, backends: list[str]) -> list[str]:
        import importlib.util

        # Before the run, not after an hour of it.
        packages = {b: fact("train.tracking.backends", b, "package") for b in backends}
        missing = [b for b, package in packages.items() if importlib.util.find_spec(package) is None]
        if missing:
            raise ValueError(f"needs {', '.join(packages[b] for b in missing)}: "
                             f"pip install 'tadistill[{','.join(missing)}]'")
        return backends
    tensorboard_dir: Optional[str] = Field(
        None, description="TensorBoard log folder; null = <run_dir>/tensorboard."
    )
    mlflow_tracking_uri: Optional[str] = Field(
        None, description="MLflow tracking URI (http://..., sqlite:///...); null = sqlite:///<run_dir>/mlflow.db."
    )
    wandb_mode: Literal["online", "offline"] = Field(
        "online", description="W&B mode; 'offline' writes runs locally to sync later (key: WANDB_API_KEY)."
    )


class TrainConfig(_Section):
    num_workers: int = Field(2, ge=1, description="Ray Train workers (one process each; one GPU each with use_gpu).")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved by each training worker.")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK",
        description=("How Ray Train places the workers' bundles (a placement group): 'PACK' on as few nodes as possible "
                     "(fastest collectives), 'SPREAD' over nodes where it can (a node's loss takes fewer workers), "
                     "STRICT_ variants refuse to start otherwise."),
    )
    use_gpu: bool = Field(False, description="Train on GPUs (one per worker, NCCL); otherwise CPUs over gloo.")
    launcher: Literal["ray_train", "local"] = Field(
        "ray_train",
        description=(
            "Where the training loop runs: Ray Train workers, or 'local': the same loop in the driver's "
            "process (one worker, ddp strategy), which saves Ray Train's start-up (~20 s a stage) for "
            "small students on one machine, such as benchmarks and laptops."
        ),
    )
    strategy: Literal["ddp", "deepspeed"] = Field(
        "deepspeed", description="Data-parallel engine: DeepSpeed (train.deepspeed) or plain PyTorch DDP."
    )
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Training precision: bf16 on recent GPUs (and CPUs); fp16 needs DeepSpeed and a GPU."
    )
    epochs: int = Field(20, ge=1, description="Passes over a student's training set (a round's student; the final one under 'epochs').")
    global_batch_size: int = Field(
        16,
        ge=1,
        description=(
            "Examples per optimizer step over all workers. It stays fixed when num_workers changes, "
            "so a run gives the same loss curve on 1 or 8 workers: gradient accumulation makes up the "
            "difference. Must be a multiple of micro_batch_size x num_workers."
        ),
    )
    micro_batch_size: int = Field(8, ge=1, description="Examples per worker per forward/backward pass.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate (linear warm-up, then linear decay to 10%).")
    warmup_share: float = Field(0.1, ge=0, lt=1, description="Share of the optimizer steps spent warming up the rate.")
    start_weight_share: Union[Annotated[float, Field(ge=0, lt=1)], Literal["auto"]] = Field(
        0.0,
        description=(
            "Share of the starting student's weights averaged into the final student after its training "
            "(weight-space ensembling, WiSE-FT; train/averaging.py): 0 keeps the trained weights alone. Keeps part "
            "of what the student knew and damps seed-to-seed variance, at no teacher or training cost. 'auto': the "
            "share (0, 0.25, 0.5 or 0.75) under which the final student best answers the run's outputs known to be "
            "right (the trust calibration's references: the synthetic task's held-out gold solutions, or "
            "trust.calibration_files)."
        ),
    )
    final_pick: Literal["auto", "last", "best_on_probe"] = Field(
        "auto",
        description=(
            "Which weights the final student ends with (train/averaging.py). 'auto' (the default): 'best_on_probe' "
            "where the run has a labelled probe and start_weight_share is 0, otherwise 'last' (the report then says "
            "the final student was not checked against its start). 'last': the training's last weights "
            "(averaged with the start at start_weight_share). 'best_on_probe': those that answer the labelled probe "
            "best (the run's outputs known to be right, as for start_weight_share 'auto') of the checkpoints the "
            "final training kept (its last weights and the resumable ones still in a local train.storage_path, up to "
            "train.checkpoints_to_keep), each averaged with the start at 0, 0.25, 0.5 and 0.75, and the starting "
            "student itself; ties go to the least averaging, then the newest checkpoint. A final student never worse "
            "on the probe than where it started, at no extra training: the probe is answered 4 x checkpoints + 1 "
            "times. Needs start_weight_share 0 (it picks the share itself) and a labelled probe."
        ),
    )
    rationales: Literal["all", "majority"] = Field(
        "all",
        description=(
            "Which of a question's teacher rationales the students train on (teacher.n > 1, or a recorded teacher "
            "with several): 'all', each a training row; 'majority', those whose answer is the one most of the "
            "question's rationales give (the teacher's agreement as a choice; a tie keeps every tied answer's)."
        ),
    )
    loss: Literal[LOSS_NAMES] = Field(  # type: ignore[valid-type]
        "nll", description="What each target token costs (train/losses.py): " + described("train.loss") + ".",
    )
    gce_q: float = Field(
        0.7, gt=0, le=1,
        description=("train.loss 'gce': its q, between -log p (q near 0) and the mean absolute error 1 - p (q = 1); "
                     "0.7 is Zhang & Sabuncu's (2018) choice for noisy labels."),
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm; 0 turns clipping off.")
    max_length: int = Field(160, ge=8, description="Token limit of prompt plus target; longer rows are truncated.")
    checkpoint_every_steps: int = Field(
        0, ge=0, description="Also checkpoint every this many optimizer steps (0 = only at each epoch end)."
    )
    checkpoints_to_keep: int = Field(2, ge=1, description="Newest resumable checkpoints kept per trained student.")
    max_failures: int = Field(
        2, ge=-1, description="Worker-group restarts from the latest checkpoint after a crash (-1 = no limit)."
    )
    storage_path: Optional[str] = Field(
        None,
        description=(
            "Where checkpoints go: a local folder, an NFS path every node mounts, or s3://bucket/prefix; "
            "null = <run_dir>/ray_train (a single machine only)."
        ),
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    schedule: Literal["fair", "epochs"] = Field(
        "fair",
        description=(
            "'fair': the final student (every method's) trains from the base model on everything bought, for the "
            "same optimizer steps at the same budget (train.steps, or train.epochs passes over budget.requests "
            "rows), so methods differ only in what they bought and how they weight it; the rounds' students "
            "only steer the signals. 'epochs': each student trains train.epochs passes over its own rows, the "
            "final one from train.final_init (methods with rounds then train more steps than 'none')."
        ),
    )
    steps: Optional[int] = Field(
        None, ge=1,
        description="Optimizer steps of the final student under the fair schedule; null: train.epochs x budget.requests / global_batch_size.",
    )
    final_init: Literal["previous_round", "base"] = Field(
        "base",
        description=("The final student (and each later round's) starts from the base model, or (schedule 'epochs' "
                     "only, 'previous_round') from the previous round's student. Formerly train.stage2_init "
                     "('previous_round' formerly 'stage1')."),
    )
    final_data: Literal["all", "selected"] = Field(
        "all",
        description=("The final student trains on every bought output ('all') or (schedule 'epochs' only, "
                     "'selected') on the rounds' purchases without the warm-up. Formerly train.stage2_data."),
    )
    seed: int = Field(0, description="Seed of initialisation, data order and dropout.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """train.stage2_init and the like, for a section built on its own (config/renamed.py)."""
        return renamed(data, "train.")

    @model_validator(mode="after")
    def _batch_sizes_divide(self):
        per_step = self.micro_batch_size * self.num_workers
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size x "
                f"num_workers ({self.micro_batch_size} x {self.num_workers} = {per_step})"
            )
        if self.precision == "fp16" and (self.strategy != "deepspeed" or not self.use_gpu):
            raise ValueError("precision fp16 needs strategy 'deepspeed' and use_gpu (use bf16 or fp32 on CPU)")
        if self.launcher == "local" and (self.num_workers != 1 or self.strategy != "ddp"):
            raise ValueError("launcher 'local' trains in one process: set num_workers 1 and strategy 'ddp'")
        if self.lora.enabled and self.strategy == "deepspeed" and self.deepspeed.zero_stage == 3:
            raise ValueError("lora with deepspeed.zero_stage 3 is not supported: use zero_stage 2 (adapters are small)")
        return self

    @property
    def accumulation_steps(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.num_workers)


class EvalConfig(_Section):
    max_new_tokens: int = Field(48, ge=1, description="Token limit of a greedy test answer.")
    batch_size: int = Field(64, ge=1, description="Test questions per generation batch.")



"""The two data-parallel engines a training worker can drive: plain PyTorch DDP and DeepSpeed.

Both offer the same five operations, so the worker loop (``worker.py``) is written once:
``micro_step`` (forward and backward of one micro-batch), ``finish_step`` (the optimizer
step at the end of a global batch), ``save_state`` / ``load_state`` (everything a resumed
run needs: weights, optimizer, scheduler) and ``export`` (a plain Hugging Face folder).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Optional

import torch

from ..config import TrainConfig
from ..modeling import weighted_lm_loss
from .losses import token_loss

DDP_STATE = "ddp_state.pt"
DEEPSPEED_TAG = "deepspeed"


def lr_factor(step: int, warmup: int, total_steps: int) -> float:
    """Linear warm-up over `warmup` steps, then a linear decay to 10% of the peak.

    The warm-up matters when fine-tuning: a fresh AdamW's first updates move every
    parameter by about the full learning rate and knock a trained model off course.
    """
    warmup = max(1, warmup)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return max(0.1, 1.0 - 0.9 * progress)


def apply_lora(model, config: TrainConfig):
    """Freeze the student and give it LoRA adapters (peft), when train.lora.enabled."""
    if not config.lora.enabled:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("train.lora.enabled needs peft: pip install 'tadistill[lora]'") from error
    from ..modeling import is_seq2seq

    lora = LoraConfig(
        task_type="SEQ_2_SEQ_LM" if is_seq2seq(model) else "CAUSAL_LM", r=config.lora.r, lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout, target_modules=config.lora.target_modules,
    )
    return get_peft_model(model, lora)


def make_engine(model, config: TrainConfig, total_steps: int, device: torch.device, world_size: int):
    if config.strategy == "deepspeed":
        return DeepSpeedEngine(model, config, total_steps)
    return DDPEngine(model, config, total_steps, device, world_size)


def _optimizer(model, config: TrainConfig) -> torch.optim.Optimizer:
    # A plain torch AdamW under DeepSpeed too: DeepSpeed's own optimizers compile C++/CUDA
    # ops on first use (about a minute on CPU) and give the same updates.
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(optimizer, config: TrainConfig, total_steps: int):
    warmup = int(total_steps * config.warmup_share)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total_steps))


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _save_pretrained(model, folder: Path, tokenizer, state_dict: Optional[dict] = None) -> None:
    """A plain causal-LM folder: LoRA adapters merged in (and kept beside, in adapter/)."""
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(folder / "adapter")
        model = model.merge_and_unload()
        state_dict = None
    model.save_pretrained(folder, state_dict=state_dict)
    tokenizer.save_pretrained(folder)


class DDPEngine:
    def __init__(self, model, config: TrainConfig, total_steps: int, device: torch.device, world_size: int):
        self.config = config
        self.device = device
        self.world_size = world_size
        if world_size > 1:
            import ray.train.torch

            self.model = ray.train.torch.prepare_model(model)
        else:  # one process (Ray Train with one worker, or the local launcher): nothing to sync
            self.model = model.to(device)
        self.optimizer = _optimizer(self.model, config)
        self.scheduler = _scheduler(self.optimizer, config, total_steps)
        self.token_loss = token_loss(config)
        self._micro = 0

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def micro_step(self, batch: dict, weights: torch.Tensor) -> float:
        self.model.train()
        self._micro += 1
        last = self._micro == self.config.accumulation_steps
        # Gradients are all-reduced once per global batch, on its last micro-batch.
        sync = contextlib.nullcontext() if last or self.world_size == 1 else self.model.no_sync()
        with sync, self._autocast():
            loss = weighted_lm_loss(self.model, batch, weights, self.token_loss)
        (loss / self.config.accumulation_steps).backward()
        return float(loss.detach())

    def finish_step(self) -> None:
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._micro = 0

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save_state(self, folder: Path, rank: int) -> None:
        if rank == 0:  # DDP keeps every replica identical: one copy is the whole state
            torch.save({
                "model": _unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }, folder / DDP_STATE)

    def load_state(self, folder: Path) -> None:
        state = torch.load(folder / DDP_STATE, map_location=self.device, weights_only=False)
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def export(self, folder: Path, tokenizer, rank: int) -> None:
        if rank == 0:
            _save_pretrained(_unwrap(self.model), folder, tokenizer)


def deepspeed_config(config: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed JSON config that train.* describes, with train.deepspeed.overrides on top."""
    zero: dict[str, Any] = {"stage": config.deepspeed.zero_stage}
    if config.deepspeed.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if config.deepspeed.offload_params:
        zero["offload_param"] = {"device": "cpu"}
    generated = {
        "train_batch_size": config.global_batch_size,
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.accumulation_steps,
        "gradient_clipping": config.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": config.precision == "bf16"},
        "fp16": {"enabled": config.precision == "fp16"},
        # The torch AdamW above is fine under ZeRO, offloaded or not.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
    }
    return _merge(generated, config.deepspeed.overrides)


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


class DeepSpeedEngine:
    def __init__(self, model, config: TrainConfig, total_steps: int):
        import deepspeed

        self.config = config
        optimizer = _optimizer(model, config)
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            # A callable: DeepSpeed builds it on the optimizer it wraps, so the schedule moves
            # the rates ZeRO actually applies, and it is saved with the checkpoint.
            lr_scheduler=lambda wrapped: _scheduler(wrapped, config, total_steps),
            config=deepspeed_config(config),
            dist_init_required=False,
        )
        self.device = self.engine.device
        self.token_loss = token_loss(config)

    def micro_step(self, batch: dict, weights: torch.Tensor) -> float:
        self.engine.train()
        loss = weighted_lm_loss(self.engine, batch, weights, self.token_loss)
        self.engine.backward(loss)
        # DeepSpeed counts micro-batches itself and only steps the optimizer on the last.
        self.engine.step()
        return float(loss.detach().float())

    def finish_step(self) -> None:
        """Nothing to do: engine.step() already stepped the optimizer on the last micro-batch."""

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save_state(self, folder: Path, rank: int) -> None:
        # Every rank writes its own ZeRO shards; Ray Train merges the folders in storage.
        self.engine.save_checkpoint(str(folder), tag=DEEPSPEED_TAG)

    def load_state(self, folder: Path) -> None:
        path, _ = self.engine.load_checkpoint(
            str(folder), tag=DEEPSPEED_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if path is None:
            raise RuntimeError(f"DeepSpeed found no checkpoint under {folder}")

    def export(self, folder: Path, tokenizer, rank: int) -> None:
        import deepspeed

        module = self.engine.module
        if self.config.deepspeed.zero_stage == 3:
            # Parameters are sharded: gather them whole for the duration of the save.
            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=0):
                if rank == 0:
                    _save_pretrained(module, folder, tokenizer)
        elif rank == 0:
            _save_pretrained(module, folder, tokenizer)

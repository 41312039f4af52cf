"""The weights in a training stage's resumable checkpoints, as a plain model's tensors: the
candidates besides the last weights that `train.final_pick: best_on_probe` weighs.

Under either launcher a stage's run folder (its metrics' `ray_train_run`: <storage>/<stage>-<fingerprint>)
holds `model_final` and the resumable checkpoints still kept, `step_<optimizer step>` (worker.py: the
newest train.checkpoints_to_keep; Ray Train counts `model_final` among them, the local launcher does
not). A resumable checkpoint holds the engine's state, not a model folder: DDP's one file, or
DeepSpeed's (the whole module at ZeRO 0, fp32 shards to merge at ZeRO 1-3); with LoRA, the
adapters beside the frozen weights, merged here as the exported model merges them.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig


def kept_checkpoints(run_folder: str) -> list[Path]:
    """The stage's resumable checkpoints still in storage, newest first. None where the storage is
    not a local folder (s3://, gs://): the last weights are then the only trained candidate."""
    if "://" in run_folder:
        return []
    found = [folder for folder in Path(run_folder).glob("step_*") if folder.is_dir()]
    return sorted(found, key=lambda folder: folder.name, reverse=True)  # zero-padded steps sort as numbers


def checkpoint_state(folder: Path, config: TrainConfig, start: str) -> dict:
    """The model weights resumable checkpoint `folder` holds, named as the exported model's; `config`:
    the training that wrote it (its engine and LoRA settings), `start`: the model it started from."""
    state = _engine_weights(Path(folder), config)
    return _merged_adapters(state, config, start) if config.lora.enabled else state


def _engine_weights(folder: Path, config: TrainConfig) -> dict:
    import torch

    from .engines import DDP_STATE, DEEPSPEED_TAG

    if config.strategy == "ddp":
        return torch.load(folder / DDP_STATE, map_location="cpu", weights_only=False)["model"]
    if config.deepspeed.zero_stage == 0:  # no ZeRO: rank 0 saved the whole module
        states = torch.load(folder / DEEPSPEED_TAG / "mp_rank_00_model_states.pt", map_location="cpu",
                            weights_only=False)
        return states["module"]
    # The fp32 master weights, gathered from every rank's shards (Ray Train merged the ranks' folders).
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return dict(get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=DEEPSPEED_TAG))


def _merged_adapters(state: dict, config: TrainConfig, start: str) -> dict:
    """A LoRA checkpoint's adapters merged into the start's weights, as engines._save_pretrained does."""
    from ..modeling import load_model
    from .engines import apply_lora

    model = apply_lora(load_model(start), config)
    model.load_state_dict(state)
    return model.merge_and_unload().state_dict()

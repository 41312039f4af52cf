"""The weights in a stage's resumable checkpoints, read back as a plain model's (the candidates of
train.final_pick 'best_on_probe' besides the last weights): real training on the local launcher.
DeepSpeed's checkpoints are read in test_ray_trainer.py, on its two-worker ZeRO-2 run."""

import shutil

import pandas as pd
import torch

from tadistill.config import TrainConfig
from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.modeling import load_model
from tadistill.synthetic.models import gold_rows

QUESTION = "Question: Tom has 2 pens. Tom buys 1 more. How many pens does Tom have now?\nAnswer:"


def _train(tmp_path, start, **options):
    from tadistill.train.ray_trainer import train_stage

    config = TrainConfig(launcher="local", strategy="ddp", num_workers=1, epochs=2, global_batch_size=8,
                         micro_batch_size=8, checkpoint_every_steps=2, checkpoints_to_keep=2, **options)
    rows = pd.DataFrame(gold_rows(32, seed=21)).assign(weight=1.0)
    metrics = train_stage(rows, start, config, storage_path=tmp_path / "ray_train", name="final",
                          model_out=tmp_path / "final" / "model")
    return config, metrics


def test_a_lora_checkpoint_reads_back_as_a_plain_model_with_its_adapters_merged(synthetic_models, tmp_path):
    from tadistill.train.checkpoint_weights import checkpoint_state, kept_checkpoints

    start = synthetic_models["student"]
    config, metrics = _train(tmp_path, start, lora={"enabled": True, "r": 8})
    kept = kept_checkpoints(metrics["ray_train_run"])
    # 8 steps, a checkpoint every 2 (none at the last: that is model_final): the newest two kept, newest first.
    assert [folder.name for folder in kept] == ["step_0000006", "step_0000004"]
    state = checkpoint_state(kept[0], config, start)

    began = load_model(start).state_dict()
    last = load_model(str(tmp_path / "final" / "model")).state_dict()
    assert state.keys() == began.keys()  # no adapter is left: a plain model's names
    changed = [name for name in began if not torch.equal(state[name], began[name])]
    assert changed and not any("embed" in name or "norm" in name for name in changed)  # adapters sit on linears
    assert any(not torch.equal(state[name], last[name]) for name in changed)  # step 6, not the last step's

    # It loads into the plain model whole, and that model answers, beside the exported tokenizer.
    model = load_model(start)
    model.load_state_dict(state)
    shutil.copytree(tmp_path / "final" / "model", tmp_path / "step6", ignore=shutil.ignore_patterns("*.safetensors"))
    model.save_pretrained(tmp_path / "step6")
    assert len(TransformersBackend(str(tmp_path / "step6")).generate([QUESTION], 1, 0.0, 8)[0]) == 1


def test_a_ddp_checkpoint_lies_between_the_start_and_the_last_weights(synthetic_models, tmp_path):
    from tadistill.train.checkpoint_weights import checkpoint_state, kept_checkpoints

    start = synthetic_models["student"]
    config, metrics = _train(tmp_path, start)
    older, newer = reversed(kept_checkpoints(metrics["ray_train_run"]))
    began = load_model(start).state_dict()
    last = load_model(str(tmp_path / "final" / "model")).state_dict()

    def distance_to_last(state):
        return sum(float((state[k] - last[k]).norm()) for k in last if last[k].is_floating_point())

    assert distance_to_last(began) > distance_to_last(checkpoint_state(older, config, start)) \
        > distance_to_last(checkpoint_state(newer, config, start)) > 0

"""A training stage on Ray Train with 2 CPU workers (DDP over gloo)."""

import json

import pandas as pd

from tadistill.config import TrainConfig
from tadistill.inference.backend import TransformersBackend
from tadistill.synthetic.models import gold_rows


def test_two_workers_train_and_save_a_loadable_model(ray_local, synthetic_models, tmp_path):
    from tadistill.train.ray_trainer import train_stage

    rows = pd.DataFrame(gold_rows(48, seed=21)).assign(weight=1.0)
    # The student already knows these; a step too large would only measure the warm-up.
    out = tmp_path / "model"
    metrics = train_stage(
        rows, synthetic_models["student"], TrainConfig(num_workers=2, epochs=2, batch_size=8, lr=3e-4),
        storage_path=tmp_path / "ray_train", name="stage_test", model_out=out,
    )
    assert metrics["workers"] == 2 and metrics["rows"] == 48
    # 48 rows over 2 workers at 8 per step: 3 steps per epoch on rank 0.
    assert len(metrics["step_losses"]) == 6
    assert all(0 < loss < 10 for loss in metrics["step_losses"])
    assert (out / "config.json").exists() and not (tmp_path / "model.tmp").exists()
    backend = TransformersBackend(str(out))
    assert len(backend.generate(["Question: Tom has 2 pens. Tom buys 1 more. How many pens does Tom have now?\nAnswer:"], 1, 0.0, 8)[0]) == 1
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"

"""The fair schedule: every method's final student takes the same optimizer steps and sees the
same number of examples at the same budget, whatever it bought, weighted or dropped."""

import json

import pandas as pd

from tadistill.config import load_config
from tadistill.corpus.synthetic import synthetic_splits
from tadistill.pipeline import run_pipeline
from tadistill.synthetic.teacher_server import TeacherProfile, write_teacher_records

from .conftest import MODEL_CACHE


def test_every_method_trains_its_final_student_for_the_same_steps(ray_local, synthetic_models, tmp_path):
    world = ["data.synthetic.pool_size=90", "data.synthetic.test_size=20", "teacher.synthetic.error_rate=0.4"]
    config = load_config(None, world)
    records = write_teacher_records(synthetic_splits(config.data)["train"],
                                    TeacherProfile.from_config(config.teacher.synthetic, config.data.synthetic),
                                    tmp_path / "teacher.jsonl")
    common = [*world, f"models.cache_dir={MODEL_CACHE}", "budget.requests=30", "train.epochs=2",
              "train.launcher=local", "train.strategy=ddp", "train.num_workers=1",
              "train.global_batch_size=8", "train.micro_batch_size=8", "inference.launcher=local",
              "inference.num_samples=2", "trust.calibration_size=20", "teacher.source=recorded",
              f"teacher.recorded.files=[{records}]", "teacher.recorded.format=records",
              "teacher.recorded.match=id", "teacher.recorded.fields.id=id"]
    measured = {}
    for method in ("none", "oracle", "sc_filter"):
        run_dir = tmp_path / method
        run_pipeline(load_config(None, [*common, f"method={method}", f"run_dir={run_dir}"]))
        steps = json.loads((run_dir / "manifest.json").read_text())["steps"]
        final = steps["final.train"]
        trained = pd.read_parquet(run_dir / "final" / "train_rows.parquet")
        measured[method] = (final["optimizer_steps"], final["examples_seen"], len(trained))
    # ceil(2 epochs x 30 requests / 8) = 8 steps, 64 examples, for every method...
    assert {m: v[:2] for m, v in measured.items()} == {m: (8, 64) for m in measured}
    # ...though oracle dropped the teacher's wrong outputs and sc_filter those the TA distrusts.
    assert measured["oracle"][2] < measured["none"][2] == 30

"""jobs/distill.py refuses what would lose a cluster run's outputs, before any work starts."""

from jobs.distill import main, outputs
from tadistill.config import load_config


def test_a_relative_run_dir_is_refused_with_the_fix(capsys):
    assert main(["configs/demo.yaml", "run_dir=runs/demo"]) == 2
    err = capsys.readouterr().err
    assert "run_dir 'runs/demo' is relative" in err and "run_dir=/mnt/runs/demo" in err


def test_a_bad_option_is_named(capsys):
    assert main(["configs/demo.yaml", "run_dir=/tmp/x", "train.num_wrkers=2"]) == 2
    assert "train.num_wrkers" in capsys.readouterr().err
    assert main([]) == 2 and "usage" in capsys.readouterr().err


def test_outputs_name_the_run_dir_and_where_checkpoints_go():
    config = load_config("configs/demo.yaml", ["run_dir=/mnt/runs/a", "train.storage_path=s3://bucket/ckpt"])
    assert outputs(config) == {"run directory": "/mnt/runs/a", "checkpoints": "s3://bucket/ckpt",
                               "report": "/mnt/runs/a/report.md"}
    assert outputs(load_config("configs/demo.yaml", ["run_dir=/mnt/runs/a"]))["checkpoints"] == "/mnt/runs/a/ray_train"

"""A quiet console: tadistill's lines on the terminal, everything else in the run's log."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tadistill import console


@pytest.fixture
def quiet_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    console.setup_logging(verbose=False)
    yield
    root.handlers[:], root.level = handlers, level


def test_library_chatter_goes_to_the_log_and_tadistill_lines_to_the_terminal(tmp_path, capfd, quiet_logging):
    log_file = tmp_path / "run" / "run.log"
    with console.run_log(log_file, verbose=False):
        logging.getLogger("tadistill.pipeline").info("corpus done in 1.0 s")
        logging.getLogger("tadistill.pipeline").info("step details", extra={"console": False})
        logging.getLogger("a.library").warning("Progress bars disabled")
        print("a library's print")
        subprocess.run([sys.executable, "-c", "import sys; print('a child process'); print('its stderr', file=sys.stderr)"],
                       check=True)  # children inherit the redirected descriptors
        console.out("the result table")
    print("after the run")
    out, err = capfd.readouterr()
    assert "corpus done in 1.0 s" in err and "the result table" in out and "after the run" in out
    for chatter in ("step details", "Progress bars disabled", "a library's print", "a child process", "its stderr"):
        assert chatter not in out + err
        assert chatter in log_file.read_text()
    assert "corpus done in 1.0 s" in log_file.read_text()  # the log has the whole story


def test_a_failure_leaves_its_traceback_in_the_log_not_on_the_terminal(tmp_path, capfd, quiet_logging):
    log_file = tmp_path / "run.log"
    with pytest.raises(RuntimeError):
        with console.run_log(log_file, verbose=False):
            raise RuntimeError("the replica died")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "Traceback" in log_file.read_text() and "the replica died" in log_file.read_text()
    assert console.last_log() == log_file


def test_verbose_keeps_everything_on_the_terminal_and_copies_records_to_the_log(tmp_path, capfd):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        console.setup_logging(verbose=True)
        with console.run_log(tmp_path / "run.log", verbose=True):
            logging.getLogger("a.library").warning("worker group started")
    finally:
        root.handlers[:], root.level = handlers, level
    assert "worker group started" in capfd.readouterr().err
    assert "worker group started" in (tmp_path / "run.log").read_text()


def test_a_run_prints_one_line_per_step_and_keeps_ray_in_its_log(synthetic_models, tmp_path):
    from .conftest import MODEL_CACHE

    from tadistill.config import load_config
    from tadistill.plan import plan

    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    overrides = [f"run_dir={run}", f"models.cache_dir={MODEL_CACHE}", "method=none", "budget.requests=32",
                 "data.synthetic.pool_size=64", "data.synthetic.test_size=32", "train.strategy=ddp",
                 "train.num_workers=1", "train.epochs=1", "inference.launcher=local", "ray.num_cpus=2"]
    every_step = [step.name for step in plan(load_config(repo / "configs" / "demo.yaml", overrides))]
    done = subprocess.run(
        [sys.executable, "-m", "tadistill.cli", "run", str(repo / "configs" / "demo.yaml"), *overrides],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    steps = [line for line in done.stderr.splitlines() if " done in " in line]
    assert [line.split()[1] for line in steps] == every_step
    log_text = (run / "run.log").read_text()
    for chatter in ("Started a local Ray instance", "Started training worker group"):  # Ray, Ray Train
        assert chatter in log_text and chatter not in done.stdout + done.stderr
    assert len(lines) < 40, "\n".join(lines)

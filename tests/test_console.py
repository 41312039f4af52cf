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
                 "train.num_workers=1", "train.epochs=1", "inference.launcher=local", "ray.num_cpus=2",
                 "trust.calibration_size=16"]  # the default final pick's probe, kept small
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


def test_a_line_too_wide_is_cut_at_a_words_end_and_marked():
    line = ("teacher 2/3 req: http://teacher.example/v1 failing, retrying for 12 s: teacher refused the request "
            "for row 'r0': HTTP 502: <html>\n<body>Bad Gateway</body>\n</html>\n")
    whole = " ".join(line.split())
    assert console.fit(line, 500) == whole  # one line: a newline inside would start a stray one
    for columns in (100, 79, 60):
        cut = console.fit(line, columns)
        assert len(cut) <= columns and cut.endswith("...")
        assert whole.startswith(cut[:-3]) and whole[len(cut) - 3] in " :,;"  # not inside a word
    assert console.fit("x" * 100, 20) == "x" * 17 + "..."  # one long word: cut where it must be


# A quiet run's console, as `tadistill run` has it: stdout and stderr go to the log, the progress
# display to a duplicate of the terminal (which tqdm cannot measure by itself).
BAR_IN_A_QUIET_RUN = """
import sys
from pathlib import Path
from tadistill import console
with console.run_log(Path(sys.argv[1]), verbose=False):
    console.out(f"width {console.width()}")
    with console.progress(3, "teacher", "req") as bar:
        for n in range(1, 4):
            bar.set_postfix(tokens=123456 * n, cost=0.25 * n, refresh=False)
            bar.update(1)
            bar.refresh()
"""


def test_a_progress_line_fits_a_narrow_terminal_and_is_rewritten_in_place(tmp_path):
    from .conftest import REPO, run_in_terminal

    code, shown = run_in_terminal([sys.executable, "-c", BAR_IN_A_QUIET_RUN, str(tmp_path / "run.log")], columns=40,
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert code == 0, shown
    said, _, display = shown.partition("\r\n")
    assert said == "width 39"  # the terminal's 40 columns less the last one, read through the duplicate
    refreshes = [part for part in display.split("\r") if part.strip()]
    assert any("3/3" in part for part in refreshes), display
    assert "\n" not in display  # every refresh rewrote the one line
    assert all(len(part) <= 39 for part in refreshes), refreshes  # none wrapped onto a second

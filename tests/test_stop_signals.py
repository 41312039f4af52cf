"""Ctrl-C and SIGTERM stop a real run in every kind of step: one line, exit 130 or 143, none of
the run's processes left behind, and the same command resumes without paying the teacher twice.

One run is stopped step after step and resumed each time (Ray, Serve and Ray Train start afresh
in every invocation), against a real HTTP server speaking the OpenAI API that counts what it was
paid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from .conftest import MODEL_CACHE, REPO, free_port
from .teacher.openai_server import OpenAITestServer

pytestmark = pytest.mark.slow

STOPPED_LINE = "tadistill: stopped. Finished steps and every paid teacher response are kept"
LEFT_BEHIND_S = 10  # how long the run's processes may take to go once the driver has exited

# The steps one run is stopped in, in the order it reaches them, and the signal each gets: one of
# each kind of step, each signal in each kind of worker (a purchase, Ray Train, Serve; the round's
# purchase is the warm-up's code, and a driver killed in it is tests/test_pipeline.py's; TA scoring
# is a Serve step like the sampling and the test answers, run by the same executor).
# A sampling step follows training in the process that trained: Ray Train's own Ctrl-C handler
# must be gone by then.
FULL_RUN_STOPS = [
    ("warmup.buy", signal.SIGINT),
    ("round1.train", signal.SIGTERM),  # Ray Train, DDP
    ("round1.sample", signal.SIGINT),  # Serve
    ("final.train", signal.SIGINT),
    ("evaluate", signal.SIGTERM),  # Serve
]
# Ctrl-C in a DeepSpeed training: the driver's handler is the same for either signal (SIGTERM in
# a Ray Train step is the run above's round1.train), what differs is the engine torn down.
DEEPSPEED_STOPS = [("final.train", signal.SIGINT)]


def _config(path: Path, run: Path, server: OpenAITestServer, method: str, train: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "run_dir": str(run), "method": method, "models": {"cache_dir": str(MODEL_CACHE)},
        "data": {"synthetic": {"pool_size": 120, "test_size": 80}},
        "budget": {"requests": 40, "rounds": 1},
        "teacher": {"source": "openai", "base_url": server.base_url, "model": "test-model",
                    "api_key_env": "TADISTILL_TEST_KEY", "concurrency": 2, "http_port": free_port()},
        "train": {"epochs": 2, "global_batch_size": 16, "micro_batch_size": 8, "final_pick": "last", **train},
        "inference": {"launcher": "serve", "num_samples": 3, "batch_size": 16},
        "ray": {"num_cpus": 4},
    }))
    return path


def _start(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TADISTILL_TEST_KEY": "sk-test-not-a-real-key-4f9a"}
    return subprocess.Popen([sys.executable, "-m", "tadistill.cli", "run", str(config)], cwd=config.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_step(driver: subprocess.Popen, log: Path, step: str, seen: int) -> int:
    """Wait until the run's log says `step` is running (past the first `seen` bytes); the log's size."""
    pattern = re.compile(rf"step {re.escape(step)}\s+running")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and driver.poll() is None:
        text = log.read_text() if log.exists() else ""
        if pattern.search(text[seen:]):
            return len(text)
        time.sleep(0.05)
    raise AssertionError(f"the run never reached {step} (exit {driver.poll()}): {driver.stderr.read()[-2000:]}")


def _stop_in(config: Path, run: Path, step: str, signum: int, seen: int) -> int:
    """Start the run, send `signum` once `step` runs; check the line, the exit code, that the stop
    landed in that step, and that none of the run's processes outlive it."""
    driver = _start(config)
    seen = _wait_for_step(driver, run / "run.log", step, seen)
    time.sleep(0.3)  # inside the step's work, not its first line
    processes = psutil.Process(driver.pid).children(recursive=True)  # Ray, Serve and Ray Train's processes
    driver.send_signal(signum)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 128 + signum, f"{step}: exit {driver.returncode}: {stderr[-2000:]}"
    lines = stderr.strip().splitlines()  # the steps' own lines, then the stop's one line
    assert lines[-1] == STOPPED_LINE + ": run the same command again to resume.", stderr[-2000:]
    assert "Traceback" not in stderr and sum(STOPPED_LINE in line for line in lines) == 1, stderr[-2000:]
    assert step not in json.loads((run / "manifest.json").read_text())["steps"], f"the stop missed {step}"
    _, alive = psutil.wait_procs(processes, timeout=LEFT_BEHIND_S)
    assert not alive, f"{step}: left running after {LEFT_BEHIND_S} s: {[_name(p) for p in alive]}"
    return seen


def _name(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:120]
    except psutil.Error:
        return str(process.pid)


def _finish(config: Path) -> None:
    driver = _start(config)
    _, stderr = driver.communicate(timeout=900)
    assert driver.returncode == 0, stderr[-3000:]


def _stopped_step_after_step(tmp_path, method: str, train: dict, stops: list) -> tuple[Path, OpenAITestServer]:
    run = tmp_path / "run"
    with OpenAITestServer(latency=0.3) as server:  # a purchase lasts seconds: a stop lands inside it
        config = _config(tmp_path / "run.yaml", run, server, method, train)
        seen = 0
        for step, signum in stops:
            seen = _stop_in(config, run, step, signum, seen)
        _finish(config)
    return run, server


def _paid_once(run: Path, server: OpenAITestServer, purchases: list[str]) -> None:
    """Every pick bought once and paid once: a stop during a purchase let the requests on the wire
    land and be stored before it tore the purchase down, so none was left in doubt or sent again."""
    from tadistill.teacher.cache import ResponseCache

    bought = pd.concat([pd.read_parquet(run / f"teacher/{p}.parquet") for p in purchases])
    assert len(bought) == 40 and not bought["id"].duplicated().any()
    assert ResponseCache(run / "teacher" / "cache").orphans() == []
    assert server.served == 40 and max(server.paid_per_question.values()) == 1


def test_ctrl_c_and_sigterm_stop_every_step_and_the_rerun_resumes(tmp_path):
    run, server = _stopped_step_after_step(tmp_path, "full", {"strategy": "ddp", "num_workers": 1}, FULL_RUN_STOPS)
    _paid_once(run, server, ["warmup", "round1"])
    assert json.loads((run / "manifest.json").read_text())["steps"]["evaluate"]["total"] == 80


def test_ctrl_c_stops_a_deepspeed_training_and_the_rerun_resumes(tmp_path):
    run, server = _stopped_step_after_step(
        tmp_path, "none", {"strategy": "deepspeed", "num_workers": 2, "deepspeed": {"zero_stage": 2}}, DEEPSPEED_STOPS)
    _paid_once(run, server, ["warmup"])

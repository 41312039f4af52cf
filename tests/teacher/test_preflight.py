"""Fail before spending: a live teacher is checked in seconds before any request is paid."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tadistill.config import load_config
from tadistill.rundir import RunDir
from tadistill.services import Services
from tadistill.teacher.client import TeacherError
from tadistill.teacher.sources import teacher_for

from ..conftest import free_port
from .openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]


def _teacher(tmp_path, base_url, *extra):
    config = load_config(overrides=["teacher.source=openai", f"teacher.base_url={base_url}", "teacher.model=test-model",
                                    "teacher.api_key_env=TADISTILL_TEST_KEY", f"run_dir={tmp_path / 'run'}", *extra])
    return teacher_for(config, Services(config), RunDir(config.run_dir))


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TADISTILL_TEST_KEY", "sk-test-not-a-real-key-4f9a")


def test_a_teacher_that_answers_and_serves_the_model_passes(tmp_path):
    with OpenAITestServer() as server:
        server.key, server.models = "sk-test-not-a-real-key-4f9a", ["test-model", "other"]
        _teacher(tmp_path, server.base_url).preflight()
        assert server.served == 0  # nothing paid


def test_each_thing_a_user_can_get_wrong_is_named(tmp_path, monkeypatch):
    with OpenAITestServer() as server:
        server.models = ["gpt-other"]
        with pytest.raises(TeacherError, match="does not serve teacher.model 'test-model'; it lists gpt-other"):
            _teacher(tmp_path, server.base_url).preflight()
        server.models, server.key = ["test-model"], "another-key"
        with pytest.raises(TeacherError, match="refused the key in TADISTILL_TEST_KEY"):
            _teacher(tmp_path, server.base_url).preflight()
    # Nothing listening: one try and a message naming the setting, not a purchase's 10 minutes of retries.
    with pytest.raises(TeacherError, match=r"http://127.0.0.1:\d+/v1 \(teacher.base_url\) does not answer"):
        _teacher(tmp_path, f"http://127.0.0.1:{free_port()}/v1").preflight()
    monkeypatch.delenv("TADISTILL_TEST_KEY")
    with pytest.raises(TeacherError, match="environment variable TADISTILL_TEST_KEY"):
        _teacher(tmp_path, "http://127.0.0.1:9/v1").preflight()


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TADISTILL_TEST_KEY": "sk-test"}
    done = subprocess.run(
        [sys.executable, "-m", "tadistill.cli", "run", str(REPO / "configs" / "demo.yaml"), "teacher.source=openai",
         f"teacher.base_url=http://127.0.0.1:{free_port()}/v1", "teacher.api_key_env=TADISTILL_TEST_KEY",
         f"run_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("tadistill:")]
    assert len(lines) == 1 and "does not answer" in lines[0] and "Traceback" not in done.stderr

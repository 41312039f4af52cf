"""Shared fixtures: one real local Ray for the session, the cached synthetic models."""

from __future__ import annotations

import os

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The same cache the demo uses, so a machine builds the tiny models once for both.
MODEL_CACHE = REPO / ".cache" / "tadistill"


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+) and above Ray's worker ports
    (10002-19999): a port taken from the ephemeral range can be handed to one of Ray's own
    connections before Serve binds it."""
    import random
    import socket

    for port in random.SystemRandom().sample(range(20000, 30000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-30000 for Serve's HTTP proxy")


def can_mount_tmpfs(folder) -> bool:
    """Whether a private mount namespace (`unshare -rm`) can mount a small tmpfs on folder:
    a real full disk for tests, where user namespaces are allowed."""
    import shutil
    import subprocess

    probe = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {folder}"]
    return bool(shutil.which("unshare")) and subprocess.run(probe, capture_output=True).returncode == 0


# Serve's HTTP proxy for the session: a free port, so two suites (or a running demo) never collide.
TEST_HTTP_PORT = free_port()


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """Each test starts with the thread count the session started with: a backend built in the
    test process sets torch's count for the whole process, and the arithmetic of every later test
    (the pinned runs compare exactly on the machine they were captured on) depends on it."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    # Teacher workers read the API key from their own environment, as on a cluster where it is
    # set before `ray start` or in the job's runtime_env: so it must be there before Ray starts.
    os.environ.setdefault("TADISTILL_TEST_KEY", "sk-test-not-a-real-key-4f9a")
    from tadistill.services import ray_environment

    ray_environment()  # as tadistill's own Ray start does
    if not ray.is_initialized():
        # 4 logical CPUs on 2 cores: Ray Data and Serve deadlock when actors hold every CPU.
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
    from ray import serve

    # Serve keeps the HTTP options it first starts with: every test's teacher lives here.
    serve.start(http_options={"host": "127.0.0.1", "port": TEST_HTTP_PORT})
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def synthetic_models() -> dict[str, str]:
    from tadistill.synthetic.models import ensure_synthetic_models

    return ensure_synthetic_models(MODEL_CACHE)


@pytest.fixture
def small_config(tmp_path):
    """A whole run at test size: minutes on 2 cores, every step real."""
    from tadistill.config import load_config

    def make(*overrides: str):
        return load_config(None, [
            f"run_dir={tmp_path / 'run'}",
            f"models.cache_dir={MODEL_CACHE}",
            "data.synthetic.pool_size=120",
            "data.synthetic.test_size=40",
            "budget.requests=40",
            "train.epochs=2",
            "train.strategy=ddp",  # DeepSpeed and several workers have their own tests in tests/train
            "train.num_workers=1",
            "train.global_batch_size=16",
            "train.micro_batch_size=8",
            "inference.num_samples=3",
            "inference.batch_size=32",
            # The final pick on the probe (the default) answers 500 references 13 times; it has its own
            # tests (tests/train/test_averaging.py, the enforcing view's run of every method).
            "train.final_pick=last",
            # With several teachers each names its own port (the simulated ones share the first's).
            *([] if any(o.startswith("teachers=") for o in overrides) else [f"teacher.http_port={TEST_HTTP_PORT}"]),
            *overrides,
        ])

    return make


def run_in_terminal(argv: list[str], columns: int, timeout: float = 300, env: dict | None = None) -> tuple[int, str]:
    """Run argv with a real terminal (a pty `columns` wide) as its stdin, stdout and stderr:
    (exit code, everything it wrote there, as the terminal received it)."""
    import fcntl
    import struct
    import subprocess
    import termios
    import threading

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # a terminal's buffer is small: a writer blocks unless someone reads
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=30)
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


# -- skips CI does not accept --------------------------------------------------------------
# With TADISTILL_STRICT_SKIPS=1 (.ci/run), a skipped test that tests/allowed_skips.txt does not
# list fails the run: a test that could run here and silently did not is a hole in CI.

_SKIPPED: list[tuple[str, str]] = []


def _allowed_skips() -> list[str]:
    lines = (Path(__file__).with_name("allowed_skips.txt")).read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _note_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append((report.nodeid, reason))


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_collectreport(report):
    _note_skip(report)


def _unlisted_skips() -> list[tuple[str, str]]:
    if os.environ.get("TADISTILL_STRICT_SKIPS") != "1":
        return []
    allowed = _allowed_skips()
    return [(node, why) for node, why in _SKIPPED if not any(node.startswith(prefix) for prefix in allowed)]


def pytest_sessionfinish(session, exitstatus):
    if _unlisted_skips():
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    unlisted = _unlisted_skips()
    if unlisted:
        terminalreporter.write_sep("=", f"{len(unlisted)} skipped test(s) not in tests/allowed_skips.txt", red=True)
        for node, why in unlisted:
            terminalreporter.write_line(f"{node}: {why}")


def tiny_run(run_dir, records, method: str, *overrides: str) -> list[str]:
    """A whole run at the smallest size that still reaches every step, in the driver's process,
    buying from `records` (the recorded_teacher fixture): seconds a method."""
    return ["data.synthetic.pool_size=60", "data.synthetic.test_size=8", f"models.cache_dir={MODEL_CACHE}",
            "budget.requests=16", "train.epochs=1", "train.launcher=local", "train.strategy=ddp",
            "train.num_workers=1", "train.global_batch_size=8", "train.micro_batch_size=8",
            "inference.launcher=local", "inference.num_samples=2", "selection.candidates=30",
            "trust.calibration_size=10", "teacher.source=recorded", f"teacher.recorded.files=[{records}]",
            "teacher.recorded.format=records", "teacher.recorded.match=id", "teacher.recorded.fields.id=id",
            f"method={method}", f"run_dir={run_dir}", *overrides]


@pytest.fixture(scope="session")
def recorded_teacher(tmp_path_factory, synthetic_models):
    """The simulated teacher's outputs for tiny_run's pool, recorded once: a purchase reads them."""
    from tadistill.config import load_config
    from tadistill.corpus.synthetic import synthetic_splits
    from tadistill.synthetic.teacher_server import TeacherProfile, write_teacher_records

    base = load_config(None, ["data.synthetic.pool_size=60", "data.synthetic.test_size=8"])
    return write_teacher_records(synthetic_splits(base.data)["train"],
                                 TeacherProfile.from_config(base.teacher.synthetic, base.data.synthetic),
                                 tmp_path_factory.mktemp("teacher") / "records.jsonl")

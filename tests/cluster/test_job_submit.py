"""`ray job submit` end to end: a head started with `ray start` on 127.0.0.1, the demo
submitted as a job with jobs/runtime_env.yaml, SUCCEEDED, its report read back, and the
teacher's API key, which reaches the job only through the nodes' environment (as from a
Kubernetes secret), found nowhere in the job's logs or metadata."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import MODEL_CACHE, free_port
from tests.teacher.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))

pytestmark = pytest.mark.slow


# The job API is driven from child processes: the auth mode a client uses is read once per
# process, and this one may already have started a Ray of its own.
JOB_INFO = """
import json, sys
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
info = client.get_job_info(sys.argv[2])
print(json.dumps({"status": info.status.value, "message": info.message, "logs": client.get_job_logs(sys.argv[2]),
                  "metadata": json.dumps(info.__dict__, default=str)}))
"""


def _job_api_up(address: str, env: dict) -> bool:
    probe = subprocess.run([RAY, "job", "list", "--address", address], env=env, capture_output=True, text=True)
    return probe.returncode == 0


def _job_info(address: str, job_id: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", JOB_INFO, address, job_id], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"reading job {job_id} failed: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _submit(command: list[str], env: dict, attempts: int = 20) -> subprocess.CompletedProcess:
    """`ray job submit`, again while the head's job agent is still starting (the job API
    answers before the agent that runs jobs has registered)."""
    for _ in range(attempts):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
        if "No available agent to submit job" not in done.stderr:
            return done
        time.sleep(5)
    return done


def _wait_for_dashboard(address: str, head: subprocess.Popen, env: dict, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with {head.returncode}")
        if _job_api_up(address, env):
            return
        time.sleep(2)
    raise TimeoutError(f"the job API at {address} did not come up in {timeout} s")


@pytest.fixture
def ray_head(tmp_path):
    """A separate Ray cluster (its own ports) whose nodes hold the teacher key in their env."""
    secret = "sk-e2e-" + uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # Ray protects a `ray start` cluster with a token (~/.ray/auth_token); clients send it in
    # token mode. Head and client set the mode alike, as the Ray docs ask.
    env["RAY_AUTH_MODE"] = "token"
    gcs, dashboard = free_port(), free_port()
    # The cluster's own session directory (logs of every worker, the job's driver log), short
    # enough for Ray's Unix sockets, so the test can read all of it for the key.
    temp_dir = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))
    # --block: the head's processes live as long as this one; killing its group stops exactly
    # this cluster (`ray stop` would stop every Ray on the machine, the test session's too).
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         # Every fixed default port too: another Ray on this machine (the test session's) holds them.
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
         f"--temp-dir={temp_dir}", "--num-cpus=4", "--disable-usage-stats"],
        env={**env, "OPENAI_API_KEY": secret}, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_dashboard(address, head, env)
        yield address, secret, env, temp_dir
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_the_demo_and_leaks_no_secret(ray_head, tmp_path):
    address, secret, env, ray_temp_dir = ray_head
    run_dir = tmp_path / "run"
    job_id = "tadistill-e2e-" + uuid.uuid4().hex[:8]
    with OpenAITestServer() as teacher:
        submit = _submit(
            [RAY, "job", "submit", "--address", address, "--submission-id", job_id,
             "--runtime-env", "jobs/runtime_env.yaml", "--",
             "python", "-m", "jobs.distill", "configs/demo.yaml", f"run_dir={run_dir}",
             f"models.cache_dir={MODEL_CACHE}", "teacher.source=openai", f"teacher.base_url={teacher.base_url}",
             "teacher.model=e2e-teacher", "teacher.api_key_env=OPENAI_API_KEY", f"teacher.http_port={free_port()}",
             "data.synthetic.pool_size=120", "data.synthetic.test_size=40", "budget.requests=40",
             "train.strategy=ddp", "train.num_workers=1", "train.epochs=2", "inference.num_samples=3",
             # Training and inference in the driver (their Ray paths have their own tests); the
             # teacher's calls still run on Ray Data workers, which must find the key.
             "train.launcher=local", "inference.launcher=local"],
            env,
        )
        seen = dict(teacher.authorizations)
    assert submit.returncode == 0, f"ray job submit: {submit.stdout[-3000:]}\n{submit.stderr[-3000:]}"
    job = _job_info(address, job_id, env)
    logs = job["logs"]
    assert job["status"] == "SUCCEEDED", f"job {job['status']}: {job['message']}\n{logs[-3000:]}\n{submit.stderr[-2000:]}"
    report = (run_dir / "report.md").read_text()
    assert "accuracy" in report and (run_dir / "manifest.json").exists()
    assert f"tadistill job: run directory: {run_dir}" in logs  # the job says where its outputs go
    assert seen == {f"Bearer {secret}": 40}  # the key reached the teacher: 40 paid requests
    metadata = job["metadata"]
    token_file = Path.home() / ".ray" / "auth_token"
    secrets = {"the teacher's API key": secret}
    if token_file.exists():
        secrets["Ray's auth token"] = token_file.read_text().strip()
    for place, text in (("job logs", logs), ("job metadata", metadata), ("submit output", submit.stdout + submit.stderr)):
        for name, value in secrets.items():
            assert value not in text, f"{name} appears in the {place}"
    # Every file the run wrote (Parquet decoded too: compression could hide a string) and every
    # file of the cluster's session: logs of the driver, the workers, Serve and the job agent.
    places = _files_holding(run_dir, secrets) + _files_holding(ray_temp_dir, secrets)
    assert places == [], f"secrets found in: {places}"
    assert len(list(run_dir.rglob("*.parquet"))) > 10 and len(list(ray_temp_dir.rglob("*.log"))) > 5


def _files_holding(root: Path, secrets: dict[str, str]) -> list[str]:
    import pyarrow.parquet as pq

    found = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_socket():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if path.suffix == ".parquet":
            data += pq.read_table(path).to_pandas().astype(str).to_csv().encode()
        found += [f"{path} ({name})" for name, value in secrets.items() if value.encode() in data]
    return found

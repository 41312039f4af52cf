"""`ray job submit` end to end: a head started with `ray start` on 127.0.0.1, the demo
submitted as a job with jobs/runtime_env.yaml, SUCCEEDED, its report read back, and the
teacher's API key, which reaches the job only through the nodes' environment (as from a
Kubernetes secret), found nowhere in the job's logs or metadata."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.cluster.local_cluster import RAY, LocalCluster, base_env, job_info
from tests.cluster.local_cluster import submit as submit_job
from tests.conftest import MODEL_CACHE, free_port
from tests.teacher.openai_server import OpenAITestServer

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_head(tmp_path):
    """A separate Ray cluster (its own ports) whose nodes hold the teacher key in their env."""
    secret = "sk-e2e-" + uuid.uuid4().hex
    # The cluster's own session directory (logs of every worker, the job's driver log), short
    # enough for Ray's Unix sockets, so the test can read all of it for the key.
    cluster = LocalCluster(tmp_path, env=base_env(), head_cpus=4)
    try:
        cluster.start(head_env={"OPENAI_API_KEY": secret})
        yield cluster.address, secret, cluster.env, cluster.temp_dir
    finally:
        cluster.stop()


def test_ray_job_submit_runs_the_demo_and_leaks_no_secret(ray_head, tmp_path):
    address, secret, env, ray_temp_dir = ray_head
    run_dir = tmp_path / "run"
    job_id = "tadistill-e2e-" + uuid.uuid4().hex[:8]
    with OpenAITestServer() as teacher:
        submit = submit_job(
            [RAY, "job", "submit", "--address", address, "--submission-id", job_id,
             "--runtime-env", "jobs/runtime_env.yaml", "--",
             "python", "-m", "jobs.distill", "configs/demo.yaml", f"run_dir={run_dir}",
             f"models.cache_dir={MODEL_CACHE}", "teacher.source=openai", f"teacher.base_url={teacher.base_url}",
             "teacher.model=e2e-teacher", "teacher.api_key_env=OPENAI_API_KEY", f"teacher.http_port={free_port()}",
             "data.synthetic.pool_size=120", "data.synthetic.test_size=40", "budget.requests=40",
             "train.strategy=ddp", "train.num_workers=1", "train.epochs=2", "inference.num_samples=3",
             # Training and inference in the driver (their Ray paths have their own tests); the
             # teacher's calls still run on Ray Data workers, which must find the key.
             "train.launcher=local", "inference.launcher=local", "train.final_pick=last"],
            env,
        )
        seen = dict(teacher.authorizations)
    assert submit.returncode == 0, f"ray job submit: {submit.stdout[-3000:]}\n{submit.stderr[-3000:]}"
    job = job_info(address, job_id, env)
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

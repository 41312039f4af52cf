"""More than one node: a head with no CPUs (as cluster/aws.yaml and gcp.yaml configure it) and two
worker nodes, `a` and `b`, each its own raylet on 127.0.0.1 with a custom resource named after it.

- A whole run submitted with `ray job submit` spreads over both workers: Ray's state API shows
  teacher workers, Serve replicas and Ray Train workers on `a` and on `b`, nothing heavy on the
  head, and the driver, the budget and the training progress actors on the head; its rows are
  those of the same run on one local node.
- Node loss: worker `b` is killed (SIGKILL to its raylet and every process it started, a spot
  instance taken back) in the middle of the teacher purchase, of TA scoring and of the final
  training, and comes back 15 s later as a new node (the autoscaler's replacement). The run
  either finishes by itself or stops, and the same command resumes it; either way no row is
  lost, no stored teacher response is bought again, and training resumes from a checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.cluster.local_cluster import RAY, REPO, LocalCluster, base_env, job_info, submit, wait_until
from tests.conftest import MODEL_CACHE, free_port
from tests.teacher.openai_server import OpenAITestServer

pytestmark = pytest.mark.slow

WORKER_CPUS = 3
# jobs/runtime_env.yaml less its pip list: the nodes share this machine's environment, and three
# nodes building the same virtualenv would triple a minute of set-up (tests/cluster/test_job_submit.py
# runs the file as it is).
RUNTIME_ENV = json.dumps({k: v for k, v in yaml.safe_load((REPO / "jobs" / "runtime_env.yaml").read_text()).items()
                          if k != "pip"})
BUDGET = 40
TADISTILL = str(Path(sys.executable).with_name("tadistill"))


def run_overrides(run_dir: Path, teacher_url: str) -> list[str]:
    """A small whole run whose every step can spread: two teacher workers, two replicas of each
    deployment (at most one a node), two Ray Train workers placed SPREAD, checkpoints every 2 steps."""
    return [
        "configs/demo.yaml", f"run_dir={run_dir}", f"models.cache_dir={MODEL_CACHE}",
        "teacher.source=openai", f"teacher.base_url={teacher_url}", "teacher.model=cluster-teacher",
        "teacher.workers=2", "teacher.concurrency=2", f"teacher.http_port={free_port()}",
        "data.synthetic.pool_size=200", "data.synthetic.test_size=40", "data.num_blocks=8",
        f"budget.requests={BUDGET}", "selection.candidates=120",
        "train.launcher=ray_train", "train.strategy=ddp", "train.num_workers=2", "train.placement_strategy=SPREAD",
        "train.epochs=20", "train.global_batch_size=16", "train.micro_batch_size=8", "train.checkpoint_every_steps=10",
        "inference.launcher=serve", "inference.replicas=2", "inference.max_replicas_per_node=1",
        "inference.num_cpus=1", "inference.num_samples=4", "inference.batch_size=4",
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("cluster-logs")
    # The teacher's key reaches the teacher workers from the nodes' environment, as on a cloud.
    local = LocalCluster(logs, env={**base_env(), "OPENAI_API_KEY": "sk-cluster-test"}, head_cpus=0)
    try:
        local.start()
        local.add_worker("a", WORKER_CPUS)
        local.add_worker("b", WORKER_CPUS)
        yield local
    finally:
        local.stop()


def _submit_run(cluster: LocalCluster, overrides: list[str], wait: bool = True):
    job_id = "tadistill-" + uuid.uuid4().hex[:8]
    command = [RAY, "job", "submit", *([] if wait else ["--no-wait"]), "--address", cluster.address,
               "--submission-id", job_id, "--runtime-env-json", RUNTIME_ENV, "--",
               sys.executable, "-m", "jobs.distill", *overrides]
    done = submit(command, cluster.env)
    assert wait or done.returncode == 0, f"ray job submit: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return job_id, done


def _wait_for_job(cluster: LocalCluster, job_id: str, timeout: float = 1500) -> dict:
    def ended():
        info = job_info(cluster.address, job_id, cluster.env)
        return info if info["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None

    return wait_until(ended, timeout, f"job {job_id} ending", every=3)


def _rows(run_dir: Path) -> dict[str, set]:
    """What a run produced, step by step, as sets of row keys."""
    def ids(relative: str, columns=("id",)) -> set:
        frame = pd.read_parquet(run_dir / relative, columns=list(columns))
        return set(map(tuple, frame.to_numpy().tolist()))

    return {
        "corpus": ids("corpus/rows.parquet"),
        "teacher": ids("teacher/warmup.parquet") | ids("teacher/round1.parquet"),
        "samples": ids("round1/samples.parquet", ("id", "k")),
        "scored": ids("round1/samples_scored.parquet", ("id", "k")),
        "weighted": ids("round1/trust.parquet"),
        "answers": ids("eval/answers.parquet"),
    }


def test_a_run_spreads_over_two_worker_nodes_and_leaves_the_head_to_the_driver(cluster, tmp_path):
    with OpenAITestServer() as teacher:
        job_id, done = _submit_run(cluster, run_overrides(tmp_path / "run", teacher.base_url))
        paid = teacher.served
    job = job_info(cluster.address, job_id, cluster.env)
    assert job["status"] == "SUCCEEDED", f"{job['message']}\n{job['logs'][-4000:]}\n{done.stderr[-2000:]}"
    assert paid == BUDGET

    placement = cluster.placement()
    names = cluster.node_names(placement)
    where: dict[str, set] = {}
    for actor in placement["actors"]:
        where.setdefault(actor["class_name"], set()).add(names.get(actor["node_id"], "?"))
    teacher_workers = set().union(*(n for c, n in where.items() if c.startswith("MapWorker") or "MapWorker" in c))
    replicas = set().union(*(n for c, n in where.items() if c.startswith("ServeReplica")))
    trainers = set().union(*(n for c, n in where.items() if "TrainWorker" in c))
    assert {"a", "b"} <= teacher_workers, where
    assert replicas == {"a", "b"}, where
    assert trainers == {"a", "b"}, where
    # The head (num-cpus 0) ran the driver and its bookkeeping, nothing heavy.
    assert names[job["driver_node_id"]] == "head"
    assert where["Budget"] == {"head"} and where["StageProgress"] == {"head"}, where
    assert "head" not in teacher_workers | replicas | trainers

    # The same run on one local node (its own Ray) produces the same rows at every step.
    with OpenAITestServer() as teacher:
        overrides = run_overrides(tmp_path / "one-node", teacher.base_url)
        # One node takes both replicas of a deployment.
        local = subprocess.run([TADISTILL, "run", *overrides, "ray.num_cpus=6", "inference.max_replicas_per_node=null"],
                               cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=1500)
    assert local.returncode == 0, local.stderr[-3000:]
    assert _rows(tmp_path / "run") == _rows(tmp_path / "one-node")


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return {}


def _final_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "ray_train").glob("final-*/checkpoint_*"))


# step -> (when to kill worker b, the step that must not have finished at that moment)
TRIGGERS = {
    "teacher purchase": (lambda run_dir, teacher: teacher.served >= 3, "warmup.buy"),
    "TA scoring": (lambda run_dir, teacher: any((run_dir / "round1" / "scored_parts").glob("*.parquet")),
                   "round1.score"),
    "final training": (lambda run_dir, teacher: bool(_final_checkpoints(run_dir)), "final.train"),
}


@pytest.mark.parametrize("step", list(TRIGGERS))
def test_losing_a_worker_node_loses_no_row_and_pays_no_response_twice(cluster, tmp_path, step, record_property):
    trigger, must_be_running = TRIGGERS[step]
    run_dir = tmp_path / "run"
    with OpenAITestServer(latency=0.5) as teacher:
        overrides = run_overrides(run_dir, teacher.base_url)
        job_id, _ = _submit_run(cluster, overrides, wait=False)
        def reached() -> bool:
            if trigger(run_dir, teacher):
                return True
            status = job_info(cluster.address, job_id, cluster.env)["status"]
            assert status in ("PENDING", "RUNNING"), f"the job ended ({status}) before {step} began"
            return False

        wait_until(reached, 1200, f"the run reaching the {step}", every=0.2)
        cluster.kill_worker("b")
        killed_during = must_be_running not in _manifest(run_dir)
        stored_at_kill = teacher.served
        # The replacement node joins 15 s later, while the run carries on (or has stopped).
        back = threading.Timer(15, cluster.restart_worker, args=("b",))
        back.start()
        first = _wait_for_job(cluster, job_id)
        back.join()
        resumed = first["status"] != "SUCCEEDED"
        if resumed:  # stopped with a message: the same command, resubmitted, finishes the run
            assert first["message"] or first["logs"], "a run that stopped must say why"
            job_id, _ = _submit_run(cluster, overrides)
            second = job_info(cluster.address, job_id, cluster.env)
            assert second["status"] == "SUCCEEDED", f"{second['message']}\n{second['logs'][-4000:]}"
        paid_twice = {q: n for q, n in teacher.paid_per_question.items() if n > 1}
        served = teacher.served
    record_property("behaviour", "stopped, resumed by the same command" if resumed else "finished by itself")
    assert killed_during, f"worker b was killed after {must_be_running} had finished: the test missed its step"
    manifest = _manifest(run_dir)
    assert "evaluate" in manifest
    rows = _rows(run_dir)
    assert len(rows["answers"]) == 40
    assert len(rows["scored"]) == len(rows["samples"]) and {i for i, _ in rows["scored"]} == {
        i for i, _ in rows["samples"]}
    # A response stored before the kill is never bought again; only requests in flight on the
    # lost node (at most teacher.concurrency) may have been paid twice, and those count against
    # the budget, which the teacher never serves past.
    assert len(paid_twice) <= 2 and served <= BUDGET, (stored_at_kill, paid_twice)
    assert len(rows["teacher"]) >= BUDGET - len(paid_twice)
    if step == "final training":
        assert manifest["final.train"]["resumed_at"], "the final training restarted from scratch, not from its checkpoint"
    print(f"{step}: {'stopped; the same command resumed it' if resumed else 'finished on its own'}; "
          f"{served} requests served, {len(paid_twice)} paid twice")

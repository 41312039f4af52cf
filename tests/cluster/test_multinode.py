"""More than one node: a head with no CPUs (as cluster/aws.yaml and gcp.yaml configure it) and two
worker nodes, `a` and `b`, each its own raylet on 127.0.0.1 with a custom resource named after it.

- A whole run submitted with `ray job submit` spreads over both workers: Ray's state API shows
  teacher workers, Serve replicas and Ray Train workers on `a` and on `b`, nothing heavy on the
  head, and the driver, the budget and the training progress actors on the head.
- Node loss: the same run again, in which worker `b` is killed (SIGKILL to its raylet and every
  process it started, a spot instance taken back) in the middle of the teacher purchase, then of
  TA scoring, then of the final training, and each time comes back 15 s later as a new node (the
  autoscaler's replacement). The run either carries on by itself or stops, and the same command
  resumes it; either way its rows are those of the run that lost nothing (bar questions the budget
  could no longer buy after paying twice for requests in flight on the lost node), no stored
  teacher response is bought again, and training resumes from a checkpoint.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

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
# The final training's optimizer steps in the run that loses b: long enough to lose a node in the
# middle of it. (The run that loses nothing trains 10, as its round-1 student does: the final
# training writes none of the rows the two runs compare.)
STEPS_TO_LOSE_A_NODE_IN = 50


def run_overrides(run_dir: Path, teacher_url: str, final_steps: int | None = None) -> list[str]:
    """A small whole run whose every step can spread: two teacher workers, two replicas of each
    deployment (at most one a node), two Ray Train workers placed SPREAD, a checkpoint every 10
    steps. Each student trains 4 epochs (10 optimizer steps), the final one `final_steps` if given."""
    return [
        "configs/demo.yaml", f"run_dir={run_dir}", f"models.cache_dir={MODEL_CACHE}",
        "teacher.source=openai", f"teacher.base_url={teacher_url}", "teacher.model=cluster-teacher",
        "teacher.workers=2", "teacher.concurrency=2", f"teacher.http_port={free_port()}",
        "data.synthetic.pool_size=200", "data.synthetic.test_size=40", "data.num_blocks=8",
        f"budget.requests={BUDGET}", "selection.candidates=120",
        "train.launcher=ray_train", "train.strategy=ddp", "train.num_workers=2", "train.placement_strategy=SPREAD",
        "train.epochs=4", f"train.steps={'null' if final_steps is None else final_steps}",
        "train.global_batch_size=16", "train.micro_batch_size=8", "train.checkpoint_every_steps=10",
        "inference.launcher=serve", "inference.replicas=2", "inference.max_replicas_per_node=1",
        "inference.num_cpus=1", "inference.num_samples=4", "inference.batch_size=4",
        "train.final_pick=last",  # the final pick on the probe has its own tests; here the spread steps are
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


@pytest.fixture(scope="module")
def undisturbed(cluster, tmp_path_factory) -> SimpleNamespace:
    """The run that loses nothing, submitted once: the spread test reads where its work ran, the
    node-loss test compares its own rows with this run's."""
    run_dir = tmp_path_factory.mktemp("undisturbed") / "run"
    with OpenAITestServer() as teacher:
        job_id, done = _submit_run(cluster, run_overrides(run_dir, teacher.base_url))
        paid = teacher.served
    job = job_info(cluster.address, job_id, cluster.env)
    assert job["status"] == "SUCCEEDED", f"{job['message']}\n{job['logs'][-4000:]}\n{done.stderr[-2000:]}"
    placement = cluster.placement()
    return SimpleNamespace(run_dir=run_dir, job=job, paid=paid, placement=placement,
                           names=cluster.node_names(placement))


def test_a_run_spreads_over_two_worker_nodes_and_leaves_the_head_to_the_driver(undisturbed):
    assert undisturbed.paid == BUDGET
    names = undisturbed.names
    where: dict[str, set] = {}
    for actor in undisturbed.placement["actors"]:
        where.setdefault(actor["class_name"], set()).add(names.get(actor["node_id"], "?"))
    teacher_workers = set().union(*(n for c, n in where.items() if c.startswith("MapWorker") or "MapWorker" in c))
    replicas = set().union(*(n for c, n in where.items() if c.startswith("ServeReplica")))
    trainers = set().union(*(n for c, n in where.items() if "TrainWorker" in c))
    assert {"a", "b"} <= teacher_workers, where
    assert replicas == {"a", "b"}, where
    assert trainers == {"a", "b"}, where
    # The head (num-cpus 0) ran the driver and its bookkeeping, nothing heavy.
    assert names[undisturbed.job["driver_node_id"]] == "head"
    assert where["Budget"] == {"head"} and where["StageProgress"] == {"head"}, where
    assert "head" not in teacher_workers | replicas | trainers
    # Every row of every step, once: each candidate sampled 4 times and each sample scored, the
    # budget bought and each bought output weighted, each test question answered.
    splits = pd.read_parquet(undisturbed.run_dir / "corpus/rows.parquet", columns=["split"])["split"]
    assert splits.value_counts().to_dict() == {"train": 200, "test": 40}
    rows = _rows(undisturbed.run_dir)
    assert len(rows["teacher"]) == BUDGET == len(rows["weighted"])
    assert rows["weighted"] == rows["teacher"] and len(rows["answers"]) == 40
    assert rows["scored"] == rows["samples"] and len(rows["samples"]) == 4 * len({i for i, _ in rows["samples"]})


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return {}


def _final_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "ray_train").glob("final-*/checkpoint_*"))


# The steps worker b is lost in, in the order a run reaches them: (when to kill it, the step that
# must not have finished at that moment).
KILLS = {
    "teacher purchase": (lambda run_dir, teacher: teacher.served >= 3, "warmup.buy"),
    "TA scoring": (lambda run_dir, teacher: any((run_dir / "round1" / "scored_parts").glob("*.parquet")),
                   "round1.score"),
    "final training": (lambda run_dir, teacher: bool(_final_checkpoints(run_dir)), "final.train"),
}


def test_losing_a_worker_node_in_each_step_loses_no_row_and_pays_no_response_twice(cluster, undisturbed, tmp_path,
                                                                                   record_property):
    """One run loses worker b three times: in the teacher purchase, in TA scoring and in the final
    training (one run rather than three: CI's time). Each time b comes back 15 s later; a run that
    stopped is resubmitted with the same command once b is back. Its rows are the undisturbed run's."""
    run_dir = tmp_path / "run"
    behaviour = []
    with OpenAITestServer(latency=0.5) as teacher:
        overrides = run_overrides(run_dir, teacher.base_url, final_steps=STEPS_TO_LOSE_A_NODE_IN)
        job_id, _ = _submit_run(cluster, overrides, wait=False)
        back = None
        for step, (trigger, must_be_running) in KILLS.items():
            job_id, resumed = _run_until(cluster, overrides, job_id, back, lambda: trigger(run_dir, teacher), step)
            behaviour += ["stopped, resumed by the same command"] * resumed
            if back is not None:
                back.join()  # b is alive again before it is taken again
            cluster.kill_worker("b")
            assert must_be_running not in _manifest(run_dir), (
                f"worker b was killed after {must_be_running} had finished: the test missed its step")
            behaviour.append(f"b lost in the {step}")
            # The replacement node joins 15 s later, while the run carries on (or has stopped).
            back = threading.Timer(15, cluster.restart_worker, args=("b",))
            back.start()
        last = _wait_for_job(cluster, job_id)
        back.join()
        if last["status"] != "SUCCEEDED":  # stopped with a message: the same command finishes the run
            assert last["message"] or last["logs"], "a run that stopped must say why"
            behaviour.append("stopped, resumed by the same command")
            job_id, _ = _submit_run(cluster, overrides)
            again = job_info(cluster.address, job_id, cluster.env)
            assert again["status"] == "SUCCEEDED", f"{again['message']}\n{again['logs'][-4000:]}"
        paid_twice = {q: n for q, n in teacher.paid_per_question.items() if n > 1}
        served = teacher.served
    record_property("behaviour", "; ".join(behaviour))
    manifest = _manifest(run_dir)
    assert "evaluate" in manifest
    rows, expected = _rows(run_dir), _rows(undisturbed.run_dir)
    # Every step's rows are those of the run that lost nothing: the same corpus, the same questions
    # sampled and scored (each sample once), the same test answers, and the same purchase...
    for step in ("corpus", "samples", "scored", "answers"):
        assert rows[step] == expected[step], f"{step}: {len(rows[step] ^ expected[step])} rows differ"
    # ...bar what the budget could no longer buy: a response stored before a kill is never bought
    # again; only requests in flight on the lost node (at most teacher.concurrency) may have been
    # paid twice, and those count against the budget, which the teacher never serves past.
    assert len(paid_twice) <= 2 and served <= BUDGET, paid_twice
    assert rows["teacher"] <= expected["teacher"] and len(rows["teacher"]) >= BUDGET - len(paid_twice)
    assert rows["weighted"] == rows["teacher"]
    assert manifest["final.train"]["resumed_at"], "the final training restarted from scratch, not from its checkpoint"
    print(f"{'; '.join(behaviour)}; {served} requests served, {len(paid_twice)} paid twice")


def _run_until(cluster: LocalCluster, overrides: list[str], job_id: str, back, reached, step: str):
    """Wait until reached() holds for the running job. A job that stopped (an earlier loss of b) is
    resubmitted, once b is back, as a user would; a job that ended well before the step is an error.
    Returns the job now running and how many times it was resubmitted."""
    resumed = 0
    while not reached():
        status = job_info(cluster.address, job_id, cluster.env)["status"]
        assert status != "SUCCEEDED", f"the run ended before the {step} began"
        if status in ("FAILED", "STOPPED"):
            if back is not None:
                back.join()
            job_id, _ = _submit_run(cluster, overrides, wait=False)
            resumed += 1
            continue
        time.sleep(0.2)
    return job_id, resumed

"""A real multi-node Ray cluster on one machine, for the slow cluster tests: `ray start --head`
and `ray start --address=...` worker nodes on 127.0.0.1, each with its own raylet, resources
and ports, each in a process group of its own so a test can take one node away (SIGKILL to its
raylet and every worker it started) and bring it back.

The job API and the state API are driven from child processes: the auth mode a client uses is
read once per process, and the test process may already have started a Ray of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))

STOP_S = 10  # how long a node is given to stop by itself at the end of a test
WORKER_PORTS: dict[str, int] = {}  # worker node name -> the first of its worker processes' ports

JOB_INFO = """
import json, sys
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
info = client.get_job_info(sys.argv[2])
print(json.dumps({"status": info.status.value, "message": info.message, "logs": client.get_job_logs(sys.argv[2]),
                  "driver_node_id": info.driver_node_id,
                  "metadata": json.dumps(info.__dict__, default=str)}))
"""

# Every actor and node the cluster has known (dead ones included): where the work ran.
PLACEMENT = """
import json, sys
from ray.util.state import list_actors, list_nodes
nodes = {n.node_id: {"resources": n.resources_total, "state": n.state, "is_head": n.is_head_node}
         for n in list_nodes(address=sys.argv[1], detail=True, limit=1000)}
actors = [{"class_name": a.class_name, "node_id": a.node_id, "state": a.state, "name": a.name}
          for a in list_actors(address=sys.argv[1], detail=True, limit=10000)]
print(json.dumps({"nodes": nodes, "actors": actors}))
"""


def job_api_up(address: str, env: dict) -> bool:
    probe = subprocess.run([RAY, "job", "list", "--address", address], env=env, capture_output=True, text=True)
    return probe.returncode == 0


def job_info(address: str, job_id: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", JOB_INFO, address, job_id], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"reading job {job_id} failed: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_until(ready, timeout: float, what: str, every: float = 2.0):
    """Poll ready() until it returns something true (returned), or raise TimeoutError naming what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def submit(command: list[str], env: dict, attempts: int = 20):
    """`ray job submit`, again while the head's job agent is still starting (the job API
    answers before the agent that runs jobs has registered)."""
    for _ in range(attempts):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        if "No available agent to submit job" not in done.stderr:
            return done
        time.sleep(5)
    return done


def wait_for_dashboard(address: str, head: subprocess.Popen, env: dict, timeout: float = 180) -> None:
    def up() -> bool:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with {head.returncode}")
        return job_api_up(address, env)

    wait_until(up, timeout, f"the job API at {address} coming up")


def _signal_node(process: subprocess.Popen, sig: int) -> None:
    """`sig` to a node's whole process group (its raylet and every process it started)."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:  # every process of the node has already gone
        pass


@dataclass
class LocalCluster:
    """A head (optionally with no CPUs, as the launcher YAMLs configure it) and named worker nodes."""

    logs: Path
    env: dict = field(default_factory=dict)
    head_cpus: int = 0
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp")))
    head: subprocess.Popen | None = None
    workers: dict = field(default_factory=dict)  # name -> (Popen, num_cpus)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, head_env: dict | None = None) -> "LocalCluster":
        # --block: the node's processes live as long as this one; killing its group stops exactly
        # this node (`ray stop` would stop every Ray on the machine, the test session's too).
        self.head = subprocess.Popen(
            [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
             # Every fixed default port too: another Ray on this machine (the test session's) holds them.
             f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
             f"--temp-dir={self.temp_dir}", f"--num-cpus={self.head_cpus}", '--resources={"head_node": 1}',
             "--min-worker-port=10002", "--max-worker-port=11999",
             "--disable-usage-stats"],
            env={**self.env, **(head_env or {})}, stdout=open(self.logs / "head.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_dashboard(self.address, self.head, self.env)
        return self

    def add_worker(self, name: str, num_cpus: int, worker_env: dict | None = None) -> None:
        """A worker node with a custom resource named after it, so placement is observable."""
        # A range of its own for its worker processes (within Ray's 10002-19999, below the ports
        # free_port hands out), kept by a restarted node of the same name.
        low = WORKER_PORTS[name] if name in WORKER_PORTS else WORKER_PORTS.setdefault(name, 12000 + 2000 * len(WORKER_PORTS))
        # A session directory of its own, as on a machine of its own: nodes sharing one would build
        # the job's runtime environment (working dir, virtualenv) into the same folders at once.
        temp_dir = self.temp_dir / f"node-{name}"
        process = subprocess.Popen(
            [RAY, "start", "--block", f"--address=127.0.0.1:{self.gcs_port}", "--node-ip-address=127.0.0.1",
             f"--temp-dir={temp_dir}",
             f"--num-cpus={num_cpus}", f'--resources={{"{name}": 1}}',
             f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
             f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
             f"--min-worker-port={low}", f"--max-worker-port={low + 1999}", "--disable-usage-stats"],
            env={**self.env, **(worker_env or {})}, stdout=open(self.logs / f"{name}.log", "a"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers[name] = (process, num_cpus, worker_env)
        self.wait_for_nodes()

    def kill_worker(self, name: str) -> None:
        """The node is gone at once, as a preempted spot instance: SIGKILL to its whole group."""
        process = self.workers[name][0]
        _signal_node(process, signal.SIGKILL)
        process.wait(timeout=60)

    def restart_worker(self, name: str) -> None:
        _, num_cpus, worker_env = self.workers.pop(name)
        self.add_worker(name, num_cpus, worker_env)

    def wait_for_nodes(self, timeout: float = 120) -> None:
        """Until every worker node started here is alive in the cluster's view."""
        def all_alive() -> bool:
            alive = {name for info in self.placement()["nodes"].values() if info["state"] == "ALIVE"
                     for name in self.workers if name in info["resources"]}
            return alive == set(self.workers)

        wait_until(all_alive, timeout, f"worker nodes {sorted(self.workers)} joining")

    def placement(self) -> dict:
        out = subprocess.run([sys.executable, "-c", PLACEMENT, self.address], env=self.env,
                             capture_output=True, text=True)
        assert out.returncode == 0, f"Ray's state API failed: {out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    def node_names(self, placement: dict) -> dict[str, str]:
        """node id -> 'head' or the worker's name (each new raylet is a new node id)."""
        names = {}
        for node_id, info in placement["nodes"].items():
            if info["is_head"]:
                names[node_id] = "head"
            else:
                names[node_id] = next((n for n in self.workers if n in info["resources"]), "?")
        return names

    def stop(self) -> None:
        # Every node is asked at once: `ray start --block` takes up to a minute over its own
        # shutdown, so what has not ended within STOP_S is killed with its whole process group, as
        # kill_worker does.
        nodes = [process for process, *_ in self.workers.values()] + ([self.head] if self.head else [])
        for process in nodes:
            _signal_node(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        for process in nodes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_node(process, signal.SIGKILL)  # its last processes too, whether or not `ray start` has ended
            process.wait(timeout=60)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # Ray protects a `ray start` cluster with a token (~/.ray/auth_token); clients send it in
    # token mode. Head and client set the mode alike, as the Ray docs ask.
    env["RAY_AUTH_MODE"] = "token"
    return env

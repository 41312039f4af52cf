"""Ray and Serve, started only when a step that needs them actually runs.

A rerun whose steps are all finished starts neither: it costs seconds and no request.
"""

from __future__ import annotations

import logging
import os

import ray

from .interrupt import kept
from .config import Config

log = logging.getLogger(__name__)


def ray_environment() -> None:
    """What every Ray a tadistill process starts needs in its environment (set before ray.init:
    its processes inherit it); the benchmarks and the tests call this too."""
    # Quieter logs: repeated lines from workers folded into one.
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Serve gives its HTTP proxy 5 s to come up, which a busy 2-core laptop misses (the proxy is
    # then killed and the run fails).
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")


def on_drivers_node():
    """Scheduling that keeps a run's bookkeeping actor (the budget, the training progress) on the
    driver's node: the driver holds the run, so the actor is lost only when the run is, never with
    a worker node (spot and preemptible workers come and go; the head and driver stay)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


class Services:
    def __init__(self, config: Config):
        self.config = config
        self._ray_started_here = False

    @property
    def owns_ray(self) -> bool:
        """Whether this run started its own Ray (shut down with it) or joined a cluster (left running)."""
        return self._ray_started_here

    def ray(self) -> None:
        if ray.is_initialized():
            return
        ray_environment()
        kwargs = {"log_to_driver": True, "include_dashboard": False}
        with kept():  # ray.init sets a SIGTERM handler that exits mid-step; ours stays
            if self.config.ray.address:
                ray.init(address=self.config.ray.address, **kwargs)
            else:
                # "local": a new Ray of our own, even where a `ray start` cluster runs on this machine
                # (ray.init() would join that one, and refuse num_cpus): ray.address names a cluster to join.
                ray.init(address="local", num_cpus=self.config.ray.num_cpus, **kwargs)
                self._ray_started_here = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

    def serve(self) -> None:
        """Ray plus Serve's HTTP proxy on teacher.http_host:teacher.http_port (127.0.0.1 by default)."""
        self.ray()
        serve_http_port(self.config.teacher.http_host, self.config.teacher.http_port)

    def shutdown(self) -> None:
        """Stop the Ray this run started; a cluster it joined keeps running (each part the run
        deployed there, the simulated teacher say, is taken down by its owner)."""
        if not ray.is_initialized() or not self._ray_started_here:
            return
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def serve_http_port(host: str, port: int) -> int:
    """Start Serve's HTTP proxy on host:port, or find the port of the one already running.

    Serve keeps the HTTP options it was first started with for the life of the cluster.
    """
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    try:
        from ray.serve.context import _get_global_client

        return int(_get_global_client().http_config.port)
    except Exception:  # the private client moved: trust the configured port
        return port

"""Ray and the teacher endpoint, started only when a step that needs them actually runs.

A rerun whose steps are all finished starts neither: it costs seconds and no request.
"""

from __future__ import annotations

import logging
import os

import ray

from .config import Config

log = logging.getLogger(__name__)


class Services:
    def __init__(self, config: Config):
        self.config = config
        self._ray_started_here = False
        self._teacher_url: str | None = None

    def ray(self) -> None:
        if ray.is_initialized():
            return
        # Quieter logs and no progress spam from Ray Data's per-operator bars; ours remain.
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        kwargs = {"log_to_driver": True, "include_dashboard": False}
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

    def teacher_url(self) -> str:
        if self._teacher_url:
            return self._teacher_url
        teacher = self.config.teacher
        if teacher.source == "recorded":
            raise RuntimeError("a recorded teacher answers from its files; it has no endpoint")
        if teacher.source == "openai":
            self._teacher_url = teacher.base_url
        else:
            from .synthetic.teacher_server import TeacherProfile, start_teacher

            self.serve()
            profile = TeacherProfile.from_config(teacher.synthetic, self.config.data.synthetic)
            self._teacher_url = start_teacher(teacher.model, profile, teacher.http_port, teacher.http_host)
            log.info("simulated teacher serving at %s", self._teacher_url)
        return self._teacher_url

    def serve(self) -> None:
        """Ray plus Serve's HTTP proxy on teacher.http_host:teacher.http_port (127.0.0.1 by default)."""
        from .synthetic.teacher_server import serve_http_port

        self.ray()
        serve_http_port(self.config.teacher.http_host, self.config.teacher.http_port)

    def shutdown(self) -> None:
        if not ray.is_initialized():
            return
        from ray import serve

        if self._ray_started_here:
            serve.shutdown()
            ray.shutdown()
        elif self._teacher_url and self.config.teacher.source == "synthetic":
            # A cluster we joined keeps its Serve; take away only what we deployed.
            from .synthetic.teacher_server import TEACHER_APP

            serve.delete(TEACHER_APP)
        self._teacher_url = None

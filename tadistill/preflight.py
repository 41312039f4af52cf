"""What a run checks before its first step, so that no teacher request is paid for a run that
cannot finish: the student and the TA load (config and tokenizer), the data files are there and
parse, the launchers' resources fit the Ray the run starts, and each teacher answers (its source's
`preflight`: the key, the endpoint, the model). The run directory's writability is RunDir's, a
money budget's prices the config's. Each problem is one line naming the key: exit 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .artifacts import is_purchase_step
from .config import ConfigError, SYNTHETIC

if TYPE_CHECKING:
    from .config import Config
    from .context import RunContext


def check_before_running(ctx: "RunContext", unfinished: list[str]) -> None:
    """Everything cheap to check that would otherwise fail a run after it paid the teacher, the
    cheapest first (a model may have to be built before it can be loaded); run when some step is
    `unfinished` (a finished run's rerun loads nothing)."""
    from .corpus.read import check_files

    if not unfinished:
        return
    check_resources(ctx.config)
    if "corpus" in unfinished:
        check_files(ctx.config.data)
    if any(is_purchase_step(name) for name in unfinished):
        for teacher in ctx.teachers:
            teacher.preflight()  # a missing key or a dead endpoint stops the run here, in seconds
    check_models(ctx.config, ctx.models())


def check_models(config: "Config", paths: dict[str, str]) -> None:
    """Each model's config and tokenizer load through from_pretrained, as every step loads them."""
    for role, path in paths.items():
        given = getattr(config.models, role)
        if _looks_like_a_path(path) and not Path(path).expanduser().exists():
            raise ConfigError(f"models.{role} {given!r}: no such folder (a local folder, or a hub name for "
                              "from_pretrained)")
        try:
            _loads(path)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for a bad path
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = "" if given == SYNTHETIC else f" {given!r}"
            raise ConfigError(f"models.{role}{where} cannot be loaded with from_pretrained: {reason}") from None


def _looks_like_a_path(name: str) -> bool:
    """A local path, not a hub name ('org/model'): absolute, relative with ./ or ../, or home."""
    return name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name


def _loads(path: str) -> None:
    from transformers import AutoConfig

    from .modeling import load_tokenizer

    AutoConfig.from_pretrained(path)
    load_tokenizer(path)


def check_resources(config: "Config", ray_held: Optional[bool] = None) -> None:
    """The launchers' per-step needs fit the local Ray the run starts (a need that does not fit
    waits forever: Ray Train for its workers, Serve for its replicas). A cluster the run joins is
    not checked: an autoscaler may add the nodes; nor is a Ray this process already holds
    (`ray_held`; found out when not given)."""
    if config.ray.address or (_ray_running_here() if ray_held is None else ray_held):
        return
    _check_serve_port(config)
    cpus = config.ray.num_cpus if config.ray.num_cpus is not None else float(os.cpu_count() or 1)
    gpus = _local_gpus()
    for key, need_cpus, need_gpus in _needs(config):
        if need_cpus > cpus + 1e-9:
            raise ConfigError(f"{key} needs {need_cpus:g} CPUs at once, but the local Ray has {cpus:g} "
                              "(ray.num_cpus): lower it, or give Ray more logical CPUs")
        if need_gpus > gpus + 1e-9:
            raise ConfigError(f"{key} needs {need_gpus:g} GPUs at once, but this machine has {gpus}")


def _ray_running_here() -> bool:
    """Whether this process already holds a Ray (an embedding program's, a test session's): its
    resources and its Serve are its own."""
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def _check_serve_port(config: "Config") -> None:
    """The port Serve's HTTP proxy will listen on is free. Serve binds with SO_REUSEPORT, so a
    second run on one machine would share another run's port, and part of its requests (to its
    simulated teacher, say) would reach the other run's Serve."""
    import errno
    import socket

    if not _uses_serve(config):
        return
    host, port = config.teacher.http_host, config.teacher.http_port
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # SO_REUSEADDR: connections of an earlier run still in TIME_WAIT do not hold the port; a
        # listening socket does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # not ours to judge (an address of another machine): Serve will say
            raise ConfigError(f"teacher.http_port {port} on {host} is in use by another process (another run's "
                              "Serve?): set teacher.http_port to a free port") from None


def _uses_serve(config: "Config") -> bool:
    """Whether the run starts Serve's HTTP proxy: its models on Serve, or a simulated teacher."""
    return config.inference.launcher == "serve" or any(t.source == "synthetic" for t in config.teacher_list())


def _needs(config: "Config") -> list[tuple[str, float, float]]:
    """(the keys that ask, CPUs, GPUs) of each launcher that reserves Ray resources."""
    needs = []
    train = config.train
    if config.stages and train.launcher == "ray_train":
        needs.append(("train.num_workers x train.cpus_per_worker", train.num_workers * train.cpus_per_worker,
                      float(train.num_workers) if train.use_gpu else 0.0))
    inference = config.inference
    if inference.launcher == "serve":
        replicas = inference.autoscaling.min_replicas if inference.autoscaling else inference.replicas
        needs.append(("inference.replicas x inference.num_cpus", replicas * inference.num_cpus,
                      replicas * inference.num_gpus))
    return needs


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0

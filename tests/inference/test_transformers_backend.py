"""The transformers backend: batching must not change a score; sampling gives N samples."""

import pytest

from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.synthetic.problems import generate_problems, gold_solution
from tadistill.tasks.prompts import student_prompt, student_target


@pytest.fixture(scope="module")
def ta(synthetic_models):
    return TransformersBackend(synthetic_models["ta"])


def _pairs(n):
    problems = generate_problems(n, seed=77, min_steps=2, max_steps=5)  # varied lengths: real padding
    return [student_prompt(p.question()) for p in problems], [student_target(gold_solution(p)) for p in problems]


def test_scores_do_not_depend_on_batching(ta):
    prompts, outputs = _pairs(12)
    batched = ta.score(prompts, outputs)
    one_by_one = [ta.score([p], [o])[0] for p, o in zip(prompts, outputs)]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert all(0 < s <= 1 for s in batched)


def test_confidence_is_length_normalised_and_prefers_the_truth(ta):
    prompt = student_prompt("Tom has 5 pens. Tom buys 3 more. How many pens does Tom have now?")
    right = ta.score([prompt], [student_target("5 + 3 = 8. The answer is 8.")])[0]
    wrong = ta.score([prompt], [student_target("5 + 3 = 9. The answer is 9.")])[0]
    assert right > wrong


def test_generate_gives_n_samples_and_greedy_is_deterministic(ta):
    prompts, _ = _pairs(3)
    samples = ta.generate(prompts, num_samples=4, temperature=0.9, max_new_tokens=40)
    assert [len(s) for s in samples] == [4, 4, 4]
    greedy_a = ta.generate(prompts, 1, 0.0, 40)
    greedy_b = ta.generate(prompts[:1], 1, 0.0, 40)
    assert greedy_a[0] == greedy_b[0]

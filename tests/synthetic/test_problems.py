import pytest

from tadistill.synthetic.models import build_tokenizer
from tadistill.synthetic.problems import (
    UnparseableQuestion, generate_problems, gold_solution, parse_question, problem_id, vocabulary,
)
from tadistill.tasks.answers import extract_number


def test_deterministic_by_seed():
    a = [p.question() for p in generate_problems(50, seed=3)]
    b = [p.question() for p in generate_problems(50, seed=3)]
    c = [p.question() for p in generate_problems(50, seed=4)]
    assert a == b and a != c


def test_steps_and_numbers_in_range():
    for p in generate_problems(500, seed=1, min_steps=2, max_steps=5):
        assert 2 <= len(p.steps) <= 5
        assert all(0 <= v <= 99 for v in [p.start, *p.values])


def test_gold_solution_states_the_answer_and_every_step():
    for p in generate_problems(200, seed=2):
        solution = gold_solution(p)
        assert extract_number(solution) == str(p.answer)
        assert solution.count("=") == len(p.steps)


def test_parse_roundtrip_and_rejects_other_text():
    for p in generate_problems(200, seed=5):
        assert parse_question(p.question()) == p
    with pytest.raises(UnparseableQuestion):
        parse_question("What is the capital of France?")


def test_ids_are_stable_and_content_based():
    p = generate_problems(1, seed=9)[0]
    assert problem_id(p) == problem_id(generate_problems(1, seed=9)[0])
    assert problem_id(p).startswith("syn-")


def test_tokenizer_covers_the_language_and_roundtrips():
    tokenizer = build_tokenizer()
    assert len(vocabulary()) + 4 == len(tokenizer)
    for p in generate_problems(100, seed=6):
        for text in (p.question(), gold_solution(p)):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.unk_token_id not in ids
            assert tokenizer.decode(ids) == text

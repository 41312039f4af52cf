"""The simulated teacher: its error model, and the real HTTP path through Ray Serve."""

import json
import math
import urllib.request

import openai
import pytest

from tadistill.synthetic.problems import generate_problems, parse_question
from tadistill.synthetic.teacher_server import TeacherProfile, start_teacher, teacher_solution
from tadistill.tasks.answers import extract_number

from ..conftest import TEST_HTTP_PORT


def test_error_rate_is_realised_and_errors_are_real():
    problems = generate_problems(2000, seed=11)
    outcomes = [teacher_solution(p, TeacherProfile(0.3, 7)) for p in problems]
    wrong = [(p, text) for p, (text, ok) in zip(problems, outcomes) if not ok]
    assert 0.26 < len(wrong) / len(problems) < 0.34
    for p, text in wrong:
        assert extract_number(text) != str(p.answer)
    for p, (text, ok) in zip(problems, outcomes):
        if ok:
            assert extract_number(text) == str(p.answer)


def test_both_error_kinds_occur():
    slipped = final_only = 0
    for p in generate_problems(1000, seed=12):
        text, ok = teacher_solution(p, TeacherProfile(1.0, 7))
        assert not ok
        equations = [s for s in text.split(". ") if "=" in s]
        results = [int(e.split("=")[1].strip(" .")) for e in equations]
        if results == p.values:
            final_only += 1
        else:
            slipped += 1
    assert slipped > 200 and final_only > 200


def test_error_rises_with_steps_and_keeps_its_mean():
    profile = TeacherProfile(0.4, 7, difficulty_slope=0.28, slip_share=0.9, min_steps=1, max_steps=5)
    problems = generate_problems(6000, seed=14, min_steps=1, max_steps=5)
    wrong_by_steps = {}
    for p in problems:
        wrong_by_steps.setdefault(len(p.steps), []).append(not teacher_solution(p, profile)[1])
    rates = [sum(w) / len(w) for _, w in sorted(wrong_by_steps.items())]
    assert all(a < b for a, b in zip(rates, rates[1:]))  # harder problems, more errors
    assert 2.2 < rates[-1] / rates[0] < 4.2  # exp(0.28 x 4) = 3.1
    assert abs(sum(sum(w) for w in wrong_by_steps.values()) / len(problems) - 0.4) < 0.03
    assert profile.error_for(3) == pytest.approx(0.4 * math.exp(0.84) / (sum(math.exp(0.28 * k) for k in range(1, 6)) / 5))


def test_slip_share_sets_the_mix_of_error_kinds():
    def slipped_share(share):
        slipped = 0
        problems = generate_problems(1500, seed=15, min_steps=1, max_steps=5)
        for p in problems:
            text, _ = teacher_solution(p, TeacherProfile(1.0, 7, slip_share=share, min_steps=1, max_steps=5))
            results = [int(e.split("=")[1].strip(" .")) for e in text.split(". ") if "=" in e]
            slipped += results != p.values
        return slipped / len(problems)

    assert slipped_share(0.9) > 0.8 and slipped_share(0.5) < 0.55


def test_same_request_same_answer():
    p = generate_problems(1, seed=13)[0]
    assert teacher_solution(p, TeacherProfile(0.5, 7)) == teacher_solution(p, TeacherProfile(0.5, 7))


def test_served_over_http_through_the_openai_client(ray_local):
    base_url = start_teacher("synthetic-teacher", TeacherProfile(0.0, 7), port=TEST_HTTP_PORT)
    assert base_url.startswith(f"http://127.0.0.1:{TEST_HTTP_PORT}/")
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    problem = generate_problems(1, seed=14)[0]
    reply = client.chat.completions.create(
        model="synthetic-teacher",
        messages=[{"role": "system", "content": "Solve."}, {"role": "user", "content": problem.question()}],
    )
    text = reply.choices[0].message.content
    assert extract_number(text) == str(problem.answer)
    assert reply.usage.completion_tokens > 0 and reply.choices[0].finish_reason == "stop"
    models = client.models.list()
    assert [m.id for m in models.data] == ["synthetic-teacher"]
    # Bound to loopback only, as the teacher of a real run would be by default.
    with urllib.request.urlopen(base_url.replace("/v1", "/stats")) as resp:
        assert b"served" in resp.read()
    try:
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("an unknown model must be refused")
    assert parse_question(problem.question()) == problem


def test_several_teachers_at_different_error_rates_share_one_endpoint(ray_local):
    from tadistill.synthetic.teacher_server import start_teachers

    profiles = {"cheap": TeacherProfile(1.0, 7), "expensive": TeacherProfile(0.0, 7)}
    base_url = start_teachers(profiles, port=TEST_HTTP_PORT)
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    assert sorted(m.id for m in client.models.list().data) == ["cheap", "expensive"]
    problems = generate_problems(5, seed=15)
    for name, always_right in (("cheap", False), ("expensive", True)):
        for p in problems:
            reply = client.chat.completions.create(model=name, messages=[{"role": "user", "content": p.question()}])
            assert (extract_number(reply.choices[0].message.content) == str(p.answer)) is always_right
            assert reply.model == name
    with urllib.request.urlopen(base_url.replace("/v1", "/stats")) as resp:
        assert json.loads(resp.read()) == {"served": 10, "by_model": {"cheap": 5, "expensive": 5}}

"""The embedded student and TA: the student knows the short problems, the TA checks chains, both cached."""

import json
from pathlib import Path

import numpy as np

from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.synthetic.models import ensure_synthetic_models
from tadistill.synthetic.problems import generate_problems
from tadistill.synthetic.teacher_server import TeacherProfile, teacher_solution
from tadistill.tasks.answers import extract_number
from tadistill.tasks.prompts import student_prompt, student_target
from tadistill.tables import auroc

from ..conftest import MODEL_CACHE


def _accuracy(path: str, problems) -> float:
    backend = TransformersBackend(path)
    prompts = [student_prompt(p.question()) for p in problems]
    texts = [s[0] for s in backend.generate(prompts, 1, 0.0, 48)]
    return sum(extract_number(t) == str(p.answer) for t, p in zip(texts, problems)) / len(problems)


def test_ta_checks_long_chains_better_than_the_student(synthetic_models):
    """The TA's job is to verify: on 3-5-step teacher chains it tells wrong from right better
    than the student could (it need not write them better)."""
    problems = generate_problems(200, seed=4242, min_steps=3, max_steps=5)
    outputs = [teacher_solution(p, TeacherProfile(0.5, 7, min_steps=3, max_steps=5)) for p in problems]
    prompts = [student_prompt(p.question()) for p in problems]
    texts = [student_target(text) for text, _ in outputs]
    right = np.array([ok for _, ok in outputs])

    def separation(path):
        conf = np.array(TransformersBackend(path).score(prompts, texts, confidence="min"))
        return auroc(conf[right], conf[~right])

    ta, student = separation(synthetic_models["ta"]), separation(synthetic_models["student"])
    assert ta > 0.85 and ta > student + 0.1


def test_student_starts_knowing_the_short_problems_only(synthetic_models):
    short = _accuracy(synthetic_models["student"], generate_problems(100, seed=4244, min_steps=1, max_steps=2))
    long = _accuracy(synthetic_models["student"], generate_problems(100, seed=4245, min_steps=4, max_steps=5))
    assert short >= 0.7 and long <= 0.2


def test_ta_confidence_separates_wrong_teacher_chains(synthetic_models):
    backend = TransformersBackend(synthetic_models["ta"])
    problems = generate_problems(200, seed=4343)
    right, wrong = [], []
    for p in problems:
        text, ok = teacher_solution(p, TeacherProfile(0.5, 7))
        conf = backend.score([student_prompt(p.question())], [student_target(text)])[0]
        (right if ok else wrong).append(conf)
    assert auroc(right, wrong) > 0.85


def _build_state(paths: dict[str, str]) -> dict:
    """What a rebuild would change: the build record and the weights file's modification time."""
    return {
        name: (json.loads((Path(p) / "tadistill_build.json").read_text()), (Path(p) / "model.safetensors").stat().st_mtime_ns)
        for name, p in paths.items()
    }


def test_second_call_reuses_the_cache(synthetic_models):
    before = _build_state(synthetic_models)
    again = ensure_synthetic_models(MODEL_CACHE)
    assert again == synthetic_models
    assert _build_state(again) == before


def test_a_build_gives_the_same_weights_whatever_the_caller_s_thread_count(tmp_path):
    """Trained with 1 thread or 2, a model's weights differ (its matrix products round
    differently); a build fixes its own count, so a 1-thread benchmark, a 2-thread test and a
    process whose count a backend reset all read one model, and the caller's count is left as it was."""
    import torch
    from safetensors.torch import load_file

    from tadistill.synthetic.models import TinyModelSpec, build_model, torch_threads

    spec = TinyModelSpec(hidden=128, layers=1, heads=4, gold_examples=96, epochs=1, lr=2e-3, data_seed=5)
    weights = {}
    for count in (1, 2):
        with torch_threads(count):
            build_model("probe", spec, tmp_path / str(count))
            assert torch.get_num_threads() == count
        weights[count] = load_file(tmp_path / str(count) / "model.safetensors")
    assert all(torch.equal(weights[1][name], weights[2][name]) for name in weights[1])


def test_the_cache_key_does_not_read_the_caller_s_thread_count():
    from tadistill.synthetic.models import TA_SPEC, _spec_key, torch_threads

    with torch_threads(1):
        one = _spec_key("ta", TA_SPEC)
    with torch_threads(2):
        two = _spec_key("ta", TA_SPEC)
    assert one == two

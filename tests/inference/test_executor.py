"""The run's executor: sampling, scoring and test answers through the configured launcher."""

import pandas as pd
import pytest
from ray import serve

from tadistill.config import InferenceConfig, load_config
from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.inference.deployments import SAMPLER_APP
from tadistill.config import choices
from tadistill.inference.executor import LocalExecutor, ServeExecutor, executor_for
from tadistill.services import Services
from tadistill.synthetic.problems import generate_problems
from tadistill.tasks.prompts import student_prompt


def _test_set(n):
    problems = generate_problems(n, seed=7, min_steps=1, max_steps=3)
    return pd.DataFrame({"id": [f"t{i:02d}" for i in range(n)], "question": [p.question() for p in problems],
                         "gold": [str(p.answer) for p in problems], "answer_type": "number", "options": None})


def test_each_launcher_of_the_choice_table_builds_its_executor():
    built = {}
    for launcher in choices.names("inference.launcher"):
        config = load_config(overrides=[f"inference.launcher={launcher}"])
        built[launcher] = type(executor_for(config.inference, Services(config)))
    assert built == {"local": LocalExecutor, "serve": ServeExecutor}


def test_the_local_launcher_refuses_what_it_cannot_run():
    from tadistill.config import ConfigError

    with pytest.raises(ConfigError, match="launcher 'local' runs the transformers backend"):
        load_config(overrides=["inference.launcher=local", "inference.backend=vllm"])


def test_local_answers_are_the_models_greedy_answers(synthetic_models):
    # 24 questions, not fewer: the TA gets about half right here, and a small set left the count at
    # the threshold's edge on another machine's arithmetic.
    test = _test_set(24)
    executor = LocalExecutor(InferenceConfig(launcher="local", batch_size=4), None)
    answered = executor.answer(synthetic_models["ta"], test, max_new_tokens=48, batch_size=4)
    direct = TransformersBackend(synthetic_models["ta"])
    texts = [direct.generate([student_prompt(q)], 1, 0.0, 48)[0][0] for q in test["question"]]
    assert list(answered["id"]) == list(test["id"]) and list(answered["text"]) == texts
    assert answered["correct"].sum() >= 4  # the TA model knows part of the task; a guess at a number almost never lands
    assert list(answered["correct"]) == list(answered["answer"] == answered["gold"])


def test_served_answers_equal_local_ones_and_the_app_is_taken_down(ray_local, synthetic_models):
    test = _test_set(10)
    inference = InferenceConfig(batch_size=4)
    config = load_config(overrides=["ray.num_cpus=4"])
    with ServeExecutor(inference, Services(config)) as executor:
        served = executor.answer(synthetic_models["student"], test, max_new_tokens=32, batch_size=4)
        assert SAMPLER_APP not in serve.status().applications  # its CPUs went back at the end of the step
    local = LocalExecutor(inference, None).answer(synthetic_models["student"], test, max_new_tokens=32, batch_size=4)
    assert served.astype(object).to_dict("records") == local.astype(object).to_dict("records")


def test_a_step_that_fails_half_way_leaves_no_deployment(ray_local, synthetic_models):
    config = load_config(overrides=["ray.num_cpus=4"])
    executor = ServeExecutor(InferenceConfig(batch_size=4), Services(config))
    bad = _test_set(3).drop(columns=["answer_type"])  # the sampler's rows lack a column: the step fails
    with pytest.raises(Exception):
        with executor:
            executor.sample(synthetic_models["student"], bad)
    assert SAMPLER_APP not in serve.status().applications

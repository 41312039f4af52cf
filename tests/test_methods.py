"""The method registry: one entry per method, read by the config and the benchmark."""

import pytest

from tadistill.config import METHODS, load_config
from tadistill.methods import FACTORIAL, METHODS as REGISTRY, Method, method, register
from tadistill.plan import plan


def test_config_accepts_exactly_the_registered_methods():
    assert set(METHODS) == set(REGISTRY)
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        method("magic")


def test_a_method_is_registered_once():
    with pytest.raises(ValueError, match="twice"):
        register(Method("none", 1, "again"))


def test_base_evaluates_the_student_as_it_came():
    config = load_config(None, ["method=base"])
    assert [s.name for s in plan(config)] == ["corpus", "evaluate", "report"]


@pytest.mark.parametrize("name", FACTORIAL)
def test_factorial_methods_plan_their_signals_and_trust(name):
    config = load_config(None, [f"method={name}", "train.final_pick=last"])
    steps = [s.name for s in plan(config)]
    selection, trust = name.rsplit("_", 1)
    assert ("round1.sample" in steps) == (selection != "random")
    assert ("calibrate_trust" in steps) == (trust != "none")
    assert steps[-3:] == ["final.train", "evaluate", "report"]
    # By default the final student is checked on the probe, so every method scores the references.
    assert "calibrate_trust" in [s.name for s in plan(load_config(None, [f"method={name}"]))]


def test_aliases_mean_what_the_factorial_means():
    assert REGISTRY["full"].preset == REGISTRY["both_weight"].preset
    assert REGISTRY["random"].preset == REGISTRY["random_none"].preset

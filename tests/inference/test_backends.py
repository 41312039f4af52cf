"""Backends are chosen once, from inference.backend, through the config's choice table."""

import pytest

from tadistill.config import ConfigError, load_config
from tadistill.inference.transformers_backend import TransformersBackend
from tadistill.config import choices
from tadistill.inference.backends import Backend, BackendSpec


def test_a_spec_builds_the_registered_backend_which_scores_like_a_direct_one(synthetic_models):
    path = synthetic_models["ta"]
    built = BackendSpec(kind="transformers").build(path, torch_threads=1)
    assert isinstance(built, TransformersBackend) and built.model_path == path
    prompts, outputs = ["Question: Ann has 2 pens. Ann buys 3 more. How many pens does Ann have now?\nAnswer:"], \
        [" 2 + 3 = 5. The answer is 5."]
    assert built.score(prompts, outputs) == pytest.approx(TransformersBackend(path).score(prompts, outputs))


def test_every_registered_backend_is_a_config_choice_and_others_are_refused(tmp_path):
    assert choices.names("inference.backend") == ("transformers", "vllm")
    for kind in choices.names("inference.backend"):
        assert issubclass(choices.load("inference.backend", kind), Backend)
        assert load_config(None, [f"inference.backend={kind}"]).inference.backend == kind
    with pytest.raises(ConfigError, match="inference.backend"):
        load_config(None, ["inference.backend=tensorrt"])
    with pytest.raises(ValueError, match="unknown inference.backend 'tensorrt'; one of transformers, vllm"):
        BackendSpec(kind="tensorrt").build("unused")


def test_the_config_documents_each_backend_from_the_table():
    from tadistill.config import InferenceConfig

    described = InferenceConfig.model_fields["backend"].description
    assert all(f"'{kind}': {entry.summary}" in described for kind, entry in choices.CHOICES["inference.backend"].items())

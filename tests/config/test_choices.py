"""The config's choice table: every entry imports, the config offers exactly its names, and the
config layer itself imports nothing of the package above it."""

import ast
from pathlib import Path

import pytest

from tadistill.config import choices, load_config
from tadistill.config.choices import CHOICES

PACKAGE = Path(__file__).resolve().parents[2] / "tadistill"
FACTS = {  # the facts a config may ask of each option's choices
    "teacher.source": {"charges_money", "needs_base_url", "answers_from_records"},
    "cascade.policy": {"uses_trust"},
    "inference.launcher": {"in_process"},
    "selection.strategy": {"uses_signals", "needs_reference", "measures_progress", "probes_slices",
                           "trains_committee"},
    "trust.mode": {"uses_ta"},
    "trust.scale": {"needs_reference"},
    "trust.signal": {"uses_ta", "calibrates", "several_outputs", "learns", "trains_model"},
    "train.tracking.backends": {"package"},
}


@pytest.mark.parametrize("option", sorted(CHOICES))
def test_every_entry_imports_and_the_config_accepts_exactly_the_tables_names(option):
    for name, entry in CHOICES[option].items():
        assert callable(entry.load()), f"{option} {name}: {entry.target} is not importable"
        assert entry.summary and set(entry.facts) <= FACTS.get(option, set())
    field = _field(option)
    accepted = set(_literal_values(field.annotation))
    assert set(CHOICES[option]) <= accepted and accepted - set(CHOICES[option]) <= {"auto"}
    assert all(f"'{name}': {entry.summary}" in field.description for name, entry in CHOICES[option].items())


def _field(option: str):
    from tadistill.config import Config

    model = Config
    *sections, key = option.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    return model.model_fields[key]


def _literal_values(annotation):
    import typing

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return args
    return [v for a in args for v in _literal_values(a)]


def test_an_unknown_name_names_the_option_and_its_choices():
    with pytest.raises(ValueError, match="unknown selection.strategy 'best'; one of random, unsure_first, learnable"):
        choices.load("selection.strategy", "best")
    with pytest.raises(Exception, match="selection.strategy"):
        load_config(None, ["selection.strategy=best"])


def test_the_config_layer_imports_nothing_above_it():
    """Config modules import only each other and tadistill/methods.py (itself import-free), at
    module level or inside functions: loading a config pulls in no implementation."""
    allowed = {"tadistill.config", "tadistill.methods"}
    for path in sorted((PACKAGE / "config").glob("*.py")) + [PACKAGE / "methods.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ["tadistill", "config"] if path.parent.name == "config" else ["tadistill"]
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
            elif isinstance(node, ast.Import):
                target = node.names[0].name
            else:
                continue
            if target.startswith("tadistill"):
                assert any(target == a or target.startswith(a + ".") for a in allowed), f"{path.name} imports {target}"


def test_loading_a_config_imports_no_implementation():
    import subprocess
    import sys

    import json

    probe = ("import json, sys, tadistill.config as c; c.load_config(None, ['method=full']); "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tadistill'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(loaded) == sorted(["tadistill", "tadistill.config", "tadistill.methods", "tadistill.version"]
                                  + [f"tadistill.config.{m}" for m in
                                     ("base", "choices", "data", "load", "models", "renamed", "root", "signals",
                                      "teacher", "train")])

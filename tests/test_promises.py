"""docs/promises.md lists each promise with the test that checks it: every test it names exists."""

from __future__ import annotations

import ast
import re

from .conftest import REPO

PROMISES = REPO / "docs" / "promises.md"


def _tests_in(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_promise_names_a_test_that_exists():
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", PROMISES.read_text())
    assert len(named) >= 30
    missing = [f"{path}::{name}" for path, name in named if name not in _tests_in(REPO / path)]
    assert not missing, f"docs/promises.md names tests that do not exist: {missing}"

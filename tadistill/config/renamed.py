"""Config names that changed, and their old spellings, still accepted: one table, one rewrite.

A config that uses an old key or an old value (a YAML file, a `key=value` override, a run's saved
config.json, `Config(...)`) loads as if it used the new name, and the first time in a process
says so once, naming the new name (logger `tadistill.config`, which the console shows). A config
that sets a key under both its old and its new name is an error naming both. docs/renamed.md
lists the renames for people (tests/test_docs.py keeps it in step with this table).
"""

from __future__ import annotations

import logging
from typing import Any

from .base import _copy_tree, _get_dotted, _has_dotted, _set_dotted

log = logging.getLogger("tadistill.config")

# old dotted key -> new dotted key
RENAMED_KEYS: dict[str, str] = {
    "train.stage2_init": "train.final_init",
    "train.stage2_data": "train.final_data",
}
# (dotted key, old value) -> new value
RENAMED_VALUES: dict[tuple[str, str], str] = {
    ("train.final_init", "stage1"): "previous_round",
    ("selection.strategy", "signals"): "unsure_first",
}

_SAID: set[str] = set()  # the renames this process has warned about


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        log.warning(message)


def renamed(tree: Any, prefix: str = "") -> Any:
    """`tree` (the whole config, or the section at `prefix`, e.g. 'train.', built on its own) with
    old keys and values under their new names: a copy where anything changed, the same object
    otherwise. Sections given as objects are already validated, so hold new names only."""
    if not isinstance(tree, dict):
        return tree
    for old, new in RENAMED_KEYS.items():
        if not old.startswith(prefix) or not _has_dotted(tree, old.removeprefix(prefix)):
            continue
        old_at, new_at = old.removeprefix(prefix), new.removeprefix(prefix)
        if _has_dotted(tree, new_at):
            raise ValueError(f"{old} and {new} are both set: {old} is the old name of {new}; keep {new} only")
        tree = _copy_tree(tree)
        *parent, leaf = old_at.split(".")
        section = _get_dotted(tree, ".".join(parent)) if parent else tree
        value = section.pop(leaf)
        new_value = RENAMED_VALUES.get((new, value)) if isinstance(value, str) else None
        _set_dotted(tree, new_at, value if new_value is None else new_value)
        also = "" if new_value is None else f", and its value {value!r} is now {new_value!r}"
        _say_once(f"config key {old} is deprecated: it is now {new}{also} (the old name still works, for now)")
    for (key, old_value), new_value in RENAMED_VALUES.items():
        at = key.removeprefix(prefix)
        if key.startswith(prefix) and _has_dotted(tree, at) and _get_dotted(tree, at) == old_value:
            tree = _copy_tree(tree)
            _set_dotted(tree, at, new_value)
            _say_once(f"{key} {old_value!r} is deprecated: it is now {key} {new_value!r} "
                      "(the old value still works, for now)")
    return tree


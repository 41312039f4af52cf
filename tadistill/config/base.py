"""What every config section shares: the strict base model, the error a user can act on, and
the dotted-key helpers overrides and presets use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

SYNTHETIC = "synthetic"


class ConfigError(ValueError):
    """A config problem a user can fix: the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _copy_tree(tree: dict) -> dict:
    """A copy of nested dicts, so filling in a preset never changes what the caller passed."""
    return {k: _copy_tree(v) if isinstance(v, dict) else v for k, v in tree.items()}


def _get_dotted(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _has_dotted(tree: dict, dotted: str) -> bool:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


"""A config from YAML and `key=value` overrides, validated, with errors naming the key; and the
one description of every option (`tadistill config show`)."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ValidationError

from .base import ConfigError, _set_dotted
from .root import Config


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``a.b=3`` strings to {dotted key: YAML-typed value}."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. budget.requests=200")
        try:
            parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem}); quote it") from None
    return parsed


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"]) or "<root>"
        if problem["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            given = problem.get("input")
            # A section's own check (a validator over several keys) gets the whole section: its
            # message names the keys, and the section's dump would bury it.
            lines.append(f"  {key}: {message}" + ("" if isinstance(given, dict) else f" (got {given!r})"))
    return "\n".join(lines)


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load YAML (or defaults when path is None), apply overrides and the method preset, validate."""
    source = str(path) if path else "<defaults>"
    tree: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    explicit = parse_overrides(overrides or [])
    for key, value in explicit.items():
        _set_dotted(tree, key, value)
    try:  # the method's preset is applied by Config itself (Config._method_preset)
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _section_type(annotation) -> Optional[type[BaseModel]]:
    """The config section a field holds (unwrapping Optional[Section]), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    sections = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return sections[0] if len(sections) == 1 else None


def describe_options(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every option: the one place options are documented."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = _section_type(field.annotation)
        if annotation is not None:
            if field.default is None:  # an optional section: say what it is for, then its keys
                rows.append((key, "null", field.description or ""))
            rows.extend(describe_options(annotation, key + "."))
        else:
            if field.is_required():
                rows.append((key, "(required)", field.description or ""))
                continue
            default = field.default if field.default_factory is None else field.default_factory()
            rows.append((key, json.dumps(default), field.description or ""))
    return rows

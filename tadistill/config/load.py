"""A config from YAML and `key=value` overrides, validated, with errors naming the key; and the
one description of every option (`tadistill config show`)."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ValidationError

from .base import ConfigError, _copy_tree, _set_dotted
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


def _format_validation_error(err: ValidationError, path: Optional[Path], file_tree: dict,
                             typed: dict[str, str]) -> str:
    """One line per problem, each naming its key and, where it can be told, where the value came
    from: the command line (`typed`: dotted key -> the override as typed) or the file `path`
    (`file_tree`: what it held). The file is named up front when some line cannot say."""
    lines, unplaced = [], False
    for problem in err.errors():
        loc = tuple(problem["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        given = problem.get("input")
        # A section's own check (a validator over several keys) gets the whole section: its
        # message names the keys, and the section's dump (or one origin for all of it) would bury it.
        origin = None if isinstance(given, dict) and problem["type"] != "extra_forbidden" else \
            _origin(loc, path, file_tree, typed)
        unplaced = unplaced or origin is None
        where = f"{key} ({origin})" if origin else key
        if problem["type"] == "extra_forbidden":
            near = _closest_key(loc)
            lines.append(f"{where}: unknown key" + (f"; did you mean {near}?" if near else ""))
        else:
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}" + ("" if isinstance(given, dict) else f" (got {given!r})"))
    head = f"invalid config ({path})" if path and unplaced else "invalid config"
    return f"{head}: {lines[0]}" if len(lines) == 1 else "\n  ".join([f"{head}:", *lines])


def _origin(loc: tuple, path: Optional[Path], file_tree: dict, typed: dict[str, str]) -> Optional[str]:
    """'command line: a.b=1' when an override set the key (or a section above or a key below it:
    overrides win over the file), 'file PATH' when the file did; None for a default or a preset."""
    key = ".".join(str(p) for p in loc)
    said = [item for typed_key, item in typed.items()
            if typed_key == key or key.startswith(typed_key + ".") or typed_key.startswith(key + ".")]
    if said:
        return "command line: " + ", ".join(said)
    return f"file {path}" if path and _holds(file_tree, loc) else None


def _holds(tree: Any, loc: tuple) -> bool:
    """Whether the YAML tree has a key at `loc` (mapping keys and list positions; null counts)."""
    for part in loc:
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and 0 <= part < len(tree):
            tree = tree[part]
        else:
            return False
    return True


def _closest_key(loc: tuple) -> Optional[str]:
    """The valid key nearest an unknown one: a sibling spelled alike (budget.requets ->
    budget.requests), else the one key of another section with that name (train.requests ->
    budget.requests)."""
    import difflib

    *parent, leaf = [str(p) for p in loc]
    near = difflib.get_close_matches(leaf, _fields_at(tuple(loc[:-1])), n=1, cutoff=0.6)
    if near:
        return ".".join([*parent, near[0]])
    elsewhere = [key for key, _, _ in describe_options() if key.rsplit(".", 1)[-1] == leaf]
    return elsewhere[0] if len(elsewhere) == 1 else None


def _fields_at(loc: tuple) -> list[str]:
    """The keys of the section at `loc`, following dicts and lists of sections by their values
    (budget.prices.<model> is a Price, whatever the model's name); [] where there is none."""
    annotation: Any = Config
    for part in loc:
        section = None if _item_type(annotation) else _section_type(annotation)
        if section is not None:
            field = section.model_fields.get(str(part))
            annotation = field.annotation if field else None
        else:
            annotation = _item_type(annotation)
        if annotation is None:
            return []
    section = None if _item_type(annotation) else _section_type(annotation)
    return list(section.model_fields) if section else []


def _item_type(annotation) -> Any:
    """What a dict's values or a list's items are (unwrapping Optional), or None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        origin, args = typing.get_origin(candidate), typing.get_args(candidate)
        if origin is dict and len(args) == 2:
            return args[1]
        if origin is list and args:
            return args[0]
    return None


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load YAML (or defaults when path is None), apply overrides and the method preset, validate."""
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
    file_tree = _copy_tree(tree)  # as the file had it: an error says which keys came from where
    explicit = parse_overrides(overrides or [])
    typed = {item.partition("=")[0].strip(): item for item in overrides or []}
    for key, value in explicit.items():
        _set_dotted(tree, key, value)
    try:  # the method's preset is applied by Config itself (Config._method_preset)
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, path or None, file_tree, typed)) from None


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

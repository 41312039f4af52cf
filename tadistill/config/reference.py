"""The configuration reference, as Markdown, generated from the config tree.

The rows come from the same walk as `tadistill config show` (`describe_options` in load.py): every
option's dotted key, its default and its description, read from the section classes'
`Field(default, description=...)`. This adds each option's type and groups the options by
top-level section, one table each. The docs site builds its "Configuration reference" page from
here on every build (docs/hooks.py), so the page cannot fall behind the code. An option without a
description is an error naming its key: the description is the only place an option is documented.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Optional

from pydantic import BaseModel

from .load import _section_type, describe_options
from .root import Config

TOP_LEVEL = "Top level"
_MANY = 10  # a Literal with more names than this is described, not listed (the description lists them)


def reference_markdown(model: type[BaseModel] = Config) -> str:
    """The reference page for `model` (the whole config by default): per top-level section, a table
    of every option's dotted key, type, default and description. Raises ValueError naming the key
    of any option without a description."""
    rows = describe_options(model)
    for key, _, description in rows:
        if not (description or "").strip():
            raise ValueError(f"config option {key!r} has no description: give its Field a description=... "
                             "(the reference and `tadistill config show` are built from it)")
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for key, default, description in rows:
        groups.setdefault(key.split(".", 1)[0] if "." in key else TOP_LEVEL, []).append((key, default, description))
    lines = [
        "# Configuration reference",
        "",
        "Every option of the config tree, generated when the docs are built from the same source as "
        "`tadistill config show` (the `Field(description=...)` of each section in `tadistill/config/`, "
        "rendered by `tadistill/config/reference.py`). Set an option in a YAML file by its dotted path, "
        "or on the command line as `key=value` (`tadistill run CONFIG budget.requests=500`); an unknown "
        "key or a bad value stops the run with the key's name. `tadistill config show CONFIG [key=value ...]` "
        "prints the resolved config of a run, its method's preset filled in.",
        "",
        "Sections: " + ", ".join(f"[{_title(name)}](#{_anchor(name)})" for name in groups) + ".",
        "",
    ]
    for name, section_rows in groups.items():
        lines += [f"## {_title(name)}", ""]
        intro = _section_intro(model, name)
        if intro:
            lines += [intro, ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for key, default, description in section_rows:
            default_cell = default if default == "(required)" else _code(default)
            lines.append(f"| `{key}` | {_text(_type_name(_annotation_at(model, key)))} | {default_cell} | "
                         f"{_text(description)} |")
        lines.append("")
    return "\n".join(lines)


def _title(name: str) -> str:
    return name if name == TOP_LEVEL else f"`{name}`"


def _anchor(name: str) -> str:
    """The id Python-Markdown's toc gives the heading `_title(name)` (lower case, spaces to dashes)."""
    return "top-level" if name == TOP_LEVEL else name.lower()


def _section_intro(model: type[BaseModel], name: str) -> str:
    """What the section and its nested sections are for: the field's description or the section
    class's own docstring, where either says something."""
    if name == TOP_LEVEL:
        return "Options at the root of the tree."
    parts = []
    for key, section, field in _sections(model, name):
        said = field.description or _own_doc(section)
        if said:
            parts.append(_text(said) if key == name else f"`{key}`: {_text(said)}")
    return "\n\n".join(parts)


def _sections(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel], Any]]:
    """(dotted key, section class, field) of the section at `prefix` and every section inside it."""
    field = model.model_fields[prefix]
    section = _section_type(field.annotation)
    found = []

    def walk(key: str, section: type[BaseModel], field: Any) -> None:
        found.append((key, section, field))
        for child, child_field in section.model_fields.items():
            child_section = _section_type(child_field.annotation)
            if child_section is not None:
                walk(f"{key}.{child}", child_section, child_field)

    if section is not None:
        walk(prefix, section, field)
    return found


def _own_doc(section: type[BaseModel]) -> Optional[str]:
    doc = section.__dict__.get("__doc__")
    return " ".join(doc.split()) if doc else None


def _annotation_at(model: type[BaseModel], key: str) -> Any:
    """The annotation of the option at the dotted `key`, walking sections as describe_options does."""
    *path, leaf = key.split(".")
    for part in path:
        section = _section_type(model.model_fields[part].annotation)
        if section is None:
            raise ValueError(f"config key {key!r}: {part!r} is not a section")
        model = section
    return model.model_fields[leaf].annotation


def _type_name(annotation: Any) -> str:
    """A reader's name for a type: 'int', 'list of str', 'str or null', "'a' or 'b'"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        if len(args) > _MANY:
            return f"one of {len(args)} names (see the description)"
        return " or ".join(json.dumps(a) if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(named + (["null"] if type(None) in args else []))
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _code(value: str) -> str:
    return f"`{value}`" if "`" not in value else f"`` {value} ``"


def _text(text: str) -> str:
    """Text safe in a Markdown table cell: code spans kept as they are; elsewhere no raw HTML
    (`<run_dir>` would vanish), no column break, no emphasis."""
    pieces = " ".join(text.split()).split("`")
    for i in range(0, len(pieces), 2):  # outside code spans
        pieces[i] = (pieces[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                     .replace("|", "&#124;").replace("*", "\\*"))
    return "`".join(pieces)

"""Named variants of one kind (teacher sources, inference launchers, selection rules, trust
modes and scales), each a class registered once under the name the config uses for it."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class Registry(dict):
    """name -> class. `kind` names the variants in errors; `key` is the class attribute holding
    each one's name (the config value that picks it)."""

    def __init__(self, kind: str, key: str = "name"):
        super().__init__()
        self.kind, self.key = kind, key

    def register(self, cls: T) -> T:
        """A class decorator: adds cls under its name, once."""
        name = getattr(cls, self.key)
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self[name] = cls
        return cls

    def named(self, name: str, option: str):
        """The class `option` names, or an error listing the choices."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {option} {name!r}; one of {', '.join(self)}") from None


def summaries(registry: dict, attribute: str = "summary") -> str:
    """'name': summary; ... for an option's description."""
    return "; ".join(f"'{name}': {getattr(entry, attribute)}" for name, entry in registry.items())


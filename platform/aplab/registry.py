"""A small name -> factory registry with "did you mean" errors (in the spirit of timm's)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: object, choices: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Maps names to entries; unknown names raise a ConfigError listing choices and the closest."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register ``entry`` under ``name``; without ``entry``, return a decorator."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise KeyError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str, field: str | None = None) -> T:
        """The entry for ``name``, or a ConfigError naming ``field`` with the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown(name, field) from None

    def unknown(self, name: object, field: str | None = None) -> ConfigError:
        """The error for an unknown name, with the choices and the closest match."""
        choices = self.names()
        return ConfigError(field or self.kind, name, "one of " + ", ".join(choices) + did_you_mean(name, choices))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

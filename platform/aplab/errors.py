"""User-facing errors: each names the field, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable


class AplabError(Exception):
    """Base class of every error aplab raises on purpose (the CLI turns it into exit status 2)."""


class ConfigError(AplabError, ValueError):
    """A bad value for a named field; the message says the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


class TrackingUnavailable(AplabError):
    """The tracking server cannot be reached."""


def one_of(choices: Iterable[object]) -> str:
    """Render a list of choices for an error message."""
    return "one of " + ", ".join(repr(c) if not isinstance(c, str) else c for c in choices)


class InputShapeError(AplabError, ValueError):
    """A tensor passed to a loss has the wrong shape, dtype or label range (a programming error, not a config one)."""

    def __init__(self, argument: str, value: object, expected: str):
        self.argument, self.value, self.expected = argument, value, expected
        super().__init__(f"{argument}={value!r} is not allowed: {expected}")


class RunFailed(AplabError, RuntimeError):
    """A run ended FAILED (the tracker shows it so); the message says why and what to try. CLI exit 1."""


class RunFileCorrupt(RunFailed):
    """A run folder's file (state.json, checkpoint.pt) cannot be read: truncated or corrupt."""

    def __init__(self, path: object, problem: str, remedy: str):
        self.path = path
        super().__init__(f"{path} is unreadable ({problem}); {remedy}")


class RunClaimed(RunFailed):
    """Another live process trains this run (its claim names host, pid and since when): nothing trained. CLI exit 1."""

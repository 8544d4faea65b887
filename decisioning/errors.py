"""One error family for everything a user can get wrong.

Every error Klartext raises on purpose is a :class:`KlartextError` with a ``message`` that
names what was wrong and the bad value, and a ``hint`` that says what to do next.  The CLI
and the app render them with one helper each; third-party errors are wrapped at the boundary
with ``raise KlartextError(...) from exc``.
"""

from __future__ import annotations


class KlartextError(Exception):
    """An error a user can act on.

    Parameters
    ----------
    message : str
        What was wrong, naming the bad value.
    hint : str, optional
        The next step, e.g. the command that fixes it or the values that are allowed.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class StrategyError(KlartextError):
    """The strategy file is malformed or inconsistent."""


class InputError(KlartextError):
    """A decision request does not match the strategy's feature schema."""


class LogError(KlartextError):
    """The decision log cannot be opened, read or written as asked."""


class LogInUse(LogError):
    """Another process holds the log file read-write (DuckDB allows one writer)."""


class NotFittedError(KlartextError):
    """A model or engine was used before it was fitted or loaded."""


class ConflictError(KlartextError):
    """A write contradicts what the log already holds (e.g. a second, different outcome)."""

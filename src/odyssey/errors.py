"""Errors a user can cause. The library raises them; only the CLI turns them into
one line and exit code 2 (see :mod:`odyssey.cli`)."""

from __future__ import annotations


class OdysseyError(Exception):
    """Base class: a problem the user can fix. ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(OdysseyError):
    """An invalid configuration value, YAML file or override."""


class DataError(OdysseyError):
    """Missing, empty, malformed or undecodable input data."""


class ModelError(OdysseyError):
    """A model or tokenizer that cannot be loaded or does not fit."""


class TrainingError(OdysseyError):
    """Training cannot go on (NaN/inf loss, out of memory)."""


class WriteError(OdysseyError):
    """An output could not be written."""


class InUseError(OdysseyError):
    """Another process holds the lock of a run or study directory (see :mod:`odyssey.runlock`)."""


class MissingDependencyError(OdysseyError, ImportError):
    """An optional package is not installed; the hint names the extra of odyssey that brings it.
    Also an ``ImportError``, so code that tries an optional import still catches it."""

    def __init__(self, package: str, extra: str, needed_for: str):
        super().__init__(f"{needed_for} needs {package}, which is not installed",
                         f"pip install 'odyssey[{extra}]'")

"""One error family for the engine.

Every error a user can cause derives from :class:`TechnicError`. Messages are one line,
name the bad value and say what to do; the CLI prints them without a traceback and the
HTTP layer maps them to 4xx JSON.

    TechnicError
     ├── ConfigError          a setting or option has a bad value
     │    └── UnknownNameError     a label (trade style, tier...) no vocabulary knows
     │         └── UnknownSectorError   a sector filter names no sector of the universe
     ├── StoreError           the bar store is missing, empty or unreadable
     ├── DataError            an input file is malformed (missing columns, unparsable values)
     ├── UnknownTickerError   a requested ticker is not in the store
     ├── ModelError           an ML model artifact is missing, damaged or built for other
     │                        features than this code
     └── ProviderError        a market-data provider failed (after its retries)
          └── ProviderAuthError   the provider refused the API key (HTTP 401/403)
"""

from __future__ import annotations

from collections.abc import Iterable


class TechnicError(Exception):
    """Base class of every error a user of Technic can cause."""


class ConfigError(TechnicError, ValueError):
    """A setting or option has a bad value."""


class StoreError(TechnicError):
    """The bar store is missing, empty or unreadable."""


class DataError(TechnicError, ValueError):
    """An input file is malformed."""


class ModelError(TechnicError):
    """An ML model artifact is missing, damaged or incompatible with this code."""


def _preview(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


class UnknownTickerError(TechnicError, KeyError):
    """A requested ticker is not in the store."""

    def __init__(self, missing: Iterable[str]):
        self.missing = sorted(missing)
        super().__init__(f"unknown ticker(s) not in the store: {_preview(self.missing)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


ECHO_LIMIT = 60  # characters of a user's value repeated in an error message


def clip(value: object, limit: int = ECHO_LIMIT) -> str:
    """``value`` as text cut to ``limit`` characters: errors name bad values, not whole
    request bodies."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class UnknownNameError(ConfigError):
    """A name that no entry of a vocabulary (:mod:`pipeline.vocabulary`) matches."""

    def __init__(self, kind: str, unknown: str | Iterable[str], valid: Iterable[str]):
        self.kind = kind
        self.unknown = [unknown] if isinstance(unknown, str) else sorted(unknown)
        self.valid = list(valid)
        super().__init__(self.message())

    def message(self) -> str:
        names = ", ".join(repr(clip(u)) for u in self.unknown)
        return f"unknown {self.kind} {names}; use one of {', '.join(self.valid)}"


class UnknownSectorError(UnknownNameError):
    """A sector filter names no sector of the universe."""

    def __init__(self, unknown: Iterable[str], valid: Iterable[str]):
        super().__init__("sector", unknown, sorted(valid))

    def message(self) -> str:
        names = ", ".join(clip(u) for u in self.unknown)
        return f"unknown sector(s): {names}; valid sectors: {', '.join(self.valid)}"


class ProviderError(TechnicError):
    """A market-data provider failed, after its retries; the message never holds the key."""


class ProviderAuthError(ProviderError):
    """The provider refused the API key (HTTP 401 or 403)."""

"""The indicator registry: what each indicator reads, takes, returns and how much history it needs.

Each :class:`Indicator` names its TA-Lib function, its bar ``inputs``, its ``params`` with
defaults (and the TA-Lib name of each), its ``outputs`` and its ``lookback`` (leading bars
without a value, TA-Lib's definition). Its segmented ``kernel`` is the one definition: the
analyst's 1-D call (:meth:`Indicator.one`) is the one-segment case of the partition path
(:meth:`Indicator.segmented`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import ConfigError

Kernel = Callable[..., np.ndarray | tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class Param:
    """One parameter: default, TA-Lib's name(s) for it, smallest valid value and its type."""

    default: float | int | None
    talib: str | tuple[str, ...]
    minimum: float = 1
    kind: type = int


@dataclass(frozen=True)
class Indicator:
    """A TA-Lib indicator over segmented flat arrays."""

    name: str
    inputs: tuple[str, ...]
    params: Mapping[str, Param]
    outputs: tuple[str, ...]
    lookback: Callable[..., int]
    kernel: Kernel
    picks: tuple[int, ...] | None = None  # which of the kernel's outputs are ours
    talib_extra: Mapping[str, Any] = field(default_factory=dict)  # fixed TA-Lib arguments

    def resolve(self, **params: Any) -> dict[str, Any]:
        """Parameters with defaults filled in, validated; a bad one raises ConfigError."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"takes {', '.join(self.params)}"
            )
        out = {}
        for name, spec in self.params.items():
            value = params.get(name, spec.default)
            if value is None:
                raise ConfigError(f"{self.name}: parameter {name!r} is required")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{self.name}: {name} must be a number, got {value!r}") from None
            if spec.kind is int:
                if isinstance(value, bool) or not number.is_integer():
                    raise ConfigError(f"{self.name}: {name} must be an integer, got {value!r}")
                value = int(number)
            else:
                value = number
            if not value >= spec.minimum or value > 100_000:
                raise ConfigError(
                    f"{self.name}: {name} must be between {spec.minimum:g} and 100000, "
                    f"got {value!r}"
                )
            out[name] = value
        return out

    def talib_kwargs(self, **params: Any) -> dict[str, Any]:
        """The keyword arguments of ``talib.<NAME>`` that compute the same thing."""
        out = dict(self.talib_extra)
        for name, value in self.resolve(**params).items():
            names = self.params[name].talib
            out.update(dict.fromkeys((names,) if isinstance(names, str) else names, value))
        return out

    def segmented(
        self, arrays: Mapping[str, np.ndarray], bounds: np.ndarray, **params: Any
    ) -> tuple[np.ndarray, ...]:
        """Run over every segment of flat arrays (``bounds`` from ``segment_bounds``)."""
        values = self.resolve(**params)
        result = self.kernel(*(arrays[i] for i in self.inputs), bounds, *values.values())
        result = result if isinstance(result, tuple) else (result,)
        return tuple(result[i] for i in self.picks) if self.picks else result

    def one(self, *inputs: np.ndarray, **params: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """The 1-D call on one ticker's arrays in date order, as ``talib.<NAME>`` returns it.

        Like TA-Lib's wrapper, leading bars where any input is NaN are skipped: the result is
        NaN there and for the lookback after them.
        """
        if len(inputs) != len(self.inputs):
            raise ConfigError(
                f"{self.name} takes {len(self.inputs)} input array(s) ({', '.join(self.inputs)})"
            )
        arrays = [np.ascontiguousarray(np.asarray(x, dtype=np.float64)) for x in inputs]
        n = arrays[0].shape[0] if arrays[0].ndim else -1
        if any(np.ndim(x) != 1 or a.shape[0] != n for x, a in zip(inputs, arrays, strict=True)):
            raise ConfigError(f"{self.name}: inputs must be 1-D arrays of equal length")
        valid = np.ones(n, dtype=bool)
        for a in arrays:
            valid &= ~np.isnan(a)
        begin = int(np.argmax(valid)) if valid.any() else n
        bounds = np.array([0, n - begin], dtype=np.int64)
        tail = dict(zip(self.inputs, (a[begin:] for a in arrays), strict=True))
        outs = self.segmented(tail, bounds, **params)
        padded = tuple(np.concatenate([np.full(begin, np.nan), o]) for o in outs)
        return padded[0] if len(padded) == 1 else padded


REGISTRY: dict[str, Indicator] = {}


def register(indicator: Indicator) -> Indicator:
    """Add ``indicator`` to :data:`REGISTRY` under its TA-Lib name."""
    REGISTRY[indicator.name] = indicator
    return indicator

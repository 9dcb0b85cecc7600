"""The segment test: kernels restart at every ticker boundary of a flat partition.

Tickers concatenated into one flat array with their ``bounds`` must give, bit for bit, what
each gives alone through the 1-D call, lookback NaNs at every segment start included.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import talib

from pipeline.indicators import REGISTRY, Indicator
from pipeline.kernels import rolling
from tests.conftest import random_walk

NAMES = sorted(REGISTRY)
COLUMNS = ("open", "high", "low", "close", "volume")


def params_for(ind: Indicator) -> dict[str, Any]:
    """Registry defaults, with ``n = 10`` where there is none (SMA, EMA, ROC)."""
    return {p: 10 for p, spec in ind.params.items() if spec.default is None}


def lookback(ind: Indicator) -> int:
    return ind.lookback(**ind.resolve(**params_for(ind)))


def as_tuple(result: Any) -> tuple[np.ndarray, ...]:
    return result if isinstance(result, tuple) else (result,)


def assert_bitwise(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.dtype == expected.dtype == np.float64, what
    assert actual.shape == expected.shape, what
    same = actual.view(np.uint64) == expected.view(np.uint64)
    if not same.all():
        first = int(np.flatnonzero(~same)[0])
        pytest.fail(f"{what}: differs first at {first}: {actual[first]!r} vs {expected[first]!r}")


def concat(walks: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    flat = {c: np.concatenate([w[c] for w in walks]) for c in COLUMNS}
    bounds = np.concatenate(([0], np.cumsum([len(w["close"]) for w in walks]))).astype(np.int64)
    return flat, bounds


def one_by_one(ind: Indicator, walks: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, ...]:
    params = params_for(ind)
    alone = [as_tuple(ind.one(*(w[i] for i in ind.inputs), **params)) for w in walks]
    return tuple(np.concatenate(parts) for parts in zip(*alone, strict=True))


def check_segments(ind: Indicator, walks: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, ...]:
    flat, bounds = concat(walks)
    together = ind.segmented(flat, bounds, **params_for(ind))
    expected = one_by_one(ind, walks)
    assert len(together) == len(expected) == len(ind.outputs)
    for j, (a, b) in enumerate(zip(together, expected, strict=True)):
        assert_bitwise(a, b, f"{ind.name} output {j}")
    return together


@pytest.mark.parametrize("name", NAMES)
def test_two_tickers_concatenated_equal_each_alone(name):
    ind = REGISTRY[name]
    a, b = random_walk(120, 1), random_walk(80, 2)
    together = check_segments(ind, [a, b])
    lb = lookback(ind)
    for out in together:
        assert np.isnan(out[120 : 120 + lb]).all(), "lookback NaNs at B's start"
        assert np.isfinite(out[120 + lb])
        assert np.isfinite(out[lb:120]).all()


@pytest.mark.parametrize("name", NAMES)
def test_second_segment_equals_talib_on_that_ticker_alone(name):
    """Nothing of A leaks into B: B's values are TA-Lib's on B alone."""
    ind = REGISTRY[name]
    a, b = random_walk(90, 3), random_walk(70, 4)
    flat, bounds = concat([a, b])
    together = ind.segmented(flat, bounds, **params_for(ind))
    ref = as_tuple(
        getattr(talib, name)(*(b[i] for i in ind.inputs), **ind.talib_kwargs(**params_for(ind)))
    )
    for ours, theirs in zip(together, ref, strict=True):
        assert np.array_equal(ours[90:], theirs, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_short_length_one_and_empty_segments_in_the_middle(name):
    ind = REGISTRY[name]
    lb = lookback(ind)
    walks = [
        random_walk(100, 5),
        random_walk(max(lb - 1, 0), 6),  # shorter than the lookback: all NaN
        random_walk(1, 7),
        random_walk(0, 8),  # an empty segment (repeated bound)
        random_walk(lb, 9),  # exactly the lookback: all NaN
        random_walk(lb + 1, 10),  # one value
        random_walk(60, 11),
    ]
    together = check_segments(ind, walks)
    _, bounds = concat(walks)
    for out in together:
        assert np.isnan(out[bounds[1] : bounds[2]]).all()
        assert np.isnan(out[bounds[4] : bounds[5]]).all()
        last_of_one_value = out[bounds[5] : bounds[6]]
        assert np.isnan(last_of_one_value[:-1]).all()
        assert np.isfinite(last_of_one_value[-1])


@pytest.mark.parametrize("name", NAMES)
def test_many_tickers_of_random_lengths(name):
    ind = REGISTRY[name]
    rng = np.random.default_rng(12)
    walks = [random_walk(int(n), 100 + i) for i, n in enumerate(rng.integers(0, 60, 25))]
    check_segments(ind, walks)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bounds", [[0], [0, 0]], ids=["no-segment", "one-empty-segment"])
def test_empty_input(name, bounds):
    ind = REGISTRY[name]
    empty = {c: np.empty(0) for c in COLUMNS}
    outs = ind.segmented(empty, np.array(bounds, dtype=np.int64), **params_for(ind))
    assert len(outs) == len(ind.outputs)
    assert all(out.shape == (0,) and out.dtype == np.float64 for out in outs)
    alone = as_tuple(ind.one(*(empty[i] for i in ind.inputs), **params_for(ind)))
    assert all(out.shape == (0,) for out in alone)


@pytest.mark.parametrize("name", NAMES)
def test_result_does_not_depend_on_the_neighbours_values(name):
    """Changing ticker A's bars changes nothing of ticker B's values."""
    ind = REGISTRY[name]
    a, b = random_walk(50, 13), random_walk(50, 14)
    wild = {c: v * 1e6 if c != "volume" else v + 1e9 for c, v in random_walk(50, 15).items()}
    first = check_segments(ind, [a, b])
    second = check_segments(ind, [wild, b])
    for x, y in zip(first, second, strict=True):
        assert_bitwise(x[50:], y[50:], name)


# --------------------------------------------------------------------------- window_ending

SEGMENT_LENGTHS = [0, 1, 3, 7, 25, 50]


def naive_window_at_end(x, bounds, n, lag, how):
    out = []
    for lo, hi in pairwise(bounds):
        seg = x[lo:hi]
        stop = max(len(seg) - lag, 0)
        window = seg[max(stop - n, 0) : stop]
        if len(window) == 0:
            out.append(np.nan)
        elif how == 0:
            out.append(np.max(window))
        elif how == 1:
            out.append(np.min(window))
        else:
            out.append(sum(window.tolist()) / len(window))  # left to right, as the kernel
    return np.array(out)


@pytest.fixture(scope="module")
def window_data():
    rng = np.random.default_rng(21)
    x = rng.standard_normal(sum(SEGMENT_LENGTHS)) * 10
    bounds = np.concatenate(([0], np.cumsum(SEGMENT_LENGTHS))).astype(np.int64)
    return x, bounds


@pytest.mark.parametrize("how", [0, 1, 2], ids=["max", "min", "mean"])
@pytest.mark.parametrize("lag", [0, 1, 5, 30])
@pytest.mark.parametrize("n", [1, 3, 20, 1000])
def test_window_ending_at_each_last_bar_equals_plain_numpy(window_data, n, lag, how):
    x, bounds = window_data
    out = at_end(x, bounds, n, lag, how)
    expected = naive_window_at_end(x, bounds, n, lag, how)
    assert out.shape == (len(bounds) - 1,)
    assert_bitwise(out, expected, f"n={n} lag={lag} how={how}")


def at_end(x, bounds, n, lag, how):
    """The window ending at each segment's last bar."""
    return rolling.window_ending(x, bounds[:-1], bounds[1:] - 1, n, lag, how)


@pytest.mark.parametrize("how", [0, 1, 2], ids=["max", "min", "mean"])
@pytest.mark.parametrize("lag", [0, 2])
def test_window_ending_at_any_bar_is_the_window_of_the_history_cut_there(window_data, lag, how):
    x, bounds = window_data
    for lo, hi in pairwise(bounds):
        for p in range(lo, hi):
            cut = np.array([lo, p + 1], dtype=np.int64)
            expected = naive_window_at_end(x, cut, 7, lag, how)
            got = rolling.window_ending(x, np.array([lo]), np.array([p]), 7, lag, how)
            assert_bitwise(got, expected, f"row {p} lag={lag} how={how}")


def test_window_at_end_by_hand():
    x = np.array([1.0, 5.0, 2.0, 8.0, 3.0, 4.0, 9.0])
    bounds = np.array([0, 5, 7], dtype=np.int64)
    # last 3 bars: (2, 8, 3) and (4, 9); lag 1: (5, 2, 8) and (4,); lag 2: (1, 5, 2) and none
    assert_bitwise(at_end(x, bounds, 3, 0, 0), np.array([8.0, 9.0]), "max")
    assert_bitwise(at_end(x, bounds, 3, 0, 1), np.array([2.0, 4.0]), "min")
    assert_bitwise(at_end(x, bounds, 3, 1, 2), np.array([5.0, 4.0]), "mean")
    assert_bitwise(at_end(x, bounds, 3, 2, 0), np.array([5.0, np.nan]), "lag 2")


def test_window_at_end_of_no_segments_is_empty():
    out = at_end(np.empty(0), np.zeros(1, dtype=np.int64), 5, 0, 0)
    assert out.shape == (0,)


# --------------------------------------------------------------------------- extremes


def naive_extremes(high, low, bounds, n):
    highest = np.full_like(high, np.nan)
    lowest = np.full_like(low, np.nan)
    for lo, hi in pairwise(bounds):
        for t in range(lo + n - 1, hi):
            highest[t] = high[t - n + 1 : t + 1].max()
            lowest[t] = low[t - n + 1 : t + 1].min()
    return highest, lowest


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 14, 60])
def test_extremes_equal_naive_rolling_max_and_min(n):
    lengths = [0, 1, 2, 5, 14, 15, 28, 29, 50]  # multiples of n and not, shorter than n
    walks = [random_walk(m, 30 + i) for i, m in enumerate(lengths)]
    flat, bounds = concat(walks)
    highest, lowest = rolling.extremes(flat["high"], flat["low"], bounds, n)
    exp_high, exp_low = naive_extremes(flat["high"], flat["low"], bounds, n)
    assert_bitwise(highest, exp_high, f"highest n={n}")
    assert_bitwise(lowest, exp_low, f"lowest n={n}")


def test_extremes_match_talib_max_and_min():
    walk = random_walk(200, 40)
    highest, lowest = rolling.extremes(
        walk["high"], walk["low"], np.array([0, 200], dtype=np.int64), 9
    )
    assert np.array_equal(highest, talib.MAX(walk["high"], 9), equal_nan=True)
    assert np.array_equal(lowest, talib.MIN(walk["low"], 9), equal_nan=True)

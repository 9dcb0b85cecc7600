"""What a live scan keeps between bars, and the scan's rows with one more bar per ticker.

:func:`build` runs once per committed session (after the nightly sync) over each ticker's
whole clean history: every indicator's step state after the last bar, the last few indicator
values (the signals read up to five bars back) and the last :attr:`LiveState.reach` bars (the
52-week windows and the long returns). :func:`update` takes today's forming bar per ticker and
returns the rows ``latest_features`` would return for the history with that bar appended, in
O(tickers) and without changing the state, so the next minute starts from the same state;
:func:`commit` appends the bar for good.

A forming bar goes through the scan's own hygiene. One case is not replayed: a forming bar that
would make yesterday's close a bad print (100× off both neighbours) leaves the ticker as it was
(``held["reclassifies"]``); the nightly scan, which sees the whole history, decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline import features, hygiene
from pipeline.kernels import cleaning
from pipeline.live import kernels
from pipeline.schema import DATE, TICKER, TICKER_DTYPE
from pipeline.segments import Benchmark, Tails

PRICES = ("open", "high", "low", "close")
BAR = (DATE, *PRICES, "volume")
KEEP = 6  # indicator values kept per ticker: the signals look five bars back


@dataclass(frozen=True)
class Plan:
    """The scan's indicators (:data:`pipeline.features.INDICATORS`) as the live kernels take
    them: SMA periods, the other parameters, and the feature column of each output."""

    smas: np.ndarray
    params: np.ndarray
    columns: tuple[str, ...]

    @classmethod
    def of(cls, indicators=features.INDICATORS) -> Plan:
        by_name: dict[str, list[tuple[dict, tuple[str, ...]]]] = {}
        for name, params, columns in indicators:
            by_name.setdefault(name, []).append((params, columns))
        known = {"SMA", "RSI", "MACD", "BBANDS", "ATR", "ADX", "PLUS_DI", "MINUS_DI", "STOCH",
                 "MFI", "CCI", "WILLR"}  # fmt: skip
        unknown = set(by_name) - known
        if unknown:
            raise NotImplementedError(f"live scans cannot step {sorted(unknown)}")
        one = {name: entries[0] for name, entries in by_name.items() if name != "SMA"}
        if len({one[n][0]["n"] for n in ("ADX", "PLUS_DI", "MINUS_DI")}) != 1:
            raise NotImplementedError("live scans step ADX, +DI and −DI with one period")
        (rsi, (rsi_col,)), (macd, macd_cols) = one["RSI"], one["MACD"]
        (bb, bb_cols), (atr, (atr_col,)) = one["BBANDS"], one["ATR"]
        (stoch, stoch_cols), (mfi, (mfi_col,)) = one["STOCH"], one["MFI"]
        (cci, (cci_col,)), (willr, (willr_col,)) = one["CCI"], one["WILLR"]
        smas = by_name.get("SMA", [])
        params = [rsi["n"], macd["fast"], macd["slow"], macd["signal"], bb["n"], bb["k"]]
        params += [atr["n"], one["ADX"][0]["n"], stoch["k"], stoch["k_smooth"], stoch["d"]]
        params += [mfi["n"], cci["n"], willr["n"]]
        columns = (
            *(cols[0] for _, cols in smas), rsi_col, *macd_cols, *bb_cols, atr_col,
            one["PLUS_DI"][1][0], one["MINUS_DI"][1][0], one["ADX"][1][0], *stoch_cols,
            mfi_col, cci_col, willr_col,
        )  # fmt: skip
        return cls(
            np.array([p["n"] for p, _ in smas], dtype=np.int64),
            np.array(params, dtype=np.float64),
            columns,
        )

    @property
    def stepping(self) -> int:
        """Bars a history needs before a step may extend it: every indicator past its seed
        and every window a step reads inside the history (shorter ones are recomputed)."""
        return kernels.reach_needed(self.smas, self.params)

    @property
    def reach(self) -> int:
        """Bars kept per ticker: the longest window of the indicators and the features."""
        return max(self.stepping, features.YEAR + 1)


@dataclass(frozen=True)
class LiveState:
    """Per ticker (``tickers``: those with a clean bar): the last ``reach`` clean bars in slots
    ``0 .. reach − 1`` of a block of ``reach + 1`` (right-aligned; slot ``reach`` takes the
    forming bar), the bar count, the step states and the last :data:`KEEP` indicator values;
    and the hygiene counts of every ticker read (``counts``)."""

    plan: Plan
    tickers: pd.Index
    bars: np.ndarray  # clean bars of each ticker's history
    tail: dict[str, np.ndarray]  # BAR columns, flat: tickers × (reach + 1)
    states: np.ndarray  # tickers × state slots
    recent: np.ndarray  # tickers × KEEP × outputs
    counts: pd.DataFrame  # rows_in and dropped_<reason>, every ticker read
    benchmark: Benchmark | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def reach(self) -> int:
        return self.plan.reach

    @property
    def block(self) -> int:
        return self.reach + 1

    def first_slots(self) -> np.ndarray:
        """Flat index of each ticker's oldest kept bar."""
        starts = np.arange(len(self.tickers)) * self.block
        return starts + self.reach - np.minimum(self.bars, self.reach)

    def committed_last(self) -> np.ndarray:
        return np.arange(len(self.tickers)) * self.block + self.reach - 1


def build(
    cleaned: hygiene.Cleaned, benchmark: Benchmark | None, plan: Plan | None = None
) -> LiveState:
    """The state after the last bar of every ticker of a cleaned partition."""
    plan = plan or Plan.of()
    a, bounds = cleaned.arrays, cleaned.bounds
    recent, states = kernels.run_segments(
        a["high"], a["low"], a["close"], a["volume"], bounds, plan.smas, plan.params, KEEP
    )
    lengths = np.diff(bounds)
    reach, count = plan.reach, len(lengths)
    kept = np.minimum(lengths, reach)
    # flat slot of each kept bar: its ticker's block, right-aligned before the forming slot
    owner = np.repeat(np.arange(count), kept)
    back = np.concatenate([np.arange(n, 0, -1) for n in kept]) if count else np.array([], int)
    source = np.repeat(bounds[1:], kept) - back
    target = owner * (reach + 1) + reach - back
    tail = {}
    for column in BAR:
        values = a[column]
        out = np.zeros(count * (reach + 1), dtype=values.dtype)
        if values.dtype.kind == "f":
            out[:] = np.nan
        out[target] = values[source]
        tail[column] = out
    counts = features.hygiene_counts(cleaned)
    return LiveState(
        plan=plan,
        tickers=cleaned.tickers[cleaned.kept],
        bars=lengths.astype(np.int64),
        tail=tail,
        states=states,
        recent=recent,
        counts=counts,
        benchmark=benchmark,
    )


@dataclass(frozen=True)
class Step:
    """One bar further: the rows (``latest``), and what :func:`commit` needs."""

    latest: pd.DataFrame
    moved: np.ndarray  # per state ticker: took its forming bar
    states: np.ndarray
    outputs: np.ndarray  # tickers × outputs at the forming bar (rows that moved)
    bars: dict[str, np.ndarray]  # the forming bars, per state ticker (NaN where none)
    held: dict[str, int]  # tickers that kept their row, by why


def _forming(state: LiveState, bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """``bars`` (one row per ticker) aligned to the state's tickers; NaN where absent."""
    aligned = bars.reindex(state.tickers)
    out = {c: aligned[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in (*PRICES, "volume")}
    out[DATE] = aligned[DATE].to_numpy(dtype="datetime64[ns]")
    return out


def _hygiene(state: LiveState, bar: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """The forming bars' first hygiene reason (:data:`pipeline.hygiene.REASONS` index + 1, 0:
    clean, -1: none today or not after the last bar, -2: it would reclassify yesterday's).

    The scan's own rule kernel judges each ticker's last two kept bars and the forming bar as
    one segment: the forming bar by its own prices (a segment's last bar), yesterday's by its
    neighbours, which now include the forming bar."""
    last = state.committed_last()
    kept = np.minimum(state.bars, 2)  # committed bars in each small segment
    grid = {}
    for column in BAR:
        values = state.tail[column]
        rows = np.stack([values[np.maximum(last - 1, 0)], values[last], bar[column]], axis=1)
        grid[column] = rows
    used = np.arange(3)[None, :] >= (2 - kept)[:, None]  # right-aligned: no padding rows
    flat = {column: rows[used] for column, rows in grid.items()}
    ends = np.cumsum(kept + 1)
    bounds = np.concatenate([[0], ends])
    codes, _ = cleaning.reasons(
        flat[DATE].view(np.int64), *(flat[c] for c in (*PRICES, "volume")), bounds
    )
    code = codes[ends - 1].astype(np.int64)
    yesterday = np.where(kept == 2, codes[ends - 2], 0)
    after = bar[DATE] > state.tail[DATE][last]
    code = np.where(np.isnat(bar[DATE]) | ~after, -1, code)
    spike = hygiene.REASONS.index("price_spike") + 1
    code = np.where((code == 0) & (yesterday == spike), -2, code)
    held = {
        "no_bar": int((code == -1).sum()),
        "reclassifies": int((code == -2).sum()),
        "dropped": int((code > 0).sum()),
    }
    return code, held


def update(state: LiveState, bars: pd.DataFrame, benchmark_bar: tuple | None = None) -> Step:
    """The scan's rows with ``bars`` (ticker index; date, open, high, low, close, volume: one
    forming bar per ticker) appended; tickers without one keep their last bar.
    ``benchmark_bar``: (date, close) of the benchmark's forming bar, for relative strength.
    The state is not changed (the forming slot of each block is scratch)."""
    plan, reach = state.plan, state.reach
    bar = _forming(state, bars)
    code, held = _hygiene(state, bar)
    moved = code == 0
    slot = np.arange(len(state.tickers)) * state.block + reach
    for column in BAR:
        state.tail[column][slot] = np.where(moved, bar[column], state.tail[column][slot])
    long = moved & (state.bars >= plan.stepping)
    short = moved & ~long
    width = len(plan.columns)
    outputs = np.full((len(state.tickers), width), np.nan)
    states = state.states.copy()
    t = state.tail
    if long.any():
        at = slot[long]
        d = int(plan.params[10])
        before = state.recent[long, KEEP - d + 1 :, plan.columns.index("stoch_k")]
        out, new = kernels.step(
            t["high"], t["low"], t["close"], t["volume"], at, reach, state.bars[long],
            state.states[long], np.ascontiguousarray(before), plan.smas, plan.params,
        )  # fmt: skip
        outputs[long], states[long] = out, new
    if short.any():
        ends = slot[short] + 1
        starts = ends - state.bars[short] - 1
        bounds = np.concatenate([[0], np.cumsum(ends - starts)])
        idx = np.arange(bounds[-1]) + np.repeat(starts - bounds[:-1], ends - starts)
        recent, new = kernels.run_segments(
            t["high"][idx], t["low"][idx], t["close"][idx], t["volume"][idx], bounds,
            plan.smas, plan.params, 1,
        )  # fmt: skip
        outputs[short], states[short] = recent[:, 0], new
    latest = _rows(state, moved, outputs, code, benchmark_bar)
    return Step(latest, moved, states, outputs, bar, held)


def _rows(
    state: LiveState,
    moved: np.ndarray,
    outputs: np.ndarray,
    code: np.ndarray,
    benchmark_bar: tuple | None,
) -> pd.DataFrame:
    """``latest_features``' frame from the tails: rows as of the forming bar where it moved."""
    count, block = len(state.tickers), state.block
    starts = np.arange(count) * block
    last = np.where(moved, starts + state.reach, starts + state.reach - 1)
    total = state.bars + moved
    # ``first`` may lie before the block: every read reaches back less than a block, and a
    # ticker's bar count is ``last − first + 1``
    tails = Tails(first=last - total + 1, last=last)
    recent = np.concatenate([state.recent, np.full((count, 1, outputs.shape[1]), np.nan)], axis=1)
    recent[moved, KEEP] = outputs[moved]
    ind_block = KEEP + 1
    ind_starts = np.arange(count) * ind_block
    ind_last = np.where(moved, ind_starts + KEEP, ind_starts + KEEP - 1)
    ind_first = ind_last - total + 1
    ind = {c: recent[:, :, j].ravel() for j, c in enumerate(state.plan.columns)}
    benchmark = state.benchmark.with_bar(benchmark_bar) if state.benchmark else None
    feats = features.features_at(
        state.tail, ind, tails, benchmark, ind_tails=Tails(ind_first, ind_last)
    )
    frame = pd.DataFrame(
        {**feats, "sparkline": features._sparklines(tails, state.tail["close"])},
        index=state.tickers,
    )
    counts = state.counts.copy()
    where = counts.index.get_indexer(state.tickers)
    counts.iloc[where[code >= 0], counts.columns.get_loc("rows_in")] += 1
    for i, reason in enumerate(hygiene.REASONS, start=1):
        hit = where[code == i]
        counts.iloc[hit, counts.columns.get_loc(f"dropped_{reason}")] += 1
    out = features.with_counts(counts, frame)
    out.index = out.index.astype(TICKER_DTYPE)
    out.index.name = TICKER
    return out


def commit(state: LiveState, step: Step) -> LiveState:
    """``state`` with the step's forming bars appended for good (a closed session)."""
    moved = step.moved
    count, block = len(state.tickers), state.block
    tail = {}
    for column, values in state.tail.items():
        grid = values.reshape(count, block).copy()
        grid[moved, :-1] = grid[moved, 1:]  # the forming bar moves into the last kept slot
        grid[:, -1] = np.nan if values.dtype.kind == "f" else grid[:, -1]
        tail[column] = grid.ravel()
    recent = state.recent.copy()
    recent[moved, :-1] = recent[moved, 1:]
    recent[moved, -1] = step.outputs[moved]
    counts = step.latest[list(state.counts.columns)]
    return replace(
        state,
        bars=state.bars + moved,
        tail=tail,
        states=np.where(moved[:, None], step.states, state.states),
        recent=recent,
        counts=counts.set_axis(state.counts.index),
    )

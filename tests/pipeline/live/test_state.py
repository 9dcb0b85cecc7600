"""Live state: one forming bar per ticker gives the rows of a recompute over the history with
that bar appended, bit for bit, without changing the state; committing then stepping again
equals the batch scan over both days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import features, hygiene
from pipeline.live import state as live
from pipeline.schema import DATE, TICKER
from pipeline.segments import Benchmark
from pipeline.sparklines import sparkline_matrix


def _split(bars: pd.DataFrame, days: int) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """History up to ``days`` sessions before the end, and each later session's bars (one
    per ticker)."""
    dates = np.sort(bars[DATE].unique())
    cut = dates[-days - 1]
    history = bars[bars[DATE] <= cut]
    later = [
        bars[bars[DATE] == day].drop_duplicates(TICKER, keep="last").set_index(TICKER)
        for day in dates[-days:]
    ]
    return history, later


def _benchmark(bars: pd.DataFrame) -> Benchmark:
    spy = bars[bars[TICKER] == "SPY"]
    return Benchmark(spy[DATE].to_numpy(), spy["close"].to_numpy())


def _appended(history: pd.DataFrame, days: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat([history, *(d.reset_index() for d in days)])
    return frame.sort_values([TICKER, DATE], kind="stable").set_index(TICKER)


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    return features.latest_features(frame, _benchmark(frame.reset_index()))


def _state(history: pd.DataFrame) -> live.LiveState:
    return live.build(hygiene.clean(history.set_index(TICKER)), _benchmark(history))


def _spy(day: pd.DataFrame) -> tuple:
    return day.loc["SPY", DATE], day.loc["SPY", "close"]


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.copy()
    want = want.copy()
    got["sparkline"] = list(sparkline_matrix(got["sparkline"]))
    want["sparkline"] = list(sparkline_matrix(want["sparkline"]))
    for column in features.COLUMNS:
        a, b = got[column], want[column]
        if column == "sparkline":
            np.testing.assert_array_equal(np.stack(a), np.stack(b), err_msg=column)
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, check_names=False, obj=column)


@pytest.fixture(scope="module")
def demo_bars(demo_universe) -> pd.DataFrame:
    return demo_universe.bars


def test_a_forming_bar_gives_the_rows_of_the_history_with_it_appended(demo_bars) -> None:
    history, (today,) = _split(demo_bars, 1)
    state = _state(history)
    step = live.update(state, today, _spy(today))
    assert step.held["reclassifies"] == 0
    assert step.moved.sum() > 0.9 * len(today)
    stepping, reach = state.plan.stepping, state.reach
    assert (state.bars < stepping).any()  # recomputed whole
    assert ((state.bars >= stepping) & (state.bars < reach)).any()  # stepped, short tail
    assert (state.bars >= reach).any()  # stepped, full tail
    _same(step.latest, _latest(_appended(history, [today])))


def test_peek_leaves_the_state_as_it_was(demo_bars) -> None:
    history, (today,) = _split(demo_bars, 1)
    state = _state(history)
    states, recent = state.states.copy(), state.recent.copy()
    moved = today.assign(close=today["close"] * 1.01, high=today["high"] * 1.01)
    first = live.update(state, moved, _spy(moved)).latest
    again = live.update(state, today, _spy(today)).latest
    np.testing.assert_array_equal(state.states, states)
    np.testing.assert_array_equal(state.recent, recent)
    _same(again, _latest(_appended(history, [today])))
    assert not first["close"].equals(again["close"])


def test_several_days_committed_equal_the_batch_scan(demo_bars) -> None:
    history, days = _split(demo_bars, 3)
    state = _state(history)
    for i, day in enumerate(days):
        step = live.update(state, day, _spy(day))
        _same(step.latest, _latest(_appended(history, days[: i + 1])))
        state = live.commit(state, step)


def test_tickers_without_a_bar_today_keep_yesterdays_row(demo_bars) -> None:
    history, (today,) = _split(demo_bars, 1)
    state = _state(history)
    quiet = today.index[::3].drop("SPY", errors="ignore")
    step = live.update(state, today.drop(quiet), _spy(today))
    assert step.held["no_bar"] >= len(quiet)
    yesterday = _latest(history.set_index(TICKER))
    _same(step.latest.loc[quiet], yesterday.loc[quiet])


def test_a_bad_forming_bar_is_dropped_and_counted(demo_bars) -> None:
    history, (today,) = _split(demo_bars, 1)
    state = _state(history)
    bad = today.copy()
    victims = [t for t in bad.index if t != "SPY"][:3]
    bad.loc[victims[0], "low"] = bad.loc[victims[0], "high"] * 2  # crossed
    bad.loc[victims[1], "close"] = np.nan  # halted: no price
    bad.loc[victims[2], "high"] = bad.loc[victims[2], "close"] * 500  # a bad print
    step = live.update(state, bad, _spy(bad))
    assert step.held["dropped"] == 3
    want = _latest(_appended(history, [bad]))
    _same(step.latest, want)


def test_every_indicator_of_the_scan_is_stepped() -> None:
    plan = live.Plan.of()
    wanted = {c for _, _, columns in features.INDICATORS for c in columns}
    assert set(plan.columns) == wanted
    with pytest.raises(NotImplementedError, match="OBV"):
        live.Plan.of((*features.INDICATORS, ("OBV", {}, ("obv",))))


def _talib_peeks(h, lw, c, v, bar) -> dict[str, float]:
    """Each indicator's value at the forming ``bar`` from TA-Lib's streaming API: a handle
    opened on the history, ``peek`` at the bar."""
    stream = pytest.importorskip("talib.stream", reason="TA-Lib's streaming API (TA-Lib ≥ 0.8.1)")
    fh, fl, fc, fv = bar
    hlc = (h, lw, c)
    out = {f"sma{n}": stream.SMA(c, n).peek(fc) for n in features.SMA_PERIODS}
    out["rsi14"] = stream.RSI(c, 14).peek(fc)
    macd = stream.MACD(c, 12, 26, 9).peek(fc)
    out.update(zip(("macd", "macd_signal", "macd_hist"), macd, strict=True))
    bands = stream.BBANDS(c, 20, 2.0, 2.0, 0).peek(fc)
    out.update(zip(("bb_upper", "bb_middle", "bb_lower"), bands, strict=True))
    for name, fn in (("atr14", "ATR"), ("adx14", "ADX"), ("plus_di14", "PLUS_DI"),
                     ("minus_di14", "MINUS_DI"), ("willr14", "WILLR")):  # fmt: skip
        out[name] = getattr(stream, fn)(*hlc, 14).peek(fh, fl, fc)
    stoch = stream.STOCH(*hlc, 14, 3, 0, 3, 0).peek(fh, fl, fc)
    out.update(zip(("stoch_k", "stoch_d"), stoch, strict=True))
    out["mfi14"] = stream.MFI(*hlc, v, 14).peek(fh, fl, fc, fv)
    out["cci20"] = stream.CCI(*hlc, 20).peek(fh, fl, fc)
    return out


def test_each_step_equals_talibs_streaming_peek(demo_bars) -> None:
    history, (today,) = _split(demo_bars, 1)
    cleaned = hygiene.clean(history.set_index(TICKER))
    state = live.build(cleaned, _benchmark(history))
    step = live.update(state, today, _spy(today))
    kept = cleaned.tickers[cleaned.kept]
    stepped = np.flatnonzero(step.moved & (state.bars >= state.reach))
    assert len(stepped) > 200
    for j in stepped:
        s = kept.get_loc(state.tickers[j])
        lo, hi = cleaned.bounds[s], cleaned.bounds[s + 1]
        h, lw, c, v = (cleaned.arrays[k][lo:hi] for k in ("high", "low", "close", "volume"))
        bar = tuple(step.bars[k][j] for k in ("high", "low", "close", "volume"))
        for column, want in _talib_peeks(h, lw, c, v, bar).items():
            got = step.outputs[j, state.plan.columns.index(column)]
            assert got == want, (state.tickers[j], column, got, want)


def test_peek_then_commit_equals_committing_directly(demo_bars) -> None:
    history, (today,) = _split(demo_bars, 1)
    direct = _state(history)
    direct = live.commit(direct, live.update(direct, today, _spy(today)))
    peeked = _state(history)
    other = today.assign(close=today["close"] * 0.97, low=today["low"] * 0.97)
    live.update(peeked, other, _spy(other))  # an earlier minute
    peeked = live.commit(peeked, live.update(peeked, today, _spy(today)))
    np.testing.assert_array_equal(peeked.bars, direct.bars)
    np.testing.assert_array_equal(peeked.states, direct.states)
    np.testing.assert_array_equal(peeked.recent, direct.recent)
    for column, values in direct.tail.items():
        np.testing.assert_array_equal(peeked.tail[column], values, err_msg=column)
    pd.testing.assert_frame_equal(peeked.counts, direct.counts)


def test_a_bar_that_would_make_yesterdays_a_bad_print_leaves_the_ticker_as_it_was(
    demo_bars,
) -> None:
    history, (today,) = _split(demo_bars, 1)
    ticker = next(t for t in today.index if t != "SPY")
    last = history.index[(history[TICKER] == ticker).to_numpy()][-1]
    history = history.copy()
    history.loc[last, ["open", "high", "low", "close"]] *= 200  # kept: its own prices agree
    state = _state(history)
    step = live.update(state, today, _spy(today))
    assert step.held["reclassifies"] == 1  # with today's bar beside it, it is a spike
    yesterday = _latest(history.set_index(TICKER))
    _same(step.latest.loc[[ticker]], yesterday.loc[[ticker]])

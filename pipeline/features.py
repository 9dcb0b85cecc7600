"""One partition of bars → one row per ticker: hygiene counts, features and signals at the
latest bar.

This is the function the scan maps over partitions. Indicators run over the whole partition at
once through the registry's segmented kernels; only values at (or just before) each ticker's
last bar are kept. All features are unit-free except ``close``, ``atr14``, the volume levels and
``sparkline`` (kept for the trade plan, liquidity filters and the app).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import cudf_frame, hygiene, signals
from pipeline.indicators import REGISTRY
from pipeline.schema import DATE, DATE_DTYPE, TICKER, TICKER_DTYPE
from pipeline.segments import Benchmark, Tails
from pipeline.sparklines import SPARKLINE, SPARKLINE_DTYPE

RETURN_HORIZONS = (1, 5, 21, 63, 126, 252)
SMA_PERIODS = (20, 50, 200)
YEAR = 252
VOLUME_AVERAGE = 20

# (registry name, params, column per output): every indicator the features read.
INDICATORS: tuple[tuple[str, dict[str, float], tuple[str, ...]], ...] = (
    *(("SMA", {"n": n}, (f"sma{n}",)) for n in SMA_PERIODS),
    ("RSI", {"n": 14}, ("rsi14",)),
    ("MACD", {"fast": 12, "slow": 26, "signal": 9}, ("macd", "macd_signal", "macd_hist")),
    ("BBANDS", {"n": 20, "k": 2.0}, ("bb_upper", "bb_middle", "bb_lower")),
    ("ATR", {"n": 14}, ("atr14",)),
    ("ADX", {"n": 14}, ("adx14",)),
    ("PLUS_DI", {"n": 14}, ("plus_di14",)),
    ("MINUS_DI", {"n": 14}, ("minus_di14",)),
    ("STOCH", {"k": 14, "k_smooth": 3, "d": 3}, ("stoch_k", "stoch_d")),
    ("MFI", {"n": 14}, ("mfi14",)),
    ("CCI", {"n": 20}, ("cci20",)),
    ("WILLR", {"n": 14}, ("willr14",)),
)

FEATURES: dict[str, str] = {
    "last_date": "datetime64[ns]",
    "bars": "int64",
    "close": "float64",
    **{f"ret_{h}d": "float64" for h in RETURN_HORIZONS},
    **{f"dist_sma{n}": "float64" for n in SMA_PERIODS},
    "sma50_vs_sma200": "float64",
    "rsi14": "float64",
    "macd": "float64",
    "macd_signal": "float64",
    "macd_hist": "float64",
    "bb_pctb": "float64",
    "bb_width": "float64",
    "atr14": "float64",
    "atr14_pct": "float64",
    "adx14": "float64",
    "plus_di14": "float64",
    "minus_di14": "float64",
    "stoch_k": "float64",
    "stoch_d": "float64",
    "mfi14": "float64",
    "cci20": "float64",
    "willr14": "float64",
    "dist_52w_high": "float64",
    "dist_52w_low": "float64",
    "volume": "float64",
    "avg_volume_20d": "float64",
    "rel_volume": "float64",
    "dollar_volume": "float64",
    "avg_dollar_volume_20d": "float64",
    "gap": "float64",
    "rs_63d": "float64",
    "rs_126d": "float64",
}
LATEST_VALUES = (
    "rsi14", "macd", "macd_signal", "macd_hist", "atr14", "adx14", "plus_di14", "minus_di14",
    "stoch_k", "stoch_d", "mfi14", "cci20", "willr14",
)  # fmt: skip
COUNTS: dict[str, str] = {"rows_in": "int64", **{f"dropped_{r}": "int64" for r in hygiene.REASONS}}
COLUMNS: dict[str, str] = {
    **COUNTS,
    **FEATURES,
    **dict.fromkeys(signals.SIGNALS, "bool"),
    "sparkline": SPARKLINE_DTYPE,
}


@lru_cache(maxsize=1)
def empty() -> pd.DataFrame:
    """The zero-row output frame (Dask ``meta`` for :func:`latest_features`)."""
    index = pd.Index([], dtype=TICKER_DTYPE, name=TICKER)
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in COLUMNS.items()}, index=index)


def compute_indicators(
    arrays: Mapping[str, np.ndarray],
    bounds: np.ndarray,
    device: str = "cpu",
    on_device: Mapping[str, object] | None = None,
) -> dict[str, np.ndarray]:
    """Every indicator in :data:`INDICATORS` over all segments, keyed by column name.

    Indicators that share a kernel and parameters (ADX, +DI and −DI) share one kernel run.
    ``device="cuda"`` runs the kernels' GPU twins (:mod:`pipeline.kernels.gpu`): the inputs
    go to the GPU once (not at all when ``on_device`` holds them there already), the results
    come back as NumPy arrays with the same bits.
    """
    if device == "cuda":
        from pipeline.kernels.gpu import OnDevice

        run = OnDevice(arrays, bounds, on_device)
    else:

        def run(kernel, inputs, params):
            return kernel(*(arrays[i] for i in inputs), bounds, *params)

    out: dict[str, np.ndarray] = {}
    runs: dict[tuple, tuple[np.ndarray, ...]] = {}
    for name, params, columns in INDICATORS:
        indicator = REGISTRY[name]
        values = indicator.resolve(**params)
        key = (indicator.kernel, indicator.inputs, tuple(values.values()))
        if key not in runs:
            result = run(indicator.kernel, indicator.inputs, key[2])
            runs[key] = result if isinstance(result, tuple) else (result,)
        picked = [runs[key][i] for i in indicator.picks] if indicator.picks else runs[key]
        out.update(zip(columns, picked, strict=True))
    return out


# Extra columns at each ticker's last clean row: ``extra(arrays, bounds, indicators, last)``
# → ``{column: values}`` (the scan's ML alpha uses this to share the task's indicator arrays).
Extra = Callable[
    [Mapping[str, np.ndarray], np.ndarray, Mapping[str, np.ndarray], np.ndarray],
    Mapping[str, np.ndarray],
]


def latest_features(
    bars: pd.DataFrame,
    benchmark: Benchmark | None = None,
    extra: Extra | None = None,
    extra_columns: tuple[str, ...] = (),
    device: str = "cpu",
) -> pd.DataFrame:
    """Hygiene, indicators and features at the latest bar, one row per ticker of ``bars``.

    Tickers whose every row was dropped keep their row (counts only, NaN features), so the
    scan can report them. ``extra`` adds ``extra_columns`` after :data:`COLUMNS`. ``device``
    is where the indicator kernels run (``cpu`` or ``cuda``). A cuDF partition (in GPU memory)
    is cleaned there and its indicators run there (see :mod:`pipeline.cudf_frame`).
    """
    if cudf_frame.is_cudf(bars):
        cleaned = hygiene.clean_on_device(*cudf_frame.device_columns(bars))
        return features_of(cleaned, benchmark, extra, extra_columns, "cuda")
    out = features_of(hygiene.clean(bars), benchmark, extra, extra_columns, device)
    out.attrs.update(bars.attrs)  # e.g. how the bars were read (the bar cache's outcome)
    return out


def features_of(
    cleaned: hygiene.Cleaned,
    benchmark: Benchmark | None = None,
    extra: Extra | None = None,
    extra_columns: tuple[str, ...] = (),
    device: str = "cpu",
) -> pd.DataFrame:
    """:func:`latest_features` of bars already cleaned."""
    arrays, bounds = cleaned.arrays, cleaned.bounds
    tails = Tails.from_bounds(bounds)
    ind = compute_indicators(arrays, bounds, device, cleaned.on_device)
    feats = features_at(arrays, ind, tails, benchmark)
    if extra is not None:
        feats.update(extra(arrays, bounds, ind, tails.last))

    frame = pd.DataFrame(
        {**feats, "sparkline": _sparklines(tails, arrays["close"])},
        index=cleaned.tickers[cleaned.kept],
    )
    return with_counts(hygiene_counts(cleaned), frame, extra_columns)


def hygiene_counts(cleaned: hygiene.Cleaned) -> pd.DataFrame:
    """Per ticker read: rows in and rows dropped per reason (:data:`COUNTS`)."""
    return pd.DataFrame(
        {
            "rows_in": cleaned.rows_in,
            **{f"dropped_{r}": cleaned.dropped[r] for r in hygiene.REASONS},
        },
        index=cleaned.tickers,
    )


def with_counts(
    counts: pd.DataFrame, frame: pd.DataFrame, extra_columns: tuple[str, ...] = ()
) -> pd.DataFrame:
    """The output frame: a row per ticker of ``counts`` (those without a clean bar keep
    theirs, with NaN features and no signal), :data:`COLUMNS` then ``extra_columns``."""
    out = counts.join(frame, how="left")
    for col, dtype in COLUMNS.items():
        if dtype == "bool":
            out[col] = out[col].fillna(False).astype(bool)
        elif col == "bars":
            out[col] = out[col].fillna(0).astype("int64")
    return out[[*COLUMNS, *extra_columns]]


def features_at(
    arrays: Mapping[str, np.ndarray],
    ind: Mapping[str, np.ndarray],
    tails: Tails,
    benchmark: Benchmark | None,
    ind_tails: Tails | None = None,
) -> dict[str, np.ndarray]:
    """Every feature of :data:`FEATURES` and signal of :data:`pipeline.signals.SIGNALS` at
    the rows ``tails`` names, from clean ``arrays`` and their indicators ``ind``. Each reads
    bars from the row's ticker's first bar to the row's bar only, so a row as of a past bar
    has the values a scan of the history cut there has. ``ind_tails`` says where the rows are
    in ``ind`` when it is laid out apart from ``arrays`` (a live scan keeps only each
    ticker's last few indicator values)."""
    at = ind_tails or tails
    close, volume, dates = arrays["close"], arrays["volume"], arrays[DATE]
    last_close = tails.at(close)
    feats: dict[str, np.ndarray] = {
        "last_date": dates[tails.last] if len(dates) else np.array([], dtype=DATE_DTYPE),
        "bars": (tails.last - tails.first + 1).astype(np.int64),
        "close": last_close,
    }
    for h in RETURN_HORIZONS:
        feats[f"ret_{h}d"] = last_close / tails.at(close, h) - 1.0
    for n in SMA_PERIODS:
        feats[f"dist_sma{n}"] = last_close / at.at(ind[f"sma{n}"]) - 1.0
    feats["sma50_vs_sma200"] = at.at(ind["sma50"]) / at.at(ind["sma200"]) - 1.0
    for column in LATEST_VALUES:
        feats[column] = at.at(ind[column])
    upper, middle, lower = (at.at(ind[k]) for k in ("bb_upper", "bb_middle", "bb_lower"))
    with np.errstate(divide="ignore", invalid="ignore"):
        width = upper - lower
        feats["bb_pctb"] = np.where(width > 0, (last_close - lower) / width, np.nan)
        feats["bb_width"] = width / middle
        feats["atr14_pct"] = feats["atr14"] / last_close
        levels = {
            "high_52w": tails.window(arrays["high"], YEAR, 0, 0),
            "low_52w": tails.window(arrays["low"], YEAR, 0, 1),
            "high_20d_before": tails.window(arrays["high"], 20, 1, 0),
        }
        feats["dist_52w_high"] = last_close / levels["high_52w"] - 1.0
        feats["dist_52w_low"] = last_close / levels["low_52w"] - 1.0
        feats["volume"] = tails.at(volume)
        feats["avg_volume_20d"] = tails.window(volume, VOLUME_AVERAGE, 1, 2)
        feats["rel_volume"] = feats["volume"] / feats["avg_volume_20d"]
        feats["dollar_volume"] = last_close * feats["volume"]
        feats["avg_dollar_volume_20d"] = tails.window(close * volume, VOLUME_AVERAGE, 0, 2)
        feats["gap"] = tails.at(arrays["open"]) / tails.at(close, 1) - 1.0
        for h in (63, 126):
            feats[f"rs_{h}d"] = _relative_strength(benchmark, dates, tails, close, h)
    return {**feats, **signals.latest(tails, arrays, ind, feats, levels, at)}


def _relative_strength(
    benchmark: Benchmark | None,
    dates: np.ndarray,
    tails: Tails,
    close: np.ndarray,
    horizon: int,
) -> np.ndarray:
    """``(1 + r_ticker)/(1 + r_benchmark) − 1`` over the ticker's last ``horizon`` bars."""
    if benchmark is None or len(dates) == 0:
        return np.full(len(tails.last), np.nan)
    start = tails.last - horizon
    valid = start >= tails.first
    start_dates = dates[np.maximum(start, tails.first)]
    bench_ratio = benchmark.close_at(dates[tails.last]) / benchmark.close_at(start_dates)
    ticker_ratio = tails.at(close) / tails.at(close, horizon)
    return np.where(valid, ticker_ratio / bench_ratio - 1.0, np.nan)


def _sparklines(tails: Tails, close: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The last ``SPARKLINE`` closes per ticker, oldest first, NaN-padded in front."""
    offsets = np.arange(SPARKLINE - 1, -1, -1)
    pos = tails.last[:, None] - offsets[None, :]
    valid = pos >= tails.first[:, None]
    matrix = np.where(valid, close[np.maximum(pos, tails.first[:, None])], np.nan)
    values = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), SPARKLINE)
    return pd.arrays.ArrowExtensionArray(values)


def warm_up(device: str = "cpu") -> None:
    """Compile (or load from Numba's disk cache) every kernel of :func:`latest_features` on a
    tiny frame, so a process's first real partition does not pay for it. The cluster runs this
    once on each worker; ``device="cuda"`` also compiles the GPU twins (and the cleaning's,
    for cuDF partitions, where cuDF is installed)."""
    n = 40
    ramp = np.linspace(10.0, 12.0, n)
    low = ramp - 0.5
    low[7] = ramp[7] + 1.0  # one bad row (low > high), so the cleaning's compaction runs too
    frame = pd.DataFrame(
        {
            DATE: pd.date_range("2020-01-01", periods=n).astype(DATE_DTYPE),
            "open": ramp,
            "high": ramp + 0.5,
            "low": low,
            "close": ramp,
            "volume": np.full(n, 1000.0),
        },
        index=pd.Index(["A"] * n, dtype=TICKER_DTYPE, name=TICKER),
    )
    benchmark = Benchmark(frame[DATE].to_numpy(), ramp)
    latest_features(frame, benchmark, device=device)
    if device == "cuda" and cudf_frame.available():
        import cudf

        latest_features(cudf.from_pandas(frame.set_axis(frame.index.astype(object))), benchmark)

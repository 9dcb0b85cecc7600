"""Polygon.io market data over async HTTP: grouped daily bars, per-ticker daily aggregates,
the ticker reference list, ticker details, stock splits and the full-market snapshot (today's
forming bars, for live scans).

One request per trading day fetches the whole US market (``/v2/aggs/grouped/...``), instead
of one request per ticker. Bars are asked for unadjusted (``adjusted=false``); the sync applies
splits itself so a stored history has no seams (see :mod:`pipeline.adjustments`).

- **Key.** ``POLYGON_API_KEY`` travels in the ``Authorization: Bearer`` header, never in a URL,
  and every error message passes through :func:`redact` as well. 401/403 raise
  :class:`~pipeline.errors.ProviderAuthError` at once, without retries.
- **Rate limit.** ``TECHNIC_POLYGON_RPM`` requests per minute, evenly spaced (an
  ``aiolimiter`` bucket of one), and ``TECHNIC_BATCH_SIZE`` requests in flight. Every try counts.
- **Retries** (``tenacity``): 429, 5xx, timeouts, dropped connections and malformed bodies are
  retried up to ``TECHNIC_POLYGON_ATTEMPTS`` tries, waiting exponentially longer with jitter
  (``TECHNIC_POLYGON_BACKOFF`` doubling up to ``TECHNIC_POLYGON_BACKOFF_MAX``), or as long as
  a ``Retry-After`` header says. Then :class:`~pipeline.errors.ProviderError`, one line.
- **Tolerant parsing.** A body is checked before anything is kept: JSON that does not parse
  (truncated), a ``status`` other than OK/DELAYED, ``resultsCount`` that disagrees with the
  results, a result without one of T/o/h/l/c/v/t, a non-numeric price, or a bar of another day
  is :class:`MalformedResponse`, which is retried like a 5xx and never reaches the store.
  Unknown extra fields and missing optional ones (vw, n, names, types) are fine.
- **Cache.** With a :class:`~pipeline.cache.BarCache`, each parsed response is kept in Redis
  for ``CACHE_TTL`` seconds under ``{prefix}:polygon:{source}:...`` (grouped days as Parquet,
  reference lists as JSON), so a repeated backfill within the TTL makes
  no provider call. Empty days are not cached (their data may still be on its way).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import io
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from pipeline.errors import ConfigError, ProviderAuthError, ProviderError
from pipeline.schema import BAR_COLUMNS, DATE, DATE_DTYPE, TICKER, TICKER_DTYPE

if TYPE_CHECKING:
    from pipeline.cache import BarCache
    from pipeline.config import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.polygon.io"
NEW_YORK = "America/New_York"
GOOD_STATUS = {"OK", "DELAYED"}
BAR_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
SNAPSHOT_PATH = "/v2/snapshot/locale/us/markets/stocks/tickers"
PAGE_LIMIT = 1000
MAX_PAGES = 10_000
_CACHE_FORMAT = "v2"  # bump when a cached layout changes (v2: grouped days as Parquet)

T = TypeVar("T")


class MalformedResponse(ValueError):
    """A 200 response whose body cannot be trusted (truncated, partial, missing fields)."""


class _Retryable(Exception):
    """One failed try that deserves another; ``retry_after`` is the server's wish, seconds."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Stats:
    """What a client did: HTTP requests sent, retries, answers taken from the cache."""

    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "cache_hits": self.cache_hits,
            "by_kind": dict(self.by_kind),
        }


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` and without any ``apiKey=`` query value."""
    text = re.sub(r"(?i)(apikey=)[^&\s\"']+", r"\1***", text)
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split())  # one line


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), else None."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


# -- parsing (pure functions of the body) ---------------------------------------------------


def _load(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"truncated or invalid JSON ({len(body)} bytes: {exc})") from None
    if not isinstance(doc, dict):
        raise MalformedResponse(f"a JSON {type(doc).__name__}, not an object")
    status = doc.get("status")
    if status is not None and status not in GOOD_STATUS:
        detail = doc.get("error") or doc.get("message") or ""
        raise MalformedResponse(f"status {status!r} {detail}".strip())
    return doc


def _results(doc: dict[str, Any]) -> list[Any]:
    results = doc.get("results")
    count = doc.get("resultsCount", doc.get("count"))
    if results is None:
        if count not in (None, 0):
            raise MalformedResponse(f"resultsCount {count} but no results")
        return []
    if not isinstance(results, list):
        raise MalformedResponse(f"results is a {type(results).__name__}, not a list")
    if "resultsCount" in doc and doc["resultsCount"] != len(results):
        raise MalformedResponse(
            f"partial response: resultsCount {doc['resultsCount']} but {len(results)} results"
        )
    return results


def _column(results: list[Any], key: str, what: str) -> list[Any]:
    try:
        return [r[key] for r in results]
    except (KeyError, TypeError):
        for i, r in enumerate(results):
            if not isinstance(r, dict) or key not in r:
                name = r.get("T", r.get("ticker", "?")) if isinstance(r, dict) else "?"
                raise MalformedResponse(f"{what} result {i} ({name}) has no {key!r}") from None
        raise  # pragma: no cover


def _numbers(values: list[Any], key: str, what: str) -> np.ndarray:
    if any(type(v) not in (int, float) for v in values):
        bad = next(v for v in values if type(v) not in (int, float))
        raise MalformedResponse(f"{what} field {key!r} has a non-numeric value {bad!r}")
    return np.asarray(values, dtype="float64")


def _bars(results: list[Any], tickers: list[str], what: str) -> pd.DataFrame:
    """Bars of ``results`` (o/h/l/c/v/t each) for ``tickers``, dated by New York day."""
    stamps = _numbers(_column(results, "t", what), "t", what).astype("int64")
    # a day's bars share one or a few stamps: convert those, not every row
    unique, where = np.unique(stamps, return_inverse=True)
    days = (
        pd.to_datetime(unique, unit="ms", utc=True)
        .tz_convert(NEW_YORK)
        .tz_localize(None)
        .normalize()
        .to_numpy(dtype=DATE_DTYPE)
    )
    columns = {DATE: days[where]}
    for key, column in BAR_FIELDS.items():
        columns[column] = _numbers(_column(results, key, what), key, what)
    index = pd.Index(tickers, dtype=TICKER_DTYPE, name=TICKER)
    return pd.DataFrame(columns, index=index, columns=list(BAR_COLUMNS), copy=False)


def _check_adjusted(doc: dict[str, Any], adjusted: bool, what: str) -> None:
    if "adjusted" in doc and bool(doc["adjusted"]) != adjusted:
        raise MalformedResponse(f"{what}: asked for adjusted={adjusted}, got {doc['adjusted']}")


def parse_grouped(body: bytes, day: date, *, adjusted: bool = False) -> pd.DataFrame:
    """The bars of one grouped-daily body: ticker index, the contract's columns, sorted.

    An empty frame means no bars for the day (a holiday, or data not published yet). Raises
    :class:`MalformedResponse` for anything the store must not take.
    """
    what = f"grouped daily {day}"
    doc = _load(body)
    _check_adjusted(doc, adjusted, what)
    results = _results(doc)
    tickers = _column(results, "T", what)
    if any(not isinstance(t, str) or not t.strip() for t in tickers):
        raise MalformedResponse(f"{what}: a result has an empty or non-text ticker")
    frame = _bars(results, [t.strip().upper() for t in tickers], what)
    dates = frame[DATE].to_numpy()
    wrong = dates != np.datetime64(day, "ns")
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise MalformedResponse(
            f"{what}: {int(wrong.sum())} bar(s) of another day, e.g. {frame.index[i]} on "
            f"{pd.Timestamp(dates[i]):%Y-%m-%d}"
        )
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
    return frame


@dataclass(frozen=True)
class MarketSnapshot:
    """Polygon's full-market snapshot: today's forming bar of every ticker that has traded
    in the session (``day``: open, high, low, close and volume so far), and when."""

    bars: pd.DataFrame  # ticker index, the contract's columns, dated by the session
    session: date  # the New York day of the newest update
    updated: pd.Timestamp  # the newest update (UTC)
    tickers: int  # tickers in the body
    no_trade: int  # of them without a trade in the session yet (or not updated in it)


class _Day(msgspec.Struct):
    o: float = 0.0
    h: float = 0.0
    l: float = 0.0  # noqa: E741 (Polygon's name)
    c: float = 0.0
    v: float = 0.0


class _Ticker(msgspec.Struct):
    ticker: str
    updated: int = 0
    day: _Day | None = None


class _Snapshot(msgspec.Struct):
    tickers: list[_Ticker] | None = None
    count: int | None = None
    status: str | None = None
    error: str | None = None
    message: str | None = None


# Typed decoding reads only the fields a live scan uses (each ticker also carries min, prevDay,
# lastTrade and lastQuote) and checks their types on the way: several times faster than
# building every object of a 4 MB body.
_SNAPSHOT = msgspec.json.Decoder(_Snapshot)


def parse_snapshot(body: bytes) -> MarketSnapshot:
    """The full-market snapshot (``/v2/snapshot/locale/us/markets/stocks/tickers``):
    ``tickers[]`` of ticker, ``updated`` (ns) and ``day`` (o/h/l/c/v). The session is the New
    York day of the newest ``updated``, so a recorded day replays as it was; a ticker updated
    on another day, or whose ``day`` has no volume or no close yet, has no bar.
    Raises :class:`MalformedResponse` for a body the scan must not take."""
    what = "market snapshot"
    try:
        doc = _SNAPSHOT.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedResponse(
            f"{what}: truncated or invalid JSON ({len(body)} bytes: {exc})"
        ) from None
    if doc.status is not None and doc.status not in GOOD_STATUS:
        detail = doc.error or doc.message or ""
        raise MalformedResponse(f"status {doc.status!r} {detail}".strip())
    items = doc.tickers or []
    if doc.tickers is None and doc.count not in (None, 0):
        raise MalformedResponse(f"{what}: count {doc.count} but no tickers")
    if doc.count is not None and doc.tickers is not None and doc.count != len(items):
        raise MalformedResponse(f"partial {what}: count {doc.count} but {len(items)} tickers")
    if not items:
        raise MalformedResponse(f"{what}: no tickers at all")
    names = [t.ticker.strip().upper() for t in items]
    if not all(names):
        raise MalformedResponse(f"{what}: a ticker is empty")
    n = len(items)
    updated = np.fromiter((t.updated for t in items), np.int64, n)
    none = _Day()
    days = [t.day or none for t in items]
    fields = {
        column: np.fromiter((getattr(d, key) for d in days), np.float64, n)
        for key, column in BAR_FIELDS.items()
    }
    newest = pd.Timestamp(int(updated.max()), unit="ns", tz="UTC")
    session = newest.tz_convert(NEW_YORK).date()
    start = pd.Timestamp(session, tz=NEW_YORK)
    lo, hi = start.value, (start + pd.Timedelta(days=1)).value
    traded = (updated >= lo) & (updated < hi) & (fields["volume"] > 0) & (fields["close"] > 0)
    index = pd.Index(names, dtype=TICKER_DTYPE, name=TICKER)
    columns = {DATE: np.full(n, np.datetime64(session, "ns")), **fields}
    bars = pd.DataFrame(columns, index=index, columns=list(BAR_COLUMNS))[traded]
    bars = bars[~bars.index.duplicated(keep="last")].sort_index(kind="stable")
    return MarketSnapshot(bars, session, newest, n, int((~traded).sum()))


def parse_aggregates(
    body: bytes, ticker: str, *, adjusted: bool = False
) -> tuple[pd.DataFrame, str | None]:
    """One page of per-ticker daily aggregates, and the next page's URL."""
    what = f"{ticker} aggregates"
    doc = _load(body)
    _check_adjusted(doc, adjusted, what)
    if doc.get("ticker") not in (None, ticker):
        raise MalformedResponse(f"{what}: the response is for {doc.get('ticker')!r}")
    results = _results(doc)
    return _bars(results, [ticker] * len(results), what), doc.get("next_url")


def parse_page(body: bytes, required: tuple[str, ...], what: str) -> tuple[list[dict], str | None]:
    """The results of one reference-data page (each with ``required`` keys) and ``next_url``."""
    doc = _load(body)
    results = _results(doc)
    for key in required:
        _column(results, key, what)
    return results, doc.get("next_url")


def parse_details(body: bytes, ticker: str) -> dict[str, Any]:
    """The ``results`` object of ``/v3/reference/tickers/{ticker}``."""
    doc = _load(body)
    results = doc.get("results")
    if not isinstance(results, dict) or not results.get("ticker"):
        raise MalformedResponse(f"{ticker} details: no results object with a ticker")
    return results


# -- SIC codes to sectors -------------------------------------------------------------------

SIC_DIVISIONS = (  # (first two-digit major group, division), the SEC's SIC divisions
    (1, "Agriculture, Forestry and Fishing"),
    (10, "Mining"),
    (15, "Construction"),
    (20, "Manufacturing"),
    (40, "Transportation, Communications and Utilities"),
    (50, "Wholesale Trade"),
    (52, "Retail Trade"),
    (60, "Finance, Insurance and Real Estate"),
    (70, "Services"),
    (91, "Public Administration"),
    (99, "Nonclassifiable"),
)


def sic_sector(code: Any) -> str | None:
    """The SIC division of a four-digit SIC code (Polygon's ``sic_code``), e.g. 3571 ->
    Manufacturing; None when there is no usable code. Not GICS: a coarse sector."""
    try:
        number = int(str(code).strip())
    except ValueError:
        return None
    major = number // 100 if number >= 100 else number
    found = None
    for first, division in SIC_DIVISIONS:
        if major >= first:
            found = division
    return found


# -- the client -----------------------------------------------------------------------------


class PolygonClient:
    """Async Polygon client; use as ``async with PolygonClient(...) as client:``.

    Parameters mirror the settings (see :meth:`from_settings`); ``transport`` lets a test or
    benchmark swap httpx's transport, ``cache`` enables the Redis response cache.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        rpm: int = 5,
        concurrency: int = 8,
        timeout: float = 30.0,
        attempts: int = 6,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        cache: BarCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not api_key:
            raise ConfigError("POLYGON_API_KEY is not set: get a key at polygon.io and export it")
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.rpm = rpm
        self.concurrency = concurrency
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.cache = cache if cache is not None and cache.enabled else None
        self.stats = Stats()
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._limiter: AsyncLimiter | None = None
        self._slots: asyncio.Semaphore | None = None
        # backoff, 2×, 4×… capped at backoff_max, plus up to one backoff of jitter
        self._backoff_wait = wait_exponential(multiplier=backoff, max=backoff_max) + wait_random(
            0, backoff
        )
        source = hashlib.sha256(self.base_url.encode()).hexdigest()[:10]
        self._cache_prefix = f"{cache.prefix}:polygon:{_CACHE_FORMAT}:{source}" if cache else ""

    @classmethod
    def from_settings(cls, settings: Settings, cache: BarCache | None = None) -> PolygonClient:
        """A client configured by ``POLYGON_*`` and ``TECHNIC_POLYGON_*`` settings."""
        key = settings.polygon_api_key.get_secret_value() if settings.polygon_api_key else ""
        return cls(
            key,
            base_url=settings.polygon_base_url,
            rpm=settings.polygon_rpm,
            concurrency=settings.batch_size,
            timeout=settings.polygon_timeout,
            attempts=settings.polygon_attempts,
            backoff=settings.polygon_backoff,
            backoff_max=settings.polygon_backoff_max,
            cache=cache,
        )

    def __repr__(self) -> str:  # never the key
        return f"PolygonClient({self.base_url!r}, rpm={self.rpm})"

    async def __aenter__(self) -> PolygonClient:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self._key}", "User-Agent": "technic"},
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency),
            transport=self._transport,
        )
        self._limiter = AsyncLimiter(1, 60.0 / self.rpm) if self.rpm > 0 else None
        self._slots = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- endpoints --------------------------------------------------------------------------

    async def grouped_daily(self, day: date, *, adjusted: bool = False) -> pd.DataFrame:
        """Every US stock's bar on ``day`` (ticker index); empty for a day without bars."""
        key = f"{self._cache_prefix}:grouped:{day:%Y-%m-%d}:{'adj' if adjusted else 'raw'}"
        if self.cache is not None:
            cached = await asyncio.to_thread(self.cache.get_bytes, key)
            if cached is not None:
                try:
                    frame = pd.read_parquet(io.BytesIO(cached))
                    frame.index = frame.index.astype(TICKER_DTYPE)
                except (OSError, ValueError, pa.ArrowException):
                    pass  # not a value of ours: fetched again and overwritten
                else:
                    self.stats.cache_hits += 1
                    return frame
        frame = await self._request(
            f"/v2/aggs/grouped/locale/us/market/stocks/{day:%Y-%m-%d}",
            {"adjusted": str(adjusted).lower()},
            f"grouped daily {day}",
            lambda body: parse_grouped(body, day, adjusted=adjusted),
            kind="grouped",
        )
        if self.cache is not None and len(frame):
            value = frame.to_parquet(compression="zstd")
            await asyncio.to_thread(self.cache.put_bytes, key, value)
        return frame

    async def aggregates(
        self, ticker: str, start: date, end: date, *, adjusted: bool = False
    ) -> pd.DataFrame:
        """Daily bars of one ticker from ``start`` to ``end`` (all pages)."""
        ticker = ticker.strip().upper()
        path: str | None = f"/v2/aggs/ticker/{ticker}/range/1/day/{start:%Y-%m-%d}/{end:%Y-%m-%d}"
        params: dict[str, str] | None = {
            "adjusted": str(adjusted).lower(),
            "sort": "asc",
            "limit": "50000",
        }
        parts = []
        for page in range(MAX_PAGES):
            assert path is not None
            frame, next_url = await self._request(
                path,
                params,
                f"{ticker} aggregates page {page + 1}",
                lambda body: parse_aggregates(body, ticker, adjusted=adjusted),
                kind="aggregates",
            )
            parts.append(frame)
            if not next_url:
                break
            path, params = self._follow(next_url)
        bars = pd.concat(parts)
        return bars[~bars[DATE].duplicated(keep="last").to_numpy()]

    async def tickers(self, *, active: bool = True, market: str = "stocks") -> pd.DataFrame:
        """The reference list: ticker, name, type, exchange, active (all pages)."""
        params = {"market": market, "active": str(active).lower(), "limit": str(PAGE_LIMIT)}
        params |= {"order": "asc", "sort": "ticker"}
        rows = await self._cached_json(
            "tickers",
            params,
            lambda: self._collect("/v3/reference/tickers", params, ("ticker",), "ticker list"),
        )
        frame = pd.DataFrame(
            {
                TICKER: [r["ticker"] for r in rows],
                "name": [r.get("name") for r in rows],
                "type": [r.get("type") for r in rows],
                "exchange": [r.get("primary_exchange") for r in rows],
                "active": [bool(r.get("active", active)) for r in rows],
            }
        )
        frame[TICKER] = frame[TICKER].astype(TICKER_DTYPE).str.strip().str.upper()
        return frame.drop_duplicates(TICKER, keep="last").reset_index(drop=True)

    async def market_snapshot(self) -> MarketSnapshot:
        """Every US stock's forming bar now (one request; see :func:`parse_snapshot`)."""
        return await self._request(
            SNAPSHOT_PATH, None, "market snapshot", parse_snapshot, kind="snapshot"
        )

    async def ticker_details(self, ticker: str) -> dict[str, Any] | None:
        """Name, market cap and SIC sector/industry of one ticker, or None if Polygon has none."""
        ticker = ticker.strip().upper()

        async def fetch() -> dict[str, Any] | None:
            found = await self._request(
                f"/v3/reference/tickers/{ticker}",
                None,
                f"{ticker} details",
                lambda body: parse_details(body, ticker),
                kind="details",
                missing_ok=True,
            )
            if found is None:
                return None
            cap = found.get("market_cap")
            return {
                TICKER: ticker,
                "name": found.get("name"),
                "market_cap": float(cap) if isinstance(cap, int | float) else None,
                "sector": sic_sector(found.get("sic_code")),
                "industry": found.get("sic_description"),
                "type": found.get("type"),
                "exchange": found.get("primary_exchange"),
            }

        return await self._cached_json("details", {TICKER: ticker}, fetch)

    async def splits(self, start: date, end: date) -> pd.DataFrame:
        """Splits executed from ``start`` to ``end``: ticker, execution_date, split_from/to."""
        params = {
            "execution_date.gte": f"{start:%Y-%m-%d}",
            "execution_date.lte": f"{end:%Y-%m-%d}",
            "limit": str(PAGE_LIMIT),
            "order": "asc",
            "sort": "execution_date",
        }
        required = ("ticker", "execution_date", "split_from", "split_to")
        rows = await self._cached_json(
            "splits",
            params,
            lambda: self._collect("/v3/reference/splits", params, required, "splits"),
        )
        return pd.DataFrame(
            {k: [r[k] for r in rows] for k in required},
            columns=list(required),
        )

    # -- plumbing ---------------------------------------------------------------------------

    async def _collect(
        self, path: str, params: dict[str, str], required: tuple[str, ...], what: str
    ) -> list[dict]:
        """Every result of a paginated reference endpoint, following ``next_url``."""
        rows: list[dict] = []
        where: tuple[str, dict[str, str] | None] = (path, params)
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            results, next_url = await self._request(
                where[0],
                where[1],
                f"{what} page {page + 1}",
                lambda body: parse_page(body, required, what),
                kind=what.split()[0],
            )
            rows.extend(results)
            if not next_url:
                return rows
            if next_url in seen:
                raise ProviderError(f"Polygon {what}: the pages loop back on themselves")
            seen.add(next_url)
            where = self._follow(next_url)
        raise ProviderError(f"Polygon {what}: more than {MAX_PAGES} pages")

    def _follow(self, next_url: str) -> tuple[str, None]:
        """A ``next_url``'s path and query, asked of our own base URL (so a proxy or test
        server stays in use and the key header never goes to another host)."""
        parts = urlsplit(next_url)
        return parts.path + (f"?{parts.query}" if parts.query else ""), None

    async def _cached_json(self, kind: str, params: dict[str, str], fetch: Callable) -> Any:
        digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).hexdigest()
        key = f"{self._cache_prefix}:{kind}:{digest[:16]}"
        if self.cache is not None:
            raw = await asyncio.to_thread(self.cache.get_bytes, key)
            if raw is not None:
                try:
                    value = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    value = None
                else:
                    self.stats.cache_hits += 1
                    return value
        value = await fetch()
        if self.cache is not None:
            await asyncio.to_thread(self.cache.put_bytes, key, orjson.dumps(value))
        return value

    async def _request(
        self,
        path: str,
        params: dict[str, str] | None,
        what: str,
        parse: Callable[[bytes], T],
        *,
        kind: str,
        missing_ok: bool = False,
    ) -> T:
        """GET ``path`` and parse the body, with the rate limit, retries and key hygiene."""
        if self._http is None or self._slots is None:
            raise RuntimeError("use the client inside 'async with'")
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=lambda state: self._note_retry(state, what),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._try(path, params, what, parse, kind, missing_ok)
        except _Retryable as exc:
            raise ProviderError(
                redact(f"Polygon {what} failed after {self.attempts} tries: {exc}", self._key)
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _try(
        self,
        path: str,
        params: dict[str, str] | None,
        what: str,
        parse: Callable[[bytes], T],
        kind: str,
        missing_ok: bool,
    ) -> Any:
        assert self._http is not None and self._slots is not None
        async with self._slots:
            if self._limiter is not None:
                await self._limiter.acquire()
            self.stats.requests += 1
            self.stats.by_kind[kind] += 1
            try:
                response = await self._http.get(path, params=params)
            except httpx.TimeoutException:
                raise _Retryable(f"no answer within {self.timeout:g}s") from None
            except httpx.HTTPError as exc:  # refused, reset, truncated body...
                raise _Retryable(f"{type(exc).__name__}: {redact(str(exc), self._key)}") from None
        code = response.status_code
        if code in (401, 403):
            raise ProviderAuthError(
                redact(
                    f"Polygon refused the API key (HTTP {code}: {_error_text(response)}) on "
                    f"{what}; check POLYGON_API_KEY and the plan's entitlements",
                    self._key,
                )
            )
        if code == 429 or code >= 500:
            raise _Retryable(
                f"HTTP {code} {_error_text(response)}".strip(),
                retry_after(response.headers.get("Retry-After")),
            )
        if code == 404 and missing_ok:
            return None
        if code != 200:
            raise ProviderError(
                redact(f"Polygon {what}: HTTP {code} {_error_text(response)}", self._key)
            )
        try:
            return parse(response.content)
        except MalformedResponse as exc:
            raise _Retryable(f"malformed response: {redact(str(exc), self._key)}") from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after + random.uniform(0, min(self.backoff, 1.0))
        return self._backoff_wait(state)

    def _note_retry(self, state: RetryCallState, what: str) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.debug(
            "[POLYGON] %s: %s; try %d of %d in %.2fs",
            what,
            exc,
            state.attempt_number + 1,
            self.attempts,
            wait,
        )


def _error_text(response: httpx.Response) -> str:
    """Polygon's own error words from a failed response, short, or the reason phrase."""
    try:
        doc = orjson.loads(response.content)
        text = doc.get("error") or doc.get("message") or doc.get("status") or ""
    except (orjson.JSONDecodeError, AttributeError):
        text = ""
    return str(text)[:200] or response.reason_phrase

"""A local HTTP server that speaks Polygon's REST JSON, for tests and ``bench.sync``.

Responses follow Polygon's documented formats (grouped daily and per-ticker aggregates with
``results[]`` of T/o/h/l/c/v/vw/t/n, ``status``, ``resultsCount``, ``adjusted``; reference
tickers, ticker details and splits with ``next_url`` cursors). The market behind them is a
:class:`Market`: tickers with listing spans on real NYSE sessions, split-adjusted prices, and
splits whose unadjusted effect the server applies, as Polygon does with ``adjusted=false``.

Faults are scripted per request path (:meth:`FakePolygon.fault`): an HTTP status with headers
(429 storms with Retry-After, 500s), a stall (client timeouts), a truncated body, a body cut
mid-transfer, a missing field, a partial ``resultsCount``, an empty day. Every request is
logged (:attr:`FakePolygon.log`), so tests count provider calls.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
import pandas as pd

from pipeline.trading_calendar import sessions as nyse_sessions

NEW_YORK = "America/New_York"
KEY = "test-key-0123456789abcdef"
SNAPSHOT_PATH = "/v2/snapshot/locale/us/markets/stocks/tickers"


def snapshot_body(
    day: pd.DataFrame,
    updated: pd.Timestamp,
    previous: pd.DataFrame | None = None,
    not_traded: tuple[str, ...] = (),
) -> bytes:
    """Polygon's full-market snapshot for the forming bars ``day`` (ticker index; open, high,
    low, close, volume so far) as of ``updated`` (tz-aware): per ticker ``day``, ``prevDay``,
    ``min``, ``lastTrade``, ``lastQuote``, ``todaysChange(Perc)`` and ``updated`` (ns).
    Tickers in ``not_traded`` have not traded today: zeros in ``day``, yesterday's update."""
    stamp = int(updated.value)
    items = []
    for ticker, bar in day.iterrows():
        quiet = ticker in not_traded
        prev = previous.loc[ticker] if previous is not None and ticker in previous.index else bar
        ohlcv = {k[0]: float(bar[k]) for k in ("open", "high", "low", "close", "volume")}
        today = {"o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "vw": 0} if quiet else ohlcv
        items.append({
            "ticker": str(ticker),
            "todaysChange": 0.0 if quiet else float(bar["close"] - prev["close"]),
            "todaysChangePerc": 0.0 if quiet else float(bar["close"] / prev["close"] - 1) * 100,
            "updated": stamp - (86_400 * 10**9 if quiet else 0),
            "day": {**today, "vw": today["c"]},
            "min": {"av": today["v"], "t": stamp // 10**6, "n": 1, **today},
            "prevDay": {k[0]: float(prev[k]) for k in ("open", "high", "low", "close", "volume")},
            "lastTrade": {"p": float(bar["close"]), "s": 100, "t": stamp, "x": 4},
            "lastQuote": {"P": float(bar["close"]) + 0.01, "S": 1, "p": float(bar["close"]),
                          "s": 1, "t": stamp},
        })  # fmt: skip
    return orjson.dumps({"status": "OK", "request_id": "fake", "count": len(items),
                         "tickers": items})  # fmt: skip


@dataclass(frozen=True)
class Split:
    ticker: str
    execution_date: date
    split_from: float
    split_to: float


@dataclass
class Market:
    """Tickers × sessions of split-adjusted bars; ``raw`` bars undo the later splits."""

    sessions: list[date]
    tickers: list[str]
    adjusted: dict[str, np.ndarray]  # column -> tickers × sessions
    listed: np.ndarray  # bool, tickers × sessions
    types: dict[str, str]
    splits: list[Split] = field(default_factory=list)
    unpublished: set[Split] = field(default_factory=set)  # splits the API does not list yet
    active: set[str] = field(default_factory=set)

    @classmethod
    def generate(
        cls,
        n_tickers: int,
        start: date,
        end: date,
        *,
        seed: int = 1,
        splits: tuple[Split, ...] = (),
        types: dict[str, str] | None = None,
        delisted: tuple[str, ...] = (),
        late: dict[str, date] | None = None,
    ) -> Market:
        """``n_tickers`` tickers (T000, T001, … plus any named in ``types``/``splits``) with
        bars on every NYSE session from ``start`` to ``end``; ``delisted`` tickers stop
        halfway and drop out of the active list, ``late`` tickers start on a given day."""
        days = nyse_sessions(start, end)
        names = set(ticker_names(n_tickers))
        names |= set(types or {}) | {s.ticker for s in splits} | set(delisted) | set(late or {})
        tickers = sorted(names)
        rng = np.random.default_rng(seed)
        n, m = len(tickers), len(days)
        close = 20.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=1))
        open_ = close * np.exp(rng.normal(0, 0.005, (n, m)))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, (n, m)))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, (n, m)))
        volume = np.round(rng.lognormal(12, 1, (n, m)))
        listed = np.ones((n, m), dtype=bool)
        for t in delisted:
            listed[tickers.index(t), m // 2 :] = False
        for t, first in (late or {}).items():
            listed[tickers.index(t), : np.searchsorted(np.array(days), first)] = False
        all_types = {t: "CS" for t in tickers} | (types or {})
        return cls(
            days,
            tickers,
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
            listed,
            all_types,
            list(splits),
            active=set(tickers) - set(delisted),
        )

    def factor(self, day: date) -> np.ndarray:
        """Per ticker: raw price = adjusted price × factor on ``day`` (splits after it)."""
        out = np.ones(len(self.tickers))
        for s in self.splits:
            if s.execution_date > day:
                out[self.tickers.index(s.ticker)] *= s.split_to / s.split_from
        return out

    def rows(self, day: date, *, grouped: bool = True) -> list[dict[str, Any]]:
        """The raw (unadjusted) results of a grouped-daily request for ``day``."""
        if day not in self.sessions:
            return []
        j = self.sessions.index(day)
        f = self.factor(day)
        stamp = _stamp(day, 16 if grouped else 0)
        out = []
        for i in np.flatnonzero(self.listed[:, j]):
            price = {
                k: float(self.adjusted[k][i, j] * f[i]) for k in ("open", "high", "low", "close")
            }
            row = {
                "T": self.tickers[i],
                "v": float(self.adjusted["volume"][i, j] / f[i]),
                "vw": round((price["high"] + price["low"] + price["close"]) / 3, 4),
                "o": price["open"],
                "c": price["close"],
                "h": price["high"],
                "l": price["low"],
                "t": stamp,
                "n": int(100 + i),
            }
            out.append(row)
        return out

    def expected(self, horizon: date, days: list[date] | None = None) -> pd.DataFrame:
        """What a store synced through ``horizon`` must hold: raw bars adjusted for every
        split executed on or before ``horizon`` (long frame, sorted)."""
        parts = []
        applied = [s for s in self.splits if s.execution_date <= horizon]
        for j, day in enumerate(self.sessions):
            if days is not None and day not in days:
                continue
            f = self.factor(day)
            for s in applied:
                if s.execution_date > day:
                    f[self.tickers.index(s.ticker)] /= s.split_to / s.split_from
            idx = np.flatnonzero(self.listed[:, j])
            frame = pd.DataFrame(
                {
                    "ticker": np.array(self.tickers)[idx],
                    "date": pd.Timestamp(day).as_unit("ns"),
                    **{
                        k: self.adjusted[k][idx, j] * f[idx]
                        for k in ("open", "high", "low", "close")
                    },
                    "volume": self.adjusted["volume"][idx, j] / f[idx],
                }
            )
            parts.append(frame)
        out = pd.concat(parts, ignore_index=True)
        return out.sort_values(["ticker", "date"], ignore_index=True)


def ticker_names(n: int) -> list[str]:
    """The generated tickers of a market of ``n``: T000, T001, … (T00000… past 1,000)."""
    return [f"T{i:03d}" if n <= 1000 else f"T{i:05d}" for i in range(n)]


def _stamp(day: date, hour: int) -> int:
    return int(pd.Timestamp(day).tz_localize(NEW_YORK).replace(hour=hour).value // 1_000_000)


@dataclass
class Fault:
    pattern: re.Pattern[str]
    action: str
    arg: Any = None
    times: int | None = 1  # None: every matching request


class FakePolygon:
    """The server: ``with FakePolygon(market) as server: server.url``."""

    def __init__(self, market: Market, *, key: str = KEY, page_size: int = 1000):
        self.market = market
        self.key = key
        self.page_size = page_size
        self.delay = 0.0  # seconds before every answer
        self.empty_days: set[date] = set()  # sessions answered with no results
        self.log: list[tuple[str, dict[str, list[str]], str]] = []  # path, query, auth header
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bodies: dict[str, bytes] = {}  # pre-rendered answers by path (benchmarks)
        self.snapshot: bytes | None = None  # the full-market snapshot's body, set per minute

    # -- control ----------------------------------------------------------------------------

    def __enter__(self) -> FakePolygon:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fault(self, pattern: str, action: str, arg: Any = None, times: int | None = 1) -> None:
        """Answer the next ``times`` requests whose path matches ``pattern`` with ``action``:
        ``status`` (arg: code or (code, headers)), ``stall`` (arg: seconds, then the normal
        answer), ``truncate`` (half the JSON), ``cut`` (close mid-body), ``drop`` (arg: a
        field removed from the first result), ``partial`` (resultsCount one too high),
        ``wrong_day`` (the first bar dated a day later)."""
        with self._lock:
            self.faults.append(Fault(re.compile(pattern), action, arg, times))

    def prerender(self) -> None:
        """Render every grouped-daily answer now, so serving one costs no Python work."""
        for day in self.market.sessions:
            path = f"/v2/aggs/grouped/locale/us/market/stocks/{day}"
            self._bodies[path] = orjson.dumps(self.answer(path, {"adjusted": ["false"]})[1])

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()
            self.empty_days.clear()
            self.delay = 0.0

    def count(self, pattern: str = "") -> int:
        """Requests so far whose path matches ``pattern``."""
        with self._lock:
            return sum(1 for path, _, _ in self.log if re.search(pattern, path))

    def kinds(self) -> Counter[str]:
        with self._lock:
            return Counter(
                path.split("/")[2] if path.count("/") > 2 else path for path, _, _ in self.log
            )

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.pattern.search(path) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # -- answers ----------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any] | None]:
        """(status, document) for a request, before faults."""
        m = self.market
        if g := re.fullmatch(r"/v2/aggs/grouped/locale/us/market/stocks/(\d{4}-\d{2}-\d{2})", path):
            day = date.fromisoformat(g.group(1))
            adjusted = query.get("adjusted", ["true"])[0] == "true"
            if adjusted:
                return 400, {"status": "ERROR", "error": "this fake serves adjusted=false only"}
            rows = [] if day in self.empty_days else m.rows(day)
            doc = {"queryCount": len(rows), "resultsCount": len(rows), "adjusted": False}
            if rows:
                doc["results"] = rows
            return 200, {**doc, "status": "OK", "request_id": "fake"}
        if g := re.fullmatch(r"/v2/aggs/ticker/([^/]+)/range/1/day/([\d-]+)/([\d-]+)", path):
            ticker, lo, hi = (
                g.group(1),
                date.fromisoformat(g.group(2)),
                date.fromisoformat(g.group(3)),
            )
            rows = []
            for day in m.sessions:
                if lo <= day <= hi:
                    rows += [
                        {k: v for k, v in r.items() if k != "T"}
                        for r in m.rows(day, grouped=False)
                        if r["T"] == ticker
                    ]
            page, next_url = self._page(rows, path, query)
            doc = {"ticker": ticker, "queryCount": len(page), "resultsCount": len(page)}
            doc |= {"adjusted": False, "results": page, "status": "OK", "request_id": "fake"}
            if next_url:
                doc["next_url"] = next_url
            return 200, doc
        if path == "/v3/reference/tickers":
            rows = [
                {
                    "ticker": t,
                    "name": f"{t} Corp",
                    "market": "stocks",
                    "locale": "us",
                    "primary_exchange": "XNYS",
                    "type": m.types[t],
                    "active": True,
                    "currency_name": "usd",
                    "last_updated_utc": "2024-12-31T00:00:00Z",
                }
                for t in m.tickers
                if t in m.active
            ]
            return self._listing(rows, path, query)
        if g := re.fullmatch(r"/v3/reference/tickers/([^/]+)", path):
            t = g.group(1)
            if t not in m.tickers:
                return 404, {
                    "status": "NOT_FOUND",
                    "request_id": "fake",
                    "message": "Ticker not found.",
                }
            i = m.tickers.index(t)
            details = {
                "ticker": t,
                "name": f"{t} Corp",
                "market": "stocks",
                "type": m.types[t],
                "active": t in m.active,
                "market_cap": 1e9 * (1 + i),
                "sic_code": "3571" if i % 2 == 0 else "6022",
                "sic_description": "ELECTRONIC COMPUTERS"
                if i % 2 == 0
                else "STATE COMMERCIAL BANKS",
                "primary_exchange": "XNAS",
            }
            return 200, {"request_id": "fake", "results": details, "status": "OK"}
        if path == SNAPSHOT_PATH:
            if self.snapshot is None:
                return 200, {"status": "OK", "request_id": "fake", "count": 0, "tickers": []}
            return 200, orjson.loads(self.snapshot)
        if path == "/v3/reference/splits":
            lo = date.fromisoformat(query.get("execution_date.gte", ["1900-01-01"])[0])
            hi = date.fromisoformat(query.get("execution_date.lte", ["2100-01-01"])[0])
            rows = [
                {
                    "execution_date": f"{s.execution_date}",
                    "id": f"E{abs(hash((s.ticker, s.execution_date))) % 10**8}",
                    "split_from": s.split_from,
                    "split_to": s.split_to,
                    "ticker": s.ticker,
                }
                for s in sorted(m.splits, key=lambda s: (s.execution_date, s.ticker))
                if lo <= s.execution_date <= hi and s not in m.unpublished
            ]
            return self._listing(rows, path, query)
        return 404, {"status": "NOT_FOUND", "request_id": "fake", "message": "no such route"}

    def _page(self, rows: list, path: str, query: dict[str, list[str]]) -> tuple[list, str | None]:
        limit = min(int(query.get("limit", ["1000"])[0]), self.page_size)
        start = int(query.get("cursor", ["0"])[0])
        page = rows[start : start + limit]
        if start + limit >= len(rows):
            return page, None
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "cursor")
        # Polygon's next_url is absolute, on its own host, and carries no key
        return page, f"https://api.polygon.io{path}?cursor={start + limit}&{rest}"

    def _listing(self, rows: list, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        page, next_url = self._page(rows, path, query)
        doc: dict[str, Any] = {
            "results": page,
            "status": "OK",
            "request_id": "fake",
            "count": len(page),
        }
        if next_url:
            doc["next_url"] = next_url
        return 200, doc


class _Handler(BaseHTTPRequestHandler):
    fake: FakePolygon
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        auth = self.headers.get("Authorization", "")
        with fake._lock:
            fake.log.append((parts.path, query, auth))
        if fake.delay:
            time.sleep(fake.delay)
        if auth != f"Bearer {fake.key}" and query.get("apiKey", [""])[0] != fake.key:
            self._send(401, {"status": "ERROR", "request_id": "fake", "error": "Unknown API Key"})
            return
        fault = fake._take_fault(parts.path)
        if fault is None and parts.path == SNAPSHOT_PATH and fake.snapshot is not None:
            self._send(200, fake.snapshot)  # as rendered: a benchmark pays no Python work
            return
        if (
            fault is None
            and parts.path in fake._bodies
            and parts.path.split("/")[-1] not in {f"{d}" for d in fake.empty_days}
        ):
            self._send(200, fake._bodies[parts.path])
            return
        if fault is not None and fault.action == "status":
            code, headers = fault.arg if isinstance(fault.arg, tuple) else (fault.arg, {})
            words = (
                "You've exceeded the maximum requests per minute"
                if code == 429
                else "Internal error"
            )
            self._send(code, {"status": "ERROR", "request_id": "fake", "error": words}, headers)
            return
        if fault is not None and fault.action == "stall":
            time.sleep(fault.arg)
        code, doc = fake.answer(parts.path, query)
        if fault is not None and fault.action == "partial" and doc and doc.get("tickers"):
            doc["tickers"] = doc["tickers"][:-1]  # one ticker lost on the way
        if fault is not None and doc is not None and doc.get("results"):
            first = doc["results"][0]
            if fault.action == "drop":
                doc["results"][0] = {k: v for k, v in first.items() if k != fault.arg}
            elif fault.action == "partial":  # one result lost on the way
                doc["results"] = doc["results"][:-1]
            elif fault.action == "wrong_day":
                doc["results"][0] = {**first, "t": first["t"] + 86_400_000}
        body = orjson.dumps(doc)
        if fault is not None and fault.action == "truncate":
            body = body[: len(body) // 2]
        if fault is not None and fault.action == "cut":
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(code, body)

    def _send(self, code: int, doc: dict | bytes, headers: dict[str, str] | None = None) -> None:
        body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

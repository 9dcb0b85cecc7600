"""The Polygon client against a real local HTTP server speaking Polygon's JSON.

The server is tests/fake_polygon.py: a ThreadingHTTPServer on loopback with scripted faults.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import date

import numpy as np
import orjson
import pandas as pd
import pytest

from pipeline.cache import BarCache
from pipeline.config import Settings
from pipeline.errors import ConfigError, ProviderAuthError, ProviderError
from pipeline.schema import BAR_COLUMNS, BAR_DTYPES, TICKER_DTYPE
from pipeline.sources.polygon import PolygonClient, redact, retry_after, sic_sector
from tests.fake_polygon import KEY, FakePolygon, Market, Split

DAY = date(2024, 11, 26)
SPLITS = (
    Split("REV", date(2024, 11, 20), 10, 1),
    Split("SPLT", date(2024, 12, 2), 1, 4),
    Split("TRI", date(2024, 12, 10), 2, 3),
)
MARKET = Market.generate(9, date(2024, 11, 18), date(2024, 12, 13), splits=SPLITS)


@pytest.fixture(scope="module")
def server():
    with FakePolygon(MARKET, page_size=4) as fake:
        yield fake


@pytest.fixture
def fake(server: FakePolygon) -> FakePolygon:
    server.reset()
    return server


def client(fake: FakePolygon, **kwargs) -> PolygonClient:
    options = dict(rpm=0, attempts=4, backoff=0.01, backoff_max=0.05, timeout=2.0)
    return PolygonClient(kwargs.pop("key", KEY), base_url=fake.url, **(options | kwargs))


def call(c: PolygonClient, method: str, *args, **kwargs):
    async def go():
        async with c:
            return await getattr(c, method)(*args, **kwargs)

    return asyncio.run(go())


def raw_frame(day: date) -> pd.DataFrame:
    rows = pd.DataFrame(MARKET.rows(day))
    return rows.rename(columns={"T": "ticker", "o": "open", "h": "high", "l": "low", "c": "close"})


# --- grouped daily ------------------------------------------------------------------------------


def test_grouped_daily_returns_every_bar_of_the_day_unadjusted(fake: FakePolygon) -> None:
    bars = call(client(fake), "grouped_daily", DAY)
    expected = raw_frame(DAY).set_index("ticker").sort_index()
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert bars.index.dtype == TICKER_DTYPE and bars.index.name == "ticker"
    assert {c: bars[c].dtype for c in BAR_COLUMNS} == BAR_DTYPES
    assert list(bars.index) == list(expected.index) == sorted(MARKET.tickers)
    assert (bars["date"] == pd.Timestamp(DAY)).all()
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[col].to_numpy(), expected[col].to_numpy())
    np.testing.assert_array_equal(bars["volume"].to_numpy(), expected["v"].to_numpy())
    # SPLT is quoted before its 4-for-1 split: unadjusted, four times the adjusted price
    j = MARKET.sessions.index(DAY)
    i = MARKET.tickers.index("SPLT")
    assert bars.loc["SPLT", "close"] == pytest.approx(4 * MARKET.adjusted["close"][i, j])


def test_the_key_travels_in_a_header_never_in_the_url(fake: FakePolygon) -> None:
    call(client(fake), "grouped_daily", DAY)
    [(path, query, auth)] = fake.log
    assert auth == f"Bearer {KEY}"
    assert "apiKey" not in query and KEY not in path
    assert query["adjusted"] == ["false"]


def test_a_holiday_is_an_empty_day(fake: FakePolygon) -> None:
    bars = call(client(fake), "grouped_daily", date(2024, 11, 28))  # Thanksgiving
    assert bars.empty and list(bars.columns) == list(BAR_COLUMNS)
    assert fake.count("grouped") == 1


# --- pagination ---------------------------------------------------------------------------------


def test_ticker_reference_follows_next_url_through_every_page(fake: FakePolygon) -> None:
    tickers = call(client(fake), "tickers")
    assert list(tickers["ticker"]) == sorted(MARKET.tickers)
    assert list(tickers.columns) == ["ticker", "name", "type", "exchange", "active"]
    assert tickers["active"].all() and (tickers["type"] == "CS").all()
    pages = -(-len(MARKET.tickers) // 4)
    assert pages >= 3 and fake.count("/v3/reference/tickers") == pages
    # next_url names api.polygon.io; the client asked our server with the cursor instead
    assert [q.get("cursor", ["0"])[0] for p, q, _ in fake.log] == [str(4 * k) for k in range(pages)]


def test_splits_follow_pagination_and_filter_by_date(fake: FakePolygon) -> None:
    fake.page_size = 2
    try:
        splits = call(client(fake), "splits", date(2024, 1, 1), date(2024, 12, 31))
        assert fake.count("splits") == 2
        first_two = call(client(fake), "splits", date(2024, 1, 1), date(2024, 12, 5))
    finally:
        fake.page_size = 4
    assert list(splits.columns) == ["ticker", "execution_date", "split_from", "split_to"]
    assert list(splits["ticker"]) == ["REV", "SPLT", "TRI"]
    assert list(splits["split_from"]) == [10, 1, 2] and list(splits["split_to"]) == [1, 4, 3]
    assert list(first_two["ticker"]) == ["REV", "SPLT"]


def test_aggregates_range_pages_through_one_tickers_history(fake: FakePolygon) -> None:
    bars = call(client(fake), "aggregates", "splt", date(2024, 11, 25), date(2024, 12, 6))
    days = [d for d in MARKET.sessions if date(2024, 11, 25) <= d <= date(2024, 12, 6)]
    assert list(bars.index.unique()) == ["SPLT"]
    assert list(bars["date"].dt.date) == days
    assert fake.count("/range/") == -(-len(days) // 4)
    expected = [r["c"] for d in days for r in MARKET.rows(d) if r["T"] == "SPLT"]
    np.testing.assert_array_equal(bars["close"].to_numpy(), expected)


def test_ticker_details_give_market_cap_and_a_sic_sector(fake: FakePolygon) -> None:
    found = call(client(fake), "ticker_details", "T000")
    assert found["market_cap"] == pytest.approx(1e9 * (1 + MARKET.tickers.index("T000")))
    assert found["industry"] in {"ELECTRONIC COMPUTERS", "STATE COMMERCIAL BANKS"}
    assert found["sector"] in {"Manufacturing", "Finance, Insurance and Real Estate"}
    assert call(client(fake), "ticker_details", "NOPE") is None


# --- retries ------------------------------------------------------------------------------------


def test_a_429_storm_is_waited_out_honouring_retry_after(fake: FakePolygon) -> None:
    fake.fault("grouped", "status", (429, {"Retry-After": "1"}))
    fake.fault("grouped", "status", (429, {"Retry-After": "0"}), times=2)
    c = client(fake, attempts=5)
    tic = time.perf_counter()
    bars = call(c, "grouped_daily", DAY)
    elapsed = time.perf_counter() - tic
    assert len(bars) == len(MARKET.tickers)
    assert fake.count("grouped") == 4 and c.stats.retries == 3
    assert elapsed >= 1.0  # the server asked for a second; backoff alone is 0.01–0.05 s


def test_server_errors_are_retried_then_reported_in_one_line(fake: FakePolygon) -> None:
    fake.fault("grouped", "status", 500, times=2)
    assert len(call(client(fake), "grouped_daily", DAY)) == len(MARKET.tickers)
    assert fake.count("grouped") == 3
    fake.reset()
    fake.fault("grouped", "status", 503, times=None)
    with pytest.raises(ProviderError) as info:
        call(client(fake, attempts=3), "grouped_daily", DAY)
    assert fake.count("grouped") == 3
    message = str(info.value)
    assert f"grouped daily {DAY}" in message and "3 tries" in message and "HTTP 503" in message
    assert "\n" not in message


def test_a_timeout_is_retried(fake: FakePolygon) -> None:
    fake.fault("grouped", "stall", 1.0)
    c = client(fake, timeout=0.3)
    assert len(call(c, "grouped_daily", DAY)) == len(MARKET.tickers)
    assert fake.count("grouped") == 2 and c.stats.retries == 1


def test_a_client_error_is_not_retried(fake: FakePolygon) -> None:
    with pytest.raises(ProviderError, match="HTTP 400"):
        call(client(fake), "grouped_daily", DAY, adjusted=True)  # the fake refuses adjusted
    assert fake.count("grouped") == 1


MALFORMED = [
    ("truncate", None, "truncated or invalid JSON"),
    ("cut", None, "RemoteProtocolError"),
    ("drop", "c", "has no 'c'"),
    ("drop", "T", "has no 'T'"),
    ("partial", None, "partial response"),
    ("wrong_day", None, "of another day"),
]


@pytest.mark.parametrize(("action", "arg", "reason"), MALFORMED)
def test_a_malformed_day_is_retried(fake: FakePolygon, action: str, arg, reason: str) -> None:
    fake.fault("grouped", action, arg)
    bars = call(client(fake), "grouped_daily", DAY)
    assert len(bars) == len(MARKET.tickers) and fake.count("grouped") == 2


@pytest.mark.parametrize(("action", "arg", "reason"), MALFORMED)
def test_a_day_that_stays_malformed_is_an_error(
    fake: FakePolygon, action: str, arg, reason: str
) -> None:
    fake.fault("grouped", action, arg, times=None)
    with pytest.raises(ProviderError, match=reason):
        call(client(fake, attempts=2), "grouped_daily", DAY)
    assert fake.count("grouped") == 2


@pytest.mark.parametrize("field", ["vw", "n"])
def test_optional_fields_may_be_missing(fake: FakePolygon, field: str) -> None:
    fake.fault("grouped", "drop", field)
    assert len(call(client(fake), "grouped_daily", DAY)) == len(MARKET.tickers)
    assert fake.count("grouped") == 1


# --- the key ------------------------------------------------------------------------------------


def test_a_refused_key_is_one_clear_error_without_retries(fake: FakePolygon) -> None:
    secret = "wrong-secret-key-987"
    with pytest.raises(ProviderAuthError) as info:
        call(client(fake, key=secret), "grouped_daily", DAY)
    message = str(info.value)
    assert "HTTP 401" in message and "POLYGON_API_KEY" in message and "Unknown API Key" in message
    assert secret not in message
    assert fake.count("grouped") == 1


def test_403_is_an_auth_error_too(fake: FakePolygon) -> None:
    fake.fault("splits", "status", 403)
    with pytest.raises(ProviderAuthError, match="HTTP 403"):
        call(client(fake), "splits", date(2024, 1, 1), date(2024, 12, 31))


def test_the_key_never_reaches_logs_or_errors(
    fake: FakePolygon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    fake.fault("grouped", "status", 500)
    fake.fault("tickers", "truncate")
    c = client(fake)
    call(c, "grouped_daily", DAY)
    call(c, "tickers")
    fake.fault("grouped", "status", 502, times=None)
    with pytest.raises(ProviderError) as info:
        call(client(fake, attempts=2), "grouped_daily", DAY)
    assert c.stats.retries == 2
    assert "[POLYGON]" in caplog.text and "HTTP Request" in caplog.text  # logs were captured
    for text in (caplog.text, str(info.value), repr(c)):
        assert KEY not in text
    settings = Settings(polygon_api_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())


def test_a_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="POLYGON_API_KEY is not set"):
        PolygonClient.from_settings(Settings(polygon_api_key=None))


def test_redact_removes_the_key_and_any_apikey_parameter() -> None:
    text = "GET https://x/v2?apiKey=abc123&date=1 failed for sk-SECRET\nagain"
    assert redact(text, "sk-SECRET") == "GET https://x/v2?apiKey=***&date=1 failed for *** again"


# --- rate limit, cache, small parsers -----------------------------------------------------------


def test_requests_are_spaced_by_the_rate_limit(fake: FakePolygon) -> None:
    c = client(fake, rpm=600)  # one request per 0.1 s

    async def go():
        async with c:
            await asyncio.gather(*(c.grouped_daily(d) for d in MARKET.sessions[:5]))

    tic = time.perf_counter()
    asyncio.run(go())
    assert time.perf_counter() - tic >= 0.38
    assert fake.count("grouped") == 5


def test_the_redis_cache_answers_a_repeated_request(fake: FakePolygon, redis_server) -> None:
    cache = BarCache(redis_server, f"test-{uuid.uuid4().hex[:8]}", ttl=60)

    async def go(c: PolygonClient):
        async with c:
            return await c.grouped_daily(DAY), await c.tickers(), await c.splits(DAY, DAY)

    first = asyncio.run(go(client(fake, cache=cache)))
    sent = len(fake.log)
    again = client(fake, cache=cache)
    second = asyncio.run(go(again))
    assert len(fake.log) == sent and again.stats.requests == 0 and again.stats.cache_hits == 3
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    # an empty day is not cached: its data may still be on its way
    asyncio.run(go(client(fake, cache=cache)))
    call(client(fake, cache=cache), "grouped_daily", date(2024, 11, 28))
    call(client(fake, cache=cache), "grouped_daily", date(2024, 11, 28))
    assert fake.count("2024-11-28") == 2


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0 and retry_after("0.5") == 0.5 and retry_after("-1") == 0.0
    soon = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=30)
    assert 25 <= retry_after(soon.strftime("%a, %d %b %Y %H:%M:%S GMT")) <= 31
    assert retry_after("soon") is None and retry_after(None) is None


@pytest.mark.parametrize(
    ("code", "sector"),
    [
        ("3571", "Manufacturing"),
        ("6022", "Finance, Insurance and Real Estate"),
        ("100", "Agriculture, Forestry and Fishing"),
        ("7372", "Services"),
        ("1311", "Mining"),
        ("", None),
        (None, None),
    ],
)
def test_sic_codes_map_to_divisions(code, sector) -> None:
    assert sic_sector(code) == sector


def _snapshot_doc() -> dict:
    day = pd.Timestamp("2024-11-26 10:32", tz="America/New_York").value
    rows = []
    for i, ticker in enumerate(("AAA", "BBB", "CCC")):
        rows.append({"ticker": ticker, "updated": day, "todaysChange": 0.1,
                     "day": {"o": 10 + i, "h": 11 + i, "l": 9 + i, "c": 10.5 + i, "v": 1000},
                     "prevDay": {"o": 1, "h": 1, "l": 1, "c": 1, "v": 1},
                     "lastQuote": {"P": 1.0, "p": 0.9}})  # fmt: skip
    rows[1]["day"] = {"o": 0, "h": 0, "l": 0, "c": 0, "v": 0}  # no trade yet today
    rows[2]["updated"] = day - 86_400 * 10**9  # last updated yesterday: no bar today
    return {"status": "OK", "count": 3, "tickers": rows}


def test_the_market_snapshot_gives_todays_forming_bars() -> None:
    from pipeline.sources.polygon import parse_snapshot

    market = parse_snapshot(orjson.dumps(_snapshot_doc()))
    assert market.session == date(2024, 11, 26)
    assert market.tickers == 3 and market.no_trade == 2
    assert list(market.bars.index) == ["AAA"]
    bar = market.bars.loc["AAA"]
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]) == (
        10,
        11,
        9,
        10.5,
        1000,
    )
    assert bar["date"] == pd.Timestamp("2024-11-26")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: orjson.dumps({**orjson.loads(b), "count": 4}), "partial"),
        (lambda b: orjson.dumps({"status": "ERROR", "error": "Unknown API Key"}), "ERROR"),
        (lambda b: b.replace(b'"c":10.5', b'"c":"10.5"'), "Expected `float`"),
        (lambda b: orjson.dumps({"status": "OK", "count": 0, "tickers": []}), "no tickers"),
    ],
)
def test_a_bad_market_snapshot_is_malformed(mangle, reason: str) -> None:
    from pipeline.sources.polygon import MalformedResponse, parse_snapshot

    with pytest.raises(MalformedResponse, match=reason):
        parse_snapshot(mangle(orjson.dumps(_snapshot_doc())))

"""Alerts end to end: subscriptions over HTTP (write key, kept in Redis across restarts), a
published snapshot compared with the one before, webhooks delivered signed by the service's
dispatcher to receivers that are down, slow, then up (retried, never twice; dead-lettered after
the last try), and the same changes on the SSE stream, resumable with Last-Event-ID."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson
import pandas as pd
import pytest

from pipeline import redis_conn, snapshots
from pipeline.alerts import store
from pipeline.config import Settings
from pipeline.live.loop import LiveLoop
from pipeline.scan import run_scan
from pipeline.sources.polygon import PolygonClient
from tests.fake_polygon import KEY, snapshot_body
from tests.service.server import running
from tests.webhook_receiver import Receiver, closed

WRITE = {"X-API-Key": "alerts-write-key"}


@pytest.fixture
def settings(held_back, redis_server) -> Settings:
    return held_back.settings(
        redis_server,
        api_key=WRITE["X-API-Key"],
        alert_attempts=3,
        alert_backoff=0.05,
        alert_backoff_max=0.2,
        alert_timeout=2.0,
    )


def _publish_daily_then_live(settings: Settings, held_back, polygon) -> tuple[dict, dict]:
    """The daily snapshot, then a live one: prices moved both ways, every seventh ticker on
    five times its volume."""
    today, day = held_back.today, held_back.day
    daily = run_scan(held_back.store, settings=settings)
    assert snapshots.publish(daily, settings=settings).latest
    swing = pd.Series([0.06 if i % 2 else -0.05 for i in range(len(today))], index=today.index)
    heavy = pd.Series([5.0 if i % 7 == 0 else 1.0 for i in range(len(today))], index=today.index)
    moved = today.assign(
        close=today["close"] * (1 + swing),
        high=today[["high", "close"]].max(axis=1) * (1 + swing.clip(lower=0)),
        low=today[["low", "close"]].min(axis=1) * (1 + swing.clip(upper=0)),
        volume=today["volume"] * heavy,
    )
    polygon.reset()
    polygon.snapshot = snapshot_body(
        moved, day.tz_localize("America/New_York") + pd.Timedelta(hours=11)
    )

    def client() -> PolygonClient:
        return PolygonClient(KEY, base_url=polygon.url, rpm=0)

    update = LiveLoop(settings, client=client).once()
    assert update.published
    return daily.snapshot, update.result.snapshot


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    parts = dict(p.split("=", 1) for p in headers["X-Technic-Signature"].split(","))
    digest = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], digest.hexdigest())
    assert abs(time.time() - int(parts["t"])) < 120


def _wait(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_webhooks_are_signed_retried_dead_lettered_and_never_sent_twice(
    settings, held_back, fake_polygon
) -> None:
    polygon = fake_polygon
    flaky = Receiver(script=["fail", "fail"])  # down twice, then up
    slow = Receiver(script=["slow"], delay=0.5)  # answers, slowly
    specs = {
        "flaky": ({"rule": "signal"}, flaky.url),
        "slow": ({"rule": "top", "top": 5}, slow.url),
        "down": ({"rule": "unusual_volume"}, closed()),
    }
    try:
        with running(settings) as base:
            subs = {}
            for name, (rule, url) in specs.items():
                made = httpx.post(f"{base}/v1/alerts", json={**rule, "url": url},
                                  headers=WRITE, timeout=10)  # fmt: skip
                assert made.status_code == 201
                subs[name] = made.json()
            daily, live = _publish_daily_then_live(settings, held_back, polygon)
            _wait(lambda: flaky.delivered() and slow.delivered())
            dead = lambda: httpx.get(f"{base}/v1/alerts/dead", headers=WRITE).json()  # noqa: E731
            _wait(lambda: dead())
            letters = dead()
    finally:
        flaky.close()
        slow.close()
    assert len(flaky.received) == 3 and len(flaky.delivered()) == 1  # two 503s, then one 200
    assert len(slow.delivered()) == 1
    for name, receiver in (("flaky", flaky), ("slow", slow)):
        got = receiver.delivered()[0]
        _verify(subs[name]["secret"], got.headers, got.body)
        payload = orjson.loads(got.body)
        assert payload["snapshot_id"] == live["snapshot_id"] and payload["live"] is True
        assert payload["previous_snapshot_id"] == daily["snapshot_id"]
        assert payload["events"] and payload["subscription"] == subs[name]["id"]
        ids = {r.headers["X-Technic-Delivery"] for r in receiver.received}
        assert ids == {payload["delivery"]}  # every try carries the same delivery id
    flaky_events = orjson.loads(flaky.delivered()[0].body)["events"]
    assert {e["rule"] for e in flaky_events} == {"signal"}
    top = orjson.loads(slow.delivered()[0].body)["events"]
    assert {e["rule"] for e in top} == {"top"} and {e["top"] for e in top} == {5}
    assert {e["change"] for e in top} <= {"entered", "left"}
    assert len(letters) == 1 and letters[0]["subscription"] == subs["down"]["id"]
    assert letters[0]["tries"] == settings.alert_attempts and "secret" not in letters[0]
    # a restart reads the stream again from its group: nothing is delivered twice
    flaky2 = Receiver()
    with running(settings):
        time.sleep(1.5)
    assert len(flaky.delivered()) == 1 and not flaky2.received
    flaky2.close()


def test_the_stream_resumes_from_last_event_id(settings, held_back, fake_polygon) -> None:
    polygon = fake_polygon
    conn = redis_conn.connect(settings)
    keys = store.Keys(settings.redis_prefix)
    with running(settings) as base:
        _publish_daily_then_live(settings, held_back, polygon)
        entries = conn.xrange(keys.events)
        assert len(entries) == 1
        first = entries[0][0].decode()
        with httpx.stream("GET", f"{base}/v1/alerts/stream", headers={"Last-Event-ID": "0-0"},
                          timeout=10) as answer:  # fmt: skip
            assert answer.status_code == 200
            lines = []
            for line in answer.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    break
        assert f"id: {first}" in lines and "event: alerts" in lines
        data = orjson.loads(lines[-1].removeprefix("data:").strip())
        assert data["events"] and data["live"] is True
        # resuming after it: the next entry only (a second live update of the same minute
        # changes nothing, so publish a third snapshot by hand)
        row = {"ticker": "ZZZ", "rank": 1, "signal": "Long", "signals": []}
        later = store.record(
            conn, keys, {"snapshot_id": "a", "results": []}, {"snapshot_id": "b", "results": [row]}
        )
        with httpx.stream("GET", f"{base}/v1/alerts/stream", headers={"Last-Event-ID": first},
                          timeout=10) as answer:  # fmt: skip
            for line in answer.iter_lines():
                if line.startswith("id:"):
                    assert line == f"id: {later}"
                    break
        bad = httpx.get(f"{base}/v1/alerts/stream", headers={"Last-Event-ID": "nope"})
        assert bad.status_code == 422


def test_subscriptions_need_the_write_key_and_survive_a_restart(settings) -> None:
    body = {"rule": "top", "top": 5, "url": "https://example.test/hook"}
    with running(settings) as base:
        assert httpx.post(f"{base}/v1/alerts", json=body, timeout=10).status_code == 401
        made = httpx.post(f"{base}/v1/alerts", json=body, headers=WRITE, timeout=10)
        assert made.status_code == 201
        sub = made.json()
        assert sub["secret"] and sub["top"] == 5 and made.headers["Location"].endswith(sub["id"])
        bad = httpx.post(f"{base}/v1/alerts", json={**body, "url": "ftp://x"}, headers=WRITE)
        assert bad.status_code == 422 and "http" in bad.json()["detail"]
        bad = httpx.post(f"{base}/v1/alerts", json={"rule": "moon", "url": body["url"]},
                         headers=WRITE)  # fmt: skip
        assert bad.status_code == 422
        bad = httpx.post(f"{base}/v1/alerts", json={**body, "rule": "signal", "to": "Moon"},
                         headers=WRITE)  # fmt: skip
        assert bad.status_code == 422
    with running(settings) as base:  # a new process on the same Redis
        listed = httpx.get(f"{base}/v1/alerts", headers=WRITE, timeout=10).json()
        assert [s["id"] for s in listed] == [sub["id"]]
        assert "secret" not in listed[0]
        gone = httpx.delete(f"{base}/v1/alerts/{sub['id']}", headers=WRITE, timeout=10)
        assert gone.status_code == 204
        again = httpx.delete(f"{base}/v1/alerts/{sub['id']}", headers=WRITE, timeout=10)
        assert again.status_code == 404

"""Alert subscriptions and the alert stream, in Redis.

Keys under the prefix ``P``::

    P:alerts:subs               hash: subscription id → JSON (rule, url, secret, created_at)
    P:alerts:events             stream: one entry per published snapshot with changes
    P:alerts:recorded:<id>      marker: snapshot <id> was compared already (deduplication)
    P:alerts:sent:<sub>:<id>    marker: subscription <sub> got snapshot <id>'s alerts
    P:alerts:dead               list: deliveries that failed every try (newest first)

A publisher (``technic scan --publish``, the live loop) calls :func:`record` after each
snapshot; it never waits on a webhook. The service's dispatcher (:mod:`.deliver`) reads the
stream in a consumer group, so entries published while it was down are delivered when it
starts, and subscriptions live in Redis, so they survive restarts.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.alerts.rules import Rule, changes, needed
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import redis

STREAM_KEPT = 10_000  # stream entries kept (approximately)
DEAD_KEPT = 1_000
MARK_TTL = 7 * 86_400
MAX_SUBSCRIPTIONS = 10_000


class Keys:
    def __init__(self, prefix: str):
        base = f"{prefix}:alerts"
        self.subs = f"{base}:subs"
        self.events = f"{base}:events"
        self.dead = f"{base}:dead"
        self._recorded = f"{base}:recorded:"
        self._sent = f"{base}:sent:"

    def recorded(self, snapshot_id: str) -> str:
        return f"{self._recorded}{snapshot_id}"

    def sent(self, subscription: str, snapshot_id: str) -> str:
        return f"{self._sent}{subscription}:{snapshot_id}"


def _url(url: Any) -> str:
    from urllib.parse import urlsplit

    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("'url' must be an http:// or https:// webhook address")
    if not urlsplit(url).netloc:
        raise ConfigError(f"'url' has no host: {url!r}")
    return url


def subscribe(conn: redis.Redis, keys: Keys, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Store a subscription; returns it with its signing secret (shown this once)."""
    rule = Rule.parse(spec)
    if conn.hlen(keys.subs) >= MAX_SUBSCRIPTIONS:
        raise ConfigError(f"at most {MAX_SUBSCRIPTIONS:,} subscriptions")
    sub = {
        "id": uuid.uuid4().hex[:16],
        **rule.as_dict(),
        "url": _url(spec.get("url")),
        "secret": secrets.token_urlsafe(32),
        "created_at": time.time(),
    }
    conn.hset(keys.subs, sub["id"], orjson.dumps(sub))
    return sub


def subscriptions(conn: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every subscription, with its secret (for signing: never shown by the API again)."""
    return sorted((orjson.loads(v) for v in conn.hvals(keys.subs)), key=lambda s: s["created_at"])


def unsubscribe(conn: redis.Redis, keys: Keys, sub_id: str) -> bool:
    return bool(conn.hdel(keys.subs, sub_id))


def public(sub: Mapping[str, Any]) -> dict[str, Any]:
    """A subscription as the API shows it after creation: without its secret."""
    return {k: v for k, v in sub.items() if k != "secret"}


def record(
    conn: redis.Redis,
    keys: Keys,
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
) -> str | None:
    """Compare ``current`` with ``previous`` and add the changes to the stream, once per
    snapshot; the stream entry's id (None when nothing changed or it was recorded before)."""
    if previous is None or previous.get("snapshot_id") == current.get("snapshot_id"):
        return None
    sid = current["snapshot_id"]
    subscribed = [Rule.parse(s) for s in subscriptions(conn, keys)]
    found = changes(needed(subscribed), previous, current)
    events = [event for rule_events in found.values() for event in rule_events]
    if not events or not conn.set(keys.recorded(sid), 1, nx=True, ex=MARK_TTL):
        return None
    entry = {
        "snapshot_id": sid,
        "previous_snapshot_id": previous["snapshot_id"],
        "as_of": current.get("as_of"),
        "as_of_time": current.get("as_of_time"),
        "live": bool(current.get("live")),
        "events": events,
    }
    added = conn.xadd(
        keys.events, {"data": orjson.dumps(entry)}, maxlen=STREAM_KEPT, approximate=True
    )
    return added.decode() if isinstance(added, bytes) else added


def dead_letters(conn: redis.Redis, keys: Keys, count: int = 100) -> list[dict[str, Any]]:
    return [orjson.loads(v) for v in conn.lrange(keys.dead, 0, count - 1)]

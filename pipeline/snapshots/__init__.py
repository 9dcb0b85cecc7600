"""Scan snapshots: the document the app reads, its files, and its life in Redis.

``build``/``to_json``/``write`` turn a ranked table into the app's document and files
(:mod:`.document`). ``publish`` puts a :class:`Snapshot` (a scan's result is one) into Redis
atomically (:mod:`.redis_store`); when Redis cannot be reached the snapshot waits in the data
directory (:mod:`.pending`) and goes out with the next ``publish`` or ``push``. ``latest``, ``get``,
``history`` and ``diff`` read it back::

    from pipeline import run_scan, snapshots
    result = run_scan("data/demo")
    snapshots.publish(result)
    snapshots.latest()["results"][0]["ticker"]
    snapshots.diff("2026-11-19", "latest")["tiers"]["CORE"]["entered"]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipeline import redis_conn
from pipeline.config import Settings, get_settings
from pipeline.errors import TechnicError, clip
from pipeline.snapshots import pending, redis_store
from pipeline.snapshots.document import Snapshot, build, restyle, status_line, to_json, write

if TYPE_CHECKING:
    import redis


__all__ = [
    "Published",
    "Snapshot",
    "SnapshotNotFound",
    "SnapshotRefused",
    "build",
    "delete",
    "diff",
    "get",
    "history",
    "latest",
    "latest_bytes",
    "pending_paths",
    "publish",
    "push",
    "repoint",
    "restyle",
    "status_line",
    "to_json",
    "write",
]

log = logging.getLogger(__name__)
LIVE_TTL = 900  # seconds a live snapshot outlives its last update (at least)
LIVE_HOLD = 20 * 3600  # after the close: until the nightly scan's daily snapshot, at the latest
_parsed: dict[tuple[str, str], dict[str, Any]] = {}  # (prefix, id) → parsed document


class SnapshotNotFound(TechnicError, LookupError):
    """No snapshot matches the id or date asked for."""


class SnapshotRefused(TechnicError):
    """A snapshot that must not be published: it has no rows, or it is dated past its data."""


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did: the snapshot id, whether it reached Redis, what waits, and
    whether it became the latest (a backfill of an earlier date does not)."""

    snapshot_id: str
    published: bool
    pending: int
    pushed: tuple[str, ...] = ()
    latest: bool = False


def check_publishable(document: dict[str, Any]) -> None:
    """Refuse a snapshot that would blank the app: no rows, or an as-of date after the last
    bar it was computed from (the latest pointer never goes back by itself)."""
    sid, as_of = document.get("snapshot_id"), document.get("as_of", "")
    if not document.get("rows"):
        raise SnapshotRefused(
            f"snapshot {sid} (as of {as_of}) has no rows: not published, the latest stays as it "
            f"is; check the scan's filters and its date"
        )
    through = document.get("data_through")
    if through and as_of > through:
        raise SnapshotRefused(
            f"snapshot {sid} is dated {as_of}, after its last bar ({through}): not published"
        )


def _context(settings: Settings | None, conn: redis.Redis | None):
    """Settings, a Redis client (None when unreachable) and the keys; snapshots queued while
    Redis was away go out first, so any snapshot command pushes them once it is back."""
    settings = settings or get_settings()
    if conn is None:
        conn = redis_conn.connect(settings)
    keys = redis_store.Keys(settings.redis_prefix)
    if conn is not None and pending.entries(settings.snapshot_dir):
        import redis  # imported already: connect() made the client

        try:
            _push(conn, keys, settings)
        except redis.RedisError as exc:
            log.warning("[CACHE] queued snapshots not pushed yet (%s)", type(exc).__name__)
    return settings, conn, keys


def publish(
    result: Snapshot, *, settings: Settings | None = None, conn: redis.Redis | None = None
) -> Published:
    """Publish a scan: first any snapshots that waited for Redis, then this one. If Redis is
    down (or dies meanwhile) the snapshot is queued in the data directory: never lost."""
    check_publishable(result.snapshot)
    settings = settings or get_settings()
    conn = conn or redis_conn.connect(settings)
    keys = redis_store.Keys(settings.redis_prefix)
    sid = result.snapshot["snapshot_id"]
    table = redis_store.arrow_bytes(redis_store.table_of(result.table))
    document = result.to_json()
    if conn is not None:
        import redis

        try:
            pushed = _push(conn, keys, settings)
            before = conn.get(keys.latest)
            became_latest = redis_store.publish(
                conn,
                keys,
                result.snapshot,
                document,
                table,
                redis_store.arrow_bytes(redis_store.members_table(result.table)),
                settings.snapshot_retention_days,
                settings.snapshot_full_keep,
            )
            if became_latest and before is not None:
                _alerts(conn, settings, _document(conn, keys, before.decode()), result.snapshot)
            return Published(sid, True, 0, pushed, became_latest)
        except redis.RedisError as exc:
            log.warning("[CACHE] Redis failed while publishing (%s): snapshot %s queued", exc, sid)
    pending.save(settings.snapshot_dir, sid, document, table)
    waiting = len(pending.entries(settings.snapshot_dir))
    # connect() has already warned that Redis is away; this line only says what waits
    log.info(
        "snapshot %s queued in %s (%d waiting) for the next publish or 'technic snapshots push'",
        sid,
        pending.directory(settings.snapshot_dir),
        waiting,
    )
    return Published(sid, False, waiting)


def publish_live(
    result: Snapshot,
    *,
    previous: dict[str, Any] | None = None,
    settings: Settings | None = None,
    conn: redis.Redis | None = None,
) -> bool:
    """Publish a live snapshot (:func:`redis_store.publish_live`); whether Redis took it. A
    live snapshot is never queued: the next minute's replaces it. Its alerts compare it with
    ``previous`` (the document served before it; read from Redis when not given)."""
    check_publishable(result.snapshot)
    settings = settings or get_settings()
    conn = conn or redis_conn.connect(settings)
    if conn is None:
        return False
    import redis

    keys = redis_store.Keys(settings.redis_prefix)
    ttl = int(max(LIVE_TTL, 10 * settings.live_interval))
    table = redis_store.arrow_bytes(redis_store.table_of(result.table))
    try:
        if previous is None:
            served = redis_store.latest_bytes(conn, keys)
            previous = orjson.loads(served[1]) if served is not None else None
        redis_store.publish_live(conn, keys, result.snapshot, result.to_json(), table, ttl)
        _alerts(conn, settings, previous, result.snapshot)
    except redis.RedisError as exc:
        log.warning("[LIVE] Redis failed (%s): live snapshot %s not published",
                    type(exc).__name__, result.snapshot["snapshot_id"])  # fmt: skip
        return False
    return True


def _document(conn: redis.Redis, keys: redis_store.Keys, sid: str) -> dict[str, Any] | None:
    data = redis_store.get_bytes(conn, keys, sid)
    return orjson.loads(data) if data is not None else None


def _alerts(
    conn: redis.Redis,
    settings: Settings,
    previous: dict[str, Any] | None,
    current: dict[str, Any],
) -> None:
    """Record what changed for the alerts (:mod:`pipeline.alerts`); never fails a publish."""
    import redis

    from pipeline.alerts import store as alerts

    try:
        alerts.record(conn, alerts.Keys(settings.redis_prefix), previous, current)
    except redis.RedisError as exc:
        log.warning("[ALERTS] changes of %s not recorded (%s)", current["snapshot_id"], exc)


def hold_live(*, settings: Settings | None = None, conn: redis.Redis | None = None) -> None:
    """After the close: keep serving the session's last live snapshot until the nightly scan
    publishes the daily one (:data:`LIVE_HOLD` at most); quiet when Redis is away."""
    settings = settings or get_settings()
    conn = conn or redis_conn.connect(settings)
    if conn is None:
        return
    import redis

    try:
        redis_store.hold_live(conn, redis_store.Keys(settings.redis_prefix), LIVE_HOLD)
    except redis.RedisError as exc:
        log.warning("[LIVE] Redis failed (%s): the live snapshot expires as it was", exc)


def latest_id(*, settings: Settings | None = None, conn: redis.Redis | None = None) -> str | None:
    """The latest daily snapshot's id (None without Redis or without snapshots)."""
    settings = settings or get_settings()
    conn = conn or redis_conn.connect(settings)
    if conn is None:
        return None
    import redis

    try:
        value = conn.get(redis_store.Keys(settings.redis_prefix).latest)
    except redis.RedisError:
        return None
    return value.decode() if value else None


def push(*, settings: Settings | None = None, conn: redis.Redis | None = None) -> tuple[str, ...]:
    """Publish every queued snapshot, oldest first; raises if Redis cannot be reached."""
    settings = settings or get_settings()
    conn = conn or redis_conn.connect(settings)
    if conn is None:
        raise TechnicError("Redis is not reachable; queued snapshots stay where they are")
    import redis

    try:
        return _push(conn, redis_store.Keys(settings.redis_prefix), settings)
    except redis.RedisError as exc:
        # a failed transaction names its command and arguments (snapshot bytes) first
        message = str(exc).rpartition("caused error: ")[2].splitlines()[0]
        reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        raise TechnicError(
            f"Redis refused the push ({clip(reason, 120)}); the snapshots not pushed stay "
            f"queued in {pending.directory(settings.snapshot_dir)}"
        ) from None


def _push(conn: redis.Redis, keys: redis_store.Keys, settings: Settings) -> tuple[str, ...]:
    done = []
    for path in pending.entries(settings.snapshot_dir):
        data = path.read_bytes()
        document = orjson.loads(data)
        table_bytes = path.with_suffix(".arrow").read_bytes()
        table = redis_store.read_frame(table_bytes)
        members = redis_store.arrow_bytes(redis_store.members_table(table))
        redis_store.publish(
            conn,
            keys,
            document,
            data,
            table_bytes,
            members,
            settings.snapshot_retention_days,
            settings.snapshot_full_keep,
        )
        pending.remove(path)
        done.append(document["snapshot_id"])
    if done:
        log.info("[CACHE] published %d queued snapshot(s): %s", len(done), ", ".join(done))
    return tuple(done)


def latest_bytes(
    *, settings: Settings | None = None, conn: redis.Redis | None = None
) -> tuple[str, bytes] | None:
    """(id, JSON bytes) of the latest snapshot, exactly as the app receives it."""
    settings, conn, keys = _context(settings, conn)
    return None if conn is None else redis_store.latest_bytes(conn, keys)


def latest(
    *, settings: Settings | None = None, conn: redis.Redis | None = None
) -> dict[str, Any] | None:
    """The latest snapshot's document, or None. Parsed once per snapshot id and shared:
    treat it as read-only."""
    settings, conn, keys = _context(settings, conn)
    if conn is None:
        return None
    current = conn.get(keys.latest)
    if current is None:
        return None
    cached = _parsed.get((keys.prefix, current.decode()))
    if cached is not None:
        return cached
    found = redis_store.latest_bytes(conn, keys)
    if found is None:
        return None
    sid, data = found
    document = orjson.loads(data)
    _parsed.clear()
    _parsed[(keys.prefix, sid)] = document
    return document


def get(
    snapshot_id: str, *, settings: Settings | None = None, conn: redis.Redis | None = None
) -> dict[str, Any] | None:
    """A snapshot's document by id, ``latest`` or as-of date (YYYY-MM-DD); None if absent."""
    settings, conn, keys = _context(settings, conn)
    if conn is None:
        return None
    sid = redis_store.resolve(conn, keys, snapshot_id)
    data = redis_store.get_bytes(conn, keys, sid) if sid else None
    return None if data is None else orjson.loads(data)


def history(
    ticker: str | None = None,
    days: int = 30,
    *,
    settings: Settings | None = None,
    conn: redis.Redis | None = None,
) -> list[dict[str, Any]]:
    """Snapshots of the last ``days`` days, newest first: their metadata, or, for a
    ``ticker``, the scans it appeared in with its rank, tier, signal and signals."""
    settings, conn, keys = _context(settings, conn)
    if conn is None:
        return []
    if ticker is None:
        return redis_store.listing(conn, keys, days)
    return redis_store.ticker_history(conn, keys, ticker.strip().upper(), days)


def diff(
    a: str, b: str = "latest", *, settings: Settings | None = None, conn: redis.Redis | None = None
) -> dict[str, Any]:
    """What changed from snapshot ``a`` to ``b`` (ids, ``latest`` or as-of dates): tickers
    that entered, left or moved, and per tier (CORE, SATELLITE, WATCH) who entered or left."""
    settings, conn, keys = _context(settings, conn)
    if conn is None:
        raise TechnicError("Redis is not reachable; no snapshot history to compare")
    tables = []
    ids = []
    for ref in (a, b):
        sid = redis_store.resolve(conn, keys, ref)
        table = redis_store.members(conn, keys, sid) if sid else None
        if table is None:
            raise SnapshotNotFound(f"no snapshot {ref!r} in Redis (see 'technic snapshots list')")
        tables.append(table)
        ids.append(sid)
    return {"from": ids[0], "to": ids[1], **redis_store.compare(*tables)}


def repoint(ref: str, *, settings: Settings | None = None, conn: redis.Redis | None = None) -> str:
    """Make the snapshot ``ref`` (an id or an as-of date) the latest, whatever its date;
    returns its id. For the operator undoing a bad publish."""
    settings, conn, keys = _context(settings, conn)
    sid = _resolve(conn, keys, ref)
    try:
        redis_store.point_latest(conn, keys, sid)
    except LookupError as exc:
        raise SnapshotNotFound(f"{exc}; pick a newer one (see 'technic snapshots list')") from None
    return sid


def delete(
    ref: str, *, settings: Settings | None = None, conn: redis.Redis | None = None
) -> tuple[str, str | None]:
    """Remove the snapshot ``ref`` (an id or an as-of date); if it was the latest, the newest
    remaining one becomes the latest. Returns (deleted id, latest id afterwards)."""
    settings, conn, keys = _context(settings, conn)
    sid = _resolve(conn, keys, ref)
    return sid, redis_store.delete(conn, keys, sid)


def _resolve(conn: redis.Redis | None, keys: redis_store.Keys, ref: str) -> str:
    if conn is None:
        raise TechnicError("Redis is not reachable; snapshots cannot be changed now")
    sid = redis_store.resolve(conn, keys, ref)
    if sid is None:
        raise SnapshotNotFound(f"no snapshot {clip(ref)!r} in Redis (see 'technic snapshots list')")
    return sid


def pending_paths(settings: Settings | None = None) -> list[Path]:
    """Snapshots queued in the data directory while Redis was away."""
    return pending.entries((settings or get_settings()).snapshot_dir)

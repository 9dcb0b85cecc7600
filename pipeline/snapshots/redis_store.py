"""Snapshots in Redis: atomic publish, the latest pointer, history, membership and diffs.

Keys, under the configurable prefix ``P`` (default ``technic:v1``)::

    P:snap:<id>:json      the app's JSON document, pre-serialised (served as is)
    P:snap:<id>:arrow     the ranked table as Arrow IPC (lz4), for analysts
    P:snap:<id>:meta      JSON: id, as_of, created_at, model, sizes, timings, hygiene
    P:snap:<id>:members   Arrow IPC: ticker, rank, Tier, Signal, merit_band, signals
    P:history             sorted set of ids, scored by publish time (epoch seconds)
    P:by_date             hash: as-of date → newest id published for it
    P:latest              the id of the snapshot with the newest as-of date
    P:latest_as_of        that as-of date
    P:live                the id of the newest live snapshot (during a session; it expires)
    P:live_base           the daily snapshot that live snapshot extends

A live snapshot (:func:`publish_live`) has the daily one's keys, with an expiry, and joins no
history: readers of the latest (:func:`latest_bytes`) get it while ``P:live_base`` is still
``P:latest``, so the next daily snapshot takes over the moment it is published. After the
close the session's last live snapshot is kept (:func:`hold_live`) until then.

A snapshot is written in one MULTI/EXEC transaction that also moves ``P:latest`` and drops
snapshots older than the retention (or beyond the count limit), so a reader sees the old
snapshot or the new one, never a part. The pointer only moves forward in as-of date, so
publishing a backfilled past scan adds it to the history without making it the latest.

Memory is bounded: full documents (JSON ≈ 6 MB and Arrow ≈ 3.5 MB for 6,000 rows) are kept for
the newest ``snapshot_full_keep`` snapshots (default 7, ≈ 70 MB), metadata and membership
(≈ 0.1 MB each) for ``snapshot_retention_days`` (default 30) and at most ``MAX_SNAPSHOTS``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
import pyarrow as pa

from pipeline.vocabulary import TIERS

if TYPE_CHECKING:
    import redis

MAX_SNAPSHOTS = 60  # at most this many snapshots are kept, whatever the retention
MEMBER_COLUMNS = ("rank", "Tier", "Signal", "merit_band", "signals")
META_KEYS = (
    "snapshot_id",
    "as_of",
    "as_of_time",
    "live",
    "data_through",
    "generated_at",
    "universe_size",
    "symbols_scanned",
    "rows",
    "trade_style",
    "model",
    "timings",
    "hygiene",
    "regime",
    "filters",
    "store",
)
# Move the latest pointer only forward in as-of date (a backfill must not become "latest");
# run inside the publish transaction, so it is atomic with the snapshot's keys.
_ADVANCE = """
local current = redis.call('GET', KEYS[2])
if (not current) or ARGV[2] >= current then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
_cache: dict[tuple[str, str], bytes] = {}  # (prefix, id) → JSON of the latest read


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.latest = f"{prefix}:latest"
        self.latest_as_of = f"{prefix}:latest_as_of"
        self.history = f"{prefix}:history"
        self.by_date = f"{prefix}:by_date"
        self.snap = f"{prefix}:snap:"
        self.live = f"{prefix}:live"
        self.live_base = f"{prefix}:live_base"

    def of(self, snapshot_id: str) -> dict[str, str]:
        base = f"{self.snap}{snapshot_id}"
        return {part: f"{base}:{part}" for part in ("json", "arrow", "meta", "members")}


def table_of(frame: pd.DataFrame) -> pa.Table:
    """A ranked table (ticker index) as Arrow with plain types: no pandas metadata, which
    pandas cannot read back for Arrow list columns."""
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    return table.replace_schema_metadata(None)


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_arrow(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def read_frame(data: bytes) -> pd.DataFrame:
    """A ranked table's Arrow bytes back as the scan's pandas table (ticker index, the
    sparkline column as an Arrow list column, as the document builders expect)."""
    table = read_arrow(data)
    frame = table.to_pandas().set_index("ticker")
    if "sparkline" in table.column_names:
        frame["sparkline"] = pd.Series(
            pd.arrays.ArrowExtensionArray(table.column("sparkline")), index=frame.index
        )
    return frame


def get_table(conn: redis.Redis, keys: Keys, snapshot_id: str) -> pd.DataFrame | None:
    """A snapshot's ranked table, or None where it is absent (or slimmed)."""
    data = conn.get(keys.of(snapshot_id)["arrow"])
    return None if data is None else read_frame(data)


def members_table(table: pd.DataFrame) -> pa.Table:
    """Per ticker of a snapshot: rank, tier, signal, merit band and active signals."""
    return table_of(table[list(MEMBER_COLUMNS)])


def meta_of(document: dict[str, Any]) -> dict[str, Any]:
    return {k: document[k] for k in META_KEYS if k in document}


def publish(
    conn: redis.Redis,
    keys: Keys,
    document: dict[str, Any],
    json_bytes: bytes,
    table_bytes: bytes,
    members_bytes: bytes,
    retention_days: int,
    full_keep: int = 7,
) -> bool:
    """Write every part of a snapshot and move the latest pointer, in one transaction; keep
    full documents for the newest ``full_keep`` snapshots and membership for the retention.
    Returns whether the snapshot became the latest (a backfill does not)."""
    sid = document["snapshot_id"]
    now = time.time()
    cutoff = now - retention_days * 86_400
    expired = set(conn.zrangebyscore(keys.history, "-inf", f"({cutoff}"))
    count = conn.zcard(keys.history)
    if count + 1 > MAX_SNAPSHOTS:
        expired |= set(conn.zrange(keys.history, 0, count - MAX_SNAPSHOTS))
    # Older snapshots keep their metadata and membership only (history and diffs need no more).
    slim = set(conn.zrevrange(keys.history, full_keep - 1, -1)) - expired if full_keep else set()
    parts = keys.of(sid)
    with conn.pipeline(transaction=True) as tx:
        advance = conn.register_script(_ADVANCE)
        advance(keys=[keys.latest, keys.latest_as_of], args=[sid, document["as_of"]], client=tx)
        tx.set(parts["json"], json_bytes)
        tx.set(parts["arrow"], table_bytes)
        tx.set(parts["meta"], orjson.dumps({**meta_of(document), "published_at": now}))
        tx.set(parts["members"], members_bytes)
        tx.zadd(keys.history, {sid: now})
        tx.hset(keys.by_date, document["as_of"], sid)
        for old in expired:
            old_id = old.decode()
            if old_id == sid:
                continue
            tx.delete(*keys.of(old_id).values())
            tx.zrem(keys.history, old_id)
        for old in slim:
            old_parts = keys.of(old.decode())
            tx.delete(old_parts["json"], old_parts["arrow"])
        became_latest = bool(tx.execute()[0])
    _prune_dates(conn, keys)
    return became_latest


def _prune_dates(conn: redis.Redis, keys: Keys) -> None:
    """Drop as-of dates whose snapshot has been removed from the history."""
    dates = conn.hgetall(keys.by_date)
    gone = [d for d, sid in dates.items() if conn.zscore(keys.history, sid) is None]
    if gone:
        conn.hdel(keys.by_date, *gone)


def latest_bytes(conn: redis.Redis, keys: Keys) -> tuple[str, bytes] | None:
    """(id, JSON bytes) of the latest snapshot (the live one while it extends the latest daily
    one); None when there is none.

    One GET of the pointer per call; the document itself is fetched once per id and kept in
    process. Documents are immutable and outlive their time as latest (they are slimmed only
    after ``full_keep`` newer ones), so the id and its bytes always belong together.
    """
    for _ in range(3):
        pointer, live, base = conn.mget(keys.latest, keys.live, keys.live_base)
        if pointer is None:
            return None
        sid = (live if live is not None and base == pointer else pointer).decode()
        doc = _cache.get((keys.prefix, sid))
        if doc is None:
            doc = conn.get(keys.of(sid)["json"])
            if doc is None:  # superseded and slimmed between the two reads: read again
                continue
            _cache.clear()
            _cache[(keys.prefix, sid)] = doc
        return sid, doc
    return None


def publish_live(
    conn: redis.Redis,
    keys: Keys,
    document: dict[str, Any],
    json_bytes: bytes,
    table_bytes: bytes,
    ttl: int,
) -> None:
    """Write a live snapshot (its JSON, table and metadata, expiring after ``ttl`` seconds)
    and point ``P:live`` at it, in one transaction."""
    sid = document["snapshot_id"]
    parts = keys.of(sid)
    with conn.pipeline(transaction=True) as tx:
        tx.set(parts["json"], json_bytes, ex=ttl)
        tx.set(parts["arrow"], table_bytes, ex=ttl)
        tx.set(parts["meta"], orjson.dumps({**meta_of(document), "published_at": time.time()}),
               ex=ttl)  # fmt: skip
        tx.set(keys.live, sid, ex=ttl)
        tx.set(keys.live_base, document.get("base_snapshot") or "", ex=ttl)
        tx.execute()


def hold_live(conn: redis.Redis, keys: Keys, ttl: int) -> str | None:
    """Keep the live snapshot (its keys and the pointers) for ``ttl`` more seconds: after the
    close, the session's last one is served until the nightly scan publishes the next daily
    snapshot (which it no longer extends). Returns its id (None when there is none)."""
    sid = conn.get(keys.live)
    if sid is None:
        return None
    parts = keys.of(sid.decode())
    with conn.pipeline(transaction=True) as tx:
        for key in (parts["json"], parts["arrow"], parts["meta"], keys.live, keys.live_base):
            tx.expire(key, ttl)
        tx.execute()
    return sid.decode()


def get_bytes(conn: redis.Redis, keys: Keys, snapshot_id: str) -> bytes | None:
    return conn.get(keys.of(snapshot_id)["json"])


def resolve(conn: redis.Redis, keys: Keys, ref: str) -> str | None:
    """A snapshot id from an id, ``latest``, or an as-of date (YYYY-MM-DD)."""
    if ref == "latest":
        value = conn.get(keys.latest)
        return value.decode() if value else None
    if conn.zscore(keys.history, ref) is not None:
        return ref
    value = conn.hget(keys.by_date, ref)
    return value.decode() if value else None


def listing(conn: redis.Redis, keys: Keys, days: int) -> list[dict[str, Any]]:
    """Metadata of the snapshots published in the last ``days`` days, newest first."""
    since = time.time() - days * 86_400
    ids = [i.decode() for i in conn.zrevrangebyscore(keys.history, "+inf", since)]
    metas = conn.mget([keys.of(i)["meta"] for i in ids]) if ids else []
    return [orjson.loads(m) for m in metas if m]


def previous(conn: redis.Redis, keys: Keys, snapshot_id: str, as_of: str) -> str | None:
    """The snapshot before ``snapshot_id`` (of date ``as_of``): among the others of a date on
    or before it, the newest date, and of that date the last published; None if none."""
    earlier = (
        sid for sid, day in by_date_newest_first(conn, keys) if sid != snapshot_id and day <= as_of
    )
    return next(earlier, None)


def members(conn: redis.Redis, keys: Keys, snapshot_id: str) -> pd.DataFrame | None:
    data = conn.get(keys.of(snapshot_id)["members"])
    if data is None:
        return None
    return read_arrow(data).to_pandas().set_index("ticker")


def ticker_history(conn: redis.Redis, keys: Keys, ticker: str, days: int) -> list[dict]:
    """Each snapshot in the window where ``ticker`` appears: date, rank, tier, signals."""
    out = []
    for meta in listing(conn, keys, days):
        table = members(conn, keys, meta["snapshot_id"])
        if table is None or ticker not in table.index:
            continue
        row = table.loc[ticker]
        out.append(
            {
                "snapshot_id": meta["snapshot_id"],
                "as_of": meta["as_of"],
                "rank": int(row["rank"]),
                "tier": row["Tier"],
                "signal": row["Signal"],
                "merit_band": row["merit_band"],
                "signals": list(row["signals"]),
            }
        )
    return out


def compare(old: pd.DataFrame, new: pd.DataFrame) -> dict[str, Any]:
    """Entered, left and moved tickers between two membership tables, and per tier."""
    entered = sorted(set(new.index) - set(old.index))
    left = sorted(set(old.index) - set(new.index))
    both = new.index.intersection(old.index)
    joined = pd.concat(
        [
            old.loc[both, ["rank", "Tier"]].add_suffix("_from"),
            new.loc[both, ["rank", "Tier"]].add_suffix("_to"),
        ],
        axis=1,
    )
    moved_rank = joined["rank_from"] != joined["rank_to"]
    changed = joined[moved_rank | (joined["Tier_from"] != joined["Tier_to"])]
    moved = [
        {
            "ticker": str(t),
            "from_rank": int(r["rank_from"]),
            "to_rank": int(r["rank_to"]),
            "from_tier": r["Tier_from"],
            "to_tier": r["Tier_to"],
        }
        for t, r in changed.sort_values("rank_to").iterrows()
    ]
    tiers = {}
    for tier in TIERS.names:
        was = set(old.index[old["Tier"] == tier])
        now = set(new.index[new["Tier"] == tier])
        tiers[tier] = {"entered": sorted(now - was), "left": sorted(was - now)}
    return {"entered": entered, "left": left, "moved": moved, "tiers": tiers}


def by_date_newest_first(conn: redis.Redis, keys: Keys) -> list[tuple[str, str]]:
    """(id, as_of) of every snapshot in the history, newest as-of date first (of one date,
    the last published first)."""
    ids = [i.decode() for i in conn.zrevrange(keys.history, 0, -1)]
    metas = conn.mget([keys.of(i)["meta"] for i in ids]) if ids else []
    dated = [(sid, orjson.loads(m)["as_of"]) for sid, m in zip(ids, metas, strict=True) if m]
    return sorted(dated, key=lambda entry: entry[1], reverse=True)  # stable: publish order


def full_ids_newest_first(conn: redis.Redis, keys: Keys) -> list[str]:
    """Ids of the snapshots whose document is still kept, newest as-of date first."""
    return [sid for sid, _ in by_date_newest_first(conn, keys) if conn.exists(keys.of(sid)["json"])]


def _newest_full(conn: redis.Redis, keys: Keys, exclude: str) -> tuple[str, str] | None:
    """(id, as_of) of the newest snapshot with its document, other than ``exclude``."""
    for sid, as_of in by_date_newest_first(conn, keys):
        if sid != exclude and conn.exists(keys.of(sid)["json"]):
            return sid, as_of
    return None


def point_latest(conn: redis.Redis, keys: Keys, snapshot_id: str) -> None:
    """Make ``snapshot_id`` the latest, whatever its date (the operator's undo of a bad
    publish); raises LookupError when its document is no longer kept."""
    parts = keys.of(snapshot_id)
    meta = conn.get(parts["meta"])
    if meta is None or not conn.exists(parts["json"]):
        raise LookupError(f"snapshot {snapshot_id} has no full document left to serve")
    with conn.pipeline(transaction=True) as tx:
        tx.set(keys.latest, snapshot_id)
        tx.set(keys.latest_as_of, orjson.loads(meta)["as_of"])
        tx.execute()


def delete(conn: redis.Redis, keys: Keys, snapshot_id: str) -> str | None:
    """Remove a snapshot; if it was the latest, the newest remaining one (by as-of date) with
    its document becomes the latest. Returns the latest id afterwards (None if none)."""
    meta = conn.get(keys.of(snapshot_id)["meta"])
    as_of = orjson.loads(meta)["as_of"] if meta else None
    from redis import WatchError

    while True:
        with conn.pipeline(transaction=True) as tx:
            try:
                tx.watch(keys.latest, keys.history)
                latest = tx.get(keys.latest)
                latest = latest.decode() if latest else None
                successor = _newest_full(conn, keys, snapshot_id)
                same_day = _newest_of_date(conn, keys, as_of, snapshot_id) if as_of else None
                tx.multi()
                tx.delete(*keys.of(snapshot_id).values())
                tx.zrem(keys.history, snapshot_id)
                if as_of is not None:
                    if same_day:
                        tx.hset(keys.by_date, as_of, same_day)
                    else:
                        tx.hdel(keys.by_date, as_of)
                if latest == snapshot_id:
                    if successor is None:
                        tx.delete(keys.latest, keys.latest_as_of)
                        latest = None
                    else:
                        tx.set(keys.latest, successor[0])
                        tx.set(keys.latest_as_of, successor[1])
                        latest = successor[0]
                tx.execute()
                return latest
            except WatchError:
                continue


def _newest_of_date(conn: redis.Redis, keys: Keys, as_of: str, exclude: str) -> str | None:
    """The last published snapshot of date ``as_of`` other than ``exclude``."""
    return next(
        (sid for sid, day in by_date_newest_first(conn, keys) if day == as_of and sid != exclude),
        None,
    )

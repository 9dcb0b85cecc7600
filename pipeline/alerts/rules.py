"""Alert rules: the changes between two snapshot documents, per rule.

==================  ==========================================================================
``top``             a ticker entered or left the top ``top`` rows (default 20)
``signal``          a ticker's signal changed (``to``: only changes to that signal)
``new_52w_high``    a ticker made a new 52-week high that the snapshot before did not show
``unusual_volume``  a ticker's volume turned unusual (≥ 2× its 20-day average)
==================  ==========================================================================

A subscription may name ``tickers``: only their events. Each event is a small JSON object:
``rule``, ``ticker``, what it was and what it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError
from pipeline.vocabulary import SIGNALS

RULES = ("top", "signal", "new_52w_high", "unusual_volume")
FLAG_RULES = ("new_52w_high", "unusual_volume")  # rules that follow a row's ``signals``
DEFAULT_TOP = 20
MAX_TOP = 500


@dataclass(frozen=True)
class Rule:
    """One rule with its parameters (see the module's table)."""

    kind: str
    top: int = DEFAULT_TOP
    to: str | None = None
    tickers: frozenset[str] | None = None

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Rule:
        """A rule from a subscription's fields; a bad one raises a one-line ConfigError."""
        kind = spec.get("rule")
        if kind not in RULES:
            raise ConfigError(f"unknown rule {kind!r}: one of {', '.join(RULES)}")
        top = spec.get("top")
        if top is not None and (kind != "top" or not 1 <= int(top) <= MAX_TOP):
            raise ConfigError(f"'top' is for the rule 'top', between 1 and {MAX_TOP}")
        to = spec.get("to")
        if to is not None:
            if kind != "signal":
                raise ConfigError("'to' is for the rule 'signal'")
            to = SIGNALS.parse(to)
        tickers = spec.get("tickers")
        names = frozenset(t.strip().upper() for t in tickers) if tickers else None
        return cls(kind, int(top or DEFAULT_TOP), to, names)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.kind}
        if self.kind == "top":
            out["top"] = self.top
        if self.to is not None:
            out["to"] = self.to
        if self.tickers is not None:
            out["tickers"] = sorted(self.tickers)
        return out

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether an event of the stream (from :func:`needed` rules) is this rule's."""
        if event["rule"] != self.kind:
            return False
        if self.kind == "top" and event["top"] != self.top:
            return False
        if self.to is not None and event["to"] != self.to:
            return False
        return self.tickers is None or event["ticker"] in self.tickers


def needed(subscribed: Iterable[Rule]) -> list[Rule]:
    """The unfiltered rules whose events cover every subscribed rule (and the stream's
    defaults): one per kind, and ``top`` once per N asked for."""
    tops = sorted({DEFAULT_TOP} | {r.top for r in subscribed if r.kind == "top"})
    return [*(Rule("top", n) for n in tops), *(Rule(kind) for kind in RULES[1:])]


def _rows(document: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {row["ticker"]: row for row in (document or {}).get("results", ())}


def changes(
    rules: Iterable[Rule], previous: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> dict[Rule, list[dict[str, Any]]]:
    """Each rule's events from ``previous`` to ``current`` (no previous: nothing changed)."""
    if previous is None:
        return {rule: [] for rule in rules}
    before, now = _rows(previous), _rows(current)
    out = {}
    for rule in rules:
        events = list(_events(rule, before, now))
        if rule.tickers is not None:
            events = [e for e in events if e["ticker"] in rule.tickers]
        out[rule] = events
    return out


def _events(rule: Rule, before: Mapping, now: Mapping):
    if rule.kind == "top":
        was = {t for t, r in before.items() if (r.get("rank") or 1e9) <= rule.top}
        is_ = {t for t, r in now.items() if (r.get("rank") or 1e9) <= rule.top}
        for change, tickers in (("entered", is_ - was), ("left", was - is_)):
            for ticker in sorted(tickers):
                yield {
                    "rule": "top",
                    "top": rule.top,
                    "ticker": ticker,
                    "change": change,
                    "rank": now.get(ticker, {}).get("rank"),
                    "was_rank": before.get(ticker, {}).get("rank"),
                }
    elif rule.kind == "signal":
        for ticker, row in now.items():
            old = before.get(ticker)
            if old is None or old["signal"] == row["signal"]:
                continue
            if rule.to is None or row["signal"] == rule.to:
                yield {"rule": "signal", "ticker": ticker, "from": old["signal"],
                       "to": row["signal"], "rank": row.get("rank")}  # fmt: skip
    else:
        for ticker, row in now.items():
            if rule.kind in (row.get("signals") or ()) and rule.kind not in (
                before.get(ticker, {}).get("signals") or ()
            ):
                yield {"rule": rule.kind, "ticker": ticker, "close": row.get("close"),
                       "change_pct": row.get("change_pct"), "rank": row.get("rank")}  # fmt: skip

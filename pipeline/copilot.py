"""The copilot: answers questions about a scan from the scan's own data.

No language model is needed. A question is read for what it asks (a ticker, a sector, a trade
style, a topic: why, plan, risks, sector comparison, best setups, what changed, the market) and
answered with *facts*: sentences built from the snapshot's rows, its ranked table (TechRating
parts and features, when the caller has it), its market regime and the diff with the previous
snapshot. The facts are the answer; :mod:`pipeline.llm` can hand the same facts to a language
model to word them. A question it cannot answer gets a list of what it can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.scoring import FLAG_LABELS, TECH_WEIGHTS
from pipeline.snapshots.document import why_unscored
from pipeline.vocabulary import LONG_SIGNALS, SECTORS, TRADE_STYLES, match_sectors

TOP = 5  # setups listed by a "best" answer
PART_NAMES = {
    "trend": "trend",
    "momentum": "momentum",
    "relative_strength": "relative strength",
    "direction": "direction (ADX/DI)",
    "rsi": "RSI",
    "flow": "money flow (MFI)",
}
TOPICS: dict[str, tuple[str, ...]] = {  # topic → words that ask for it
    "plan": ("plan", "entry", "stop", "target", "enter", "buy at", "position size", "shares"),
    "risk": ("risk", "risky", "danger", "volatil", "downside", "flag", "safe"),
    "sector": ("sector", "peer", "compare", "comparison", "versus", " vs", "industry"),
    "best": ("best", "top", "setup", "idea", "strongest", "opportunit", "pick", "recommend"),
    "changes": ("changed", "change", "new since", "since the last", "entered", "dropped", "diff"),
    "market": ("market", "regime", "spy", "benchmark", "overall"),
}
STOPWORDS = frozenset(
    {
        "a", "all", "and", "any", "are", "be", "best", "buy", "can", "do", "for", "from", "has",
        "how", "i", "in", "is", "it", "its", "me", "my", "new", "now", "of", "on", "or", "out",
        "see", "so", "the", "this", "to", "top", "up", "us", "was", "what", "when", "why", "with",
        "you",
    }
)  # fmt: skip
WORDS = re.compile(r"\$?[A-Za-z][A-Za-z0-9.\-'’]*")


@dataclass
class Context:
    """What the copilot may use: the snapshot's document and, when the caller has them, its
    ranked table (ticker index), the document ranked for another style, and the diff with
    the previous snapshot (None when there is none)."""

    document: dict[str, Any]
    table: pd.DataFrame | None = None
    ranked: Callable[[str], dict[str, Any]] | None = None
    changes: Callable[[], dict[str, Any] | None] | None = None
    by_ticker: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.by_ticker:
            self.by_ticker = {r["ticker"]: r for r in self.document.get("results", [])}
        self.unscored = {
            t: status
            for status, tickers in (self.document.get("unscored") or {}).items()
            for t in tickers
        }

    @property
    def label(self) -> str:
        """Names the snapshot an answer comes from."""
        d = self.document
        return f"snapshot {d.get('snapshot_id')} · as of {d.get('as_of')}"


@dataclass(frozen=True)
class Answer:
    """An answer: its facts (each one sentence from the data), what it was read as, and the
    facts put together as the reply."""

    intent: str
    facts: tuple[str, ...]
    ticker: str | None = None

    @property
    def body(self) -> str:
        return " ".join(self.facts)


def ask(question: str, context: Context, symbol: str | None = None) -> Answer:
    """Answer ``question`` (about ``symbol`` when given) from ``context``."""
    text = " ".join(question.split())
    lowered = f" {text.casefold()} "
    topics = {t for t, words in TOPICS.items() if any(w in lowered for w in words)}
    ticker = (symbol or "").strip().upper() or _ticker_in(text, context)
    if ticker and (ticker in context.by_ticker or ticker in context.unscored):
        return _about_ticker(ticker, topics, context)
    if "best" in topics:
        return _best(text, context)
    if "changes" in topics:
        return _changes(context)
    if "market" in topics:
        return Answer("market", (_regime(context.document),))
    named = ticker or _capitalised(text)
    unknown = f"I have no {named} in the latest scan. " if named else ""
    return Answer("help", (unknown + _help(context),))


def _ticker_in(text: str, context: Context) -> str | None:
    """The ticker of the scan that ``text`` names: a word written in capitals or with a $
    first, else a lower-case word of three letters or more that is not a common English word
    (words with an apostrophe, like "isn't", never count)."""
    found = []  # (written as a ticker, the word, the ticker)
    for word in WORDS.findall(text):
        bare = word.lstrip("$").rstrip(".-")
        ticker = bare.upper()
        if "'" in word or "’" in word:
            continue
        if ticker in context.by_ticker or ticker in context.unscored:
            found.append((word.startswith("$") or bare == ticker, bare, ticker))
    for marked, _, ticker in found:
        if marked:
            return ticker
    for _, bare, ticker in found:
        if len(ticker) >= 3 and bare.casefold() not in STOPWORDS:
            return ticker
    return None


def _capitalised(text: str) -> str | None:
    """A word written like a ticker ($XYZ, or capitals, two letters or more) that the scan
    does not know, to say so."""
    for word in WORDS.findall(text):
        bare = word.lstrip("$").rstrip(".-'’")
        if (word.startswith("$") or (len(bare) >= 2 and bare.isupper())) and bare.isalnum():
            return bare.upper()
    return None


def _about_ticker(ticker: str, topics: set[str], context: Context) -> Answer:
    document = context.document
    row = context.by_ticker.get(ticker)
    if row is None:
        why = why_unscored(context.unscored[ticker], document)
        return Answer(
            "unscored",
            (f"{ticker} has no scores in the {document.get('as_of')} scan: {why}.",),
            ticker,
        )
    features = _features(ticker, context)
    facts = [_headline(row, document)]
    focus = topics & {"plan", "risk", "sector"}
    if not focus:
        facts += [_parts(row, features), _merit(row), _alpha(row, document), _regime(document)]
    if "plan" in focus:
        facts.append(_plan(row, document))
    if "risk" in focus or not focus:
        facts.append(_risks(row, features))
    if "sector" in focus:
        facts.append(_sector(row, document))
    return Answer("ticker", tuple(f for f in facts if f), ticker)


def _features(ticker: str, context: Context) -> dict[str, Any]:
    table = context.table
    if table is None or ticker not in table.index:
        return {}
    return table.loc[ticker].to_dict()


def _headline(row: dict[str, Any], document: dict[str, Any]) -> str:
    where = f"{row['Sector']}, {row['Industry']}" if row.get("Industry") else row.get("Sector")
    return (
        f"{row['ticker']} ({where}) is {row['signal']} with TechRating {_num(row['TechRating'])} "
        f"of 100, rank {row.get('rank', '?')} of {document.get('rows', '?')} in the "
        f"{document.get('as_of')} scan ({document.get('trade_style')} ranking), tier "
        f"{row['Tier']}."
    )


def _parts(row: dict[str, Any], features: dict[str, Any]) -> str:
    """TechRating's six parts with their weights (from the table), else its inputs."""
    values = {name: features.get(f"tech_{name}") for name in TECH_WEIGHTS}
    parts = [
        f"{PART_NAMES[name]} {_num(values[name], 0)} ({weight:.0%})"
        for name, weight in TECH_WEIGHTS.items()
        if values[name] is not None and values[name] == values[name]
    ]
    if parts:
        return f"TechRating's parts (each 0–100, weight): {', '.join(parts)}."
    return f"Its note: {row.get('note')}." if row.get("note") else ""


def _merit(row: dict[str, Any]) -> str:
    flags = [FLAG_LABELS.get(f, f) for f in (row.get("merit_flags") or "").split("|") if f]
    said = f"risk flags: {', '.join(flags)}" if flags else "no risk flags"
    return (
        f"MeritScore {_num(row.get('merit_score'))} (band {row.get('merit_band')}), {said}; "
        f"ICS {_num(row.get('ICS'))}."
    )


def _alpha(row: dict[str, Any], document: dict[str, Any]) -> str:
    if row.get("AlphaScore") is None:
        reason = (document.get("model") or {}).get("reason") or "no model"
        return f"No ML AlphaScore: {reason}."
    prob = row.get("win_prob_10d")
    chance = f", win_prob_10d {prob:.0%}" if prob is not None else ""
    return f"ML AlphaScore {row['AlphaScore']:+.2f}{chance}."


def _regime(document: dict[str, Any]) -> str:
    regime = document.get("regime") or {}
    if not regime.get("trend"):
        return "The market regime is unknown (no benchmark history in the store)."
    vol = regime.get("realized_vol_20d")
    said = f", 20-day realised volatility {vol:.1%}" if vol is not None else ""
    return (
        f"Market regime as of {document.get('as_of')}: {regime['trend']} trend, "
        f"{regime.get('volatility')} volatility{said}."
    )


def _plan(row: dict[str, Any], document: dict[str, Any]) -> str:
    entry, stop, target = row.get("entry"), row.get("stop"), row.get("target")
    if entry is None or stop is None or target is None:
        return f"{row['ticker']} has no trade plan (no ATR yet)."
    side = "short" if row["signal"] == "Short" else "long"
    account = document.get("account") or {}
    shares = row.get("position_shares")
    sizing = (
        f"; {shares:,} shares risk {account.get('risk_pct', 1):g}% of a "
        f"${account.get('account_size', 100_000):,.0f} account"
        if shares is not None
        else ""
    )
    return (
        f"{document.get('trade_style')} plan ({side}): entry {entry:g}, stop {stop:g} "
        f"({abs(stop / entry - 1):.1%} away), target {target:g}, {row.get('rrr'):g}R "
        f"reward/risk{sizing}."
    )


def _risks(row: dict[str, Any], features: dict[str, Any]) -> str:
    atr = row.get("ATR14_pct")
    said = [f"ATR(14) is {atr:.1%} of the price ({row.get('PlayStyle')})"] if atr else []
    if row.get("IsUltraRisky"):
        said.append("flagged ultra-risky (price < $1, ATR > 10% or dollar volume < $1M)")
    volume = row.get("dollar_volume_20d")
    if volume is not None:
        said.append(f"20-day average dollar volume ${volume:,.0f}")
    rsi = features.get("rsi14")
    if rsi is not None and rsi == rsi:
        said.append(f"RSI(14) {rsi:.0f}")
    flags = [FLAG_LABELS.get(f, f) for f in (row.get("merit_flags") or "").split("|") if f]
    if flags:
        said.append(f"watch: {', '.join(flags)}")
    return f"Risks: {'; '.join(said)}." if said else ""


def _sector(row: dict[str, Any], document: dict[str, Any]) -> str:
    peers = [r for r in document.get("results", []) if r.get("Sector") == row.get("Sector")]
    ratings = pd.Series([r.get("TechRating") for r in peers], dtype="float64")
    place = next(i for i, r in enumerate(peers, start=1) if r["ticker"] == row["ticker"])
    leader = peers[0]
    return (
        f"In {row['Sector']} it ranks {place} of {len(peers)}; the sector's median TechRating "
        f"is {_num(ratings.median())} against its {_num(row['TechRating'])}; the sector's "
        f"best is {leader['ticker']} ({leader['signal']}, TechRating "
        f"{_num(leader['TechRating'])})."
    )


def _best(text: str, context: Context) -> Answer:
    document = context.document
    style = _style_in(text)
    if style and style != document.get("trade_style") and context.ranked is not None:
        document = context.ranked(style)
    rows = document.get("results", [])
    sectors = _sectors_in(text, {r["Sector"] for r in rows if r.get("Sector")})
    if sectors:
        rows = [r for r in rows if r.get("Sector") in sectors]
    longs = [r for r in rows if r.get("signal") in LONG_SIGNALS] or rows
    where = f" in {', '.join(sorted(sectors))}" if sectors else ""
    head = (
        f"Best {document.get('trade_style')} setups{where} as of {document.get('as_of')} "
        f"(of {len(rows):,} rows, by rank):"
    )
    if not longs:
        return Answer("best", (f"{head} none.",))
    lines = [
        f"{i}. {r['ticker']}: {r['signal']}, TechRating {_num(r['TechRating'])}, {r['Tier']}, "
        f"entry {r['entry']:g}, stop {r['stop']:g}, target {r['target']:g}."
        for i, r in enumerate(longs[:TOP], start=1)
    ]
    return Answer("best", (head, *lines))


def _style_in(text: str) -> str | None:
    for name in sorted(TRADE_STYLES.accepted(), key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", text, flags=re.IGNORECASE):
            return TRADE_STYLES.find(name)
    return None


def _sectors_in(text: str, universe: set[str]) -> frozenset[str]:
    """The universe's sectors that ``text`` names (a sector name or alias; aliases of three
    letters or fewer, like IT, only in capitals)."""
    named = []
    for name in sorted({*SECTORS.accepted(), *universe}, key=len, reverse=True):
        flags = 0 if len(name) <= 3 else re.IGNORECASE
        if re.search(rf"\b{re.escape(name)}\b", text, flags=flags):
            named.append(name)
    if not named:
        return frozenset()
    found = match_sectors(named, universe)
    return found.selected if found is not None else frozenset()


def _changes(context: Context) -> Answer:
    diff = context.changes() if context.changes is not None else None
    if diff is None:
        return Answer("changes", ("There is no earlier snapshot to compare the latest one with.",))
    facts = [
        f"From {diff['from']} to {diff['to']}: {len(diff['entered'])} tickers entered the scan, "
        f"{len(diff['left'])} left, {len(diff['moved'])} changed rank or tier."
    ]
    for tier, moves in diff.get("tiers", {}).items():
        if moves["entered"] or moves["left"]:
            facts.append(
                f"{tier}: +{len(moves['entered'])} ({_names(moves['entered'])}), "
                f"−{len(moves['left'])} ({_names(moves['left'])})."
            )
    climbers = sorted(diff["moved"], key=lambda m: m["to_rank"] - m["from_rank"])[:3]
    if climbers:
        facts.append(
            "Biggest climbers: "
            + ", ".join(f"{m['ticker']} {m['from_rank']}→{m['to_rank']}" for m in climbers)
            + "."
        )
    return Answer("changes", tuple(facts))


def _names(tickers: list[str], limit: int = 5) -> str:
    shown = ", ".join(tickers[:limit])
    return (shown + " …") if len(tickers) > limit else (shown or "none")


def _help(context: Context) -> str:
    top = context.document.get("results", [])[:1]
    example = top[0]["ticker"] if top else "AAPL"
    return (
        f"I answer from the latest scan ({context.label}). Ask why a ticker is rated as it is "
        f"('why is {example} rated so?'), its trade plan or risks ('{example} plan', 'risks of "
        f"{example}'), how it compares with its sector ('compare {example} with its sector'), "
        "the best setups overall, in a sector or for a style ('best swing setups in Energy'), "
        "what changed since the last scan, or the market regime."
    )


def _num(value: Any, digits: int = 1) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"

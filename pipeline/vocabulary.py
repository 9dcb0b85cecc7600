"""Technic's labels, each defined once with the other names people and the app use for it.

Every layer derives from these: scoring assigns the canonical names, the CLI and the HTTP
schemas accept the aliases and list them in their help, the docs print them
(``docs/vocabulary.md`` is generated from this module). Matching is case-insensitive and
ignores surrounding spaces; a name that matches nothing raises :class:`UnknownNameError`
listing what would have.

=================  ==========================================================================
``TRADE_STYLES``   Day trading · Short-term swing · Position / longer-term (the app's chips
                   send Day, Swing, Position)
``SIGNALS``        Strong Long · Long · Neutral · Avoid · Short
``TIERS``          CORE · SATELLITE · WATCH
``MERIT_BANDS``    A+ · A · B · C · D, with their MeritScore floors
``SECTORS``        the 11 GICS sectors, with the names other taxonomies use (Yahoo's
                   Technology, Healthcare, Financial Services; NASDAQ's Finance, Capital
                   Goods, Public Utilities...)
=================  ==========================================================================

Sectors are matched to a universe's *own* names: a store imported from NASDAQ's lists says
"Technology" where the app's chip says "Information Technology", and both select the same
tickers (:func:`match_sectors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.errors import UnknownNameError, UnknownSectorError


def _key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


@dataclass(frozen=True)
class Term:
    """One label: its canonical name and the other names that mean it."""

    name: str
    aliases: tuple[str, ...] = ()


class Vocabulary:
    """The canonical names of one kind of label and their aliases."""

    def __init__(self, kind: str, terms: Iterable[Term]):
        self.kind = kind
        self.terms: tuple[Term, ...] = tuple(terms)
        self._by_key: dict[str, str] = {}
        for term in self.terms:
            for name in (term.name, *term.aliases):
                key = _key(name)
                if self._by_key.get(key, term.name) != term.name:
                    raise ValueError(f"{kind} alias {name!r} names two {kind}s")
                self._by_key[key] = term.name

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical names, in order."""
        return tuple(t.name for t in self.terms)

    def accepted(self) -> list[str]:
        """Every name that matches: canonical names and aliases."""
        return [n for t in self.terms for n in (t.name, *t.aliases)]

    def find(self, name: str) -> str | None:
        """The canonical name ``name`` means, or None."""
        return self._by_key.get(_key(name))

    def parse(self, name: str) -> str:
        """The canonical name ``name`` means; raises :class:`UnknownNameError` if none."""
        found = self.find(name)
        if found is None:
            raise UnknownNameError(self.kind, name, self.accepted())
        return found

    def describe(self) -> str:
        """One line for help texts: each name with its aliases in parentheses."""
        return "; ".join(
            t.name + (f" ({', '.join(t.aliases)})" if t.aliases else "") for t in self.terms
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names


TRADE_STYLES = Vocabulary(
    "trade style",
    [
        Term("Day trading", ("Day", "Day trade", "Intraday")),
        Term("Short-term swing", ("Swing", "Swing trading", "Short-term")),
        Term(
            "Position / longer-term", ("Position", "Position trading", "Longer-term", "Long-term")
        ),
    ],
)

SIGNALS = Vocabulary(
    "signal",
    [
        Term("Strong Long", ("Strong Buy",)),
        Term("Long", ("Buy",)),
        Term("Neutral", ("Hold",)),
        Term("Avoid"),
        Term("Short", ("Sell",)),
    ],
)
LONG_SIGNALS = ("Strong Long", "Long")
BEARISH_SIGNALS = ("Avoid", "Short")

TIERS = Vocabulary("tier", [Term("CORE"), Term("SATELLITE"), Term("WATCH", ("Watchlist",))])

MERIT_BAND_FLOORS: tuple[tuple[float, str], ...] = (
    (90.0, "A+"),
    (80.0, "A"),
    (65.0, "B"),
    (50.0, "C"),
    (float("-inf"), "D"),
)  # MeritScore at or above the floor gets the band
MERIT_BANDS = Vocabulary("merit band", [Term(band) for _, band in MERIT_BAND_FLOORS])

SECTORS = Vocabulary(
    "sector",
    [
        Term(
            "Communication Services",
            ("Communication", "Communications", "Telecommunications", "Telecom"),
        ),
        Term(
            "Consumer Discretionary",
            ("Consumer Cyclical", "Consumer Cyclicals", "Consumer Durables", "Consumer Services"),
        ),
        Term("Consumer Staples", ("Consumer Defensive", "Consumer Non-Durables")),
        Term("Energy", ("Oil & Gas",)),
        Term("Financials", ("Financial", "Financial Services", "Finance")),
        Term("Health Care", ("Healthcare",)),
        Term("Industrials", ("Industrial", "Capital Goods", "Transportation")),
        Term("Information Technology", ("Technology", "Tech", "IT", "Info Tech")),
        Term("Materials", ("Basic Materials", "Basic Industries")),
        Term("Real Estate", ("REIT", "REITs")),
        Term("Utilities", ("Utility", "Public Utilities")),
    ],
)


@dataclass(frozen=True)
class SectorMatch:
    """What a sector filter selected: the universe's own names, and per requested name the
    GICS sector it was read as (None when it named a universe sector outside GICS)."""

    selected: frozenset[str]
    read_as: dict[str, str | None]


def match_sectors(requested: Iterable[str] | None, universe: Iterable[str]) -> SectorMatch | None:
    """The sectors of a universe (``universe``: its own names) that ``requested`` names.

    A requested name selects the universe names it equals and, when it is a GICS sector or
    one of its aliases, every universe name that is the same GICS sector under any alias.
    A GICS name that the universe happens to lack selects nothing (a valid, empty filter);
    a name that is neither a universe name nor a known sector raises
    :class:`UnknownSectorError` listing the valid names. None when nothing is requested.
    """
    wanted = [str(s) for s in requested or () if str(s).strip()]
    if not wanted:
        return None
    own = {_key(name): name for name in universe}
    by_gics: dict[str, set[str]] = {}
    for name in own.values():
        gics = SECTORS.find(name)
        if gics is not None:
            by_gics.setdefault(gics, set()).add(name)
    selected: set[str] = set()
    read_as: dict[str, str | None] = {}
    unknown = []
    for name in wanted:
        gics = SECTORS.find(name)
        direct = own.get(_key(name))
        if gics is None and direct is None:
            unknown.append(name)
            continue
        read_as[name] = gics
        selected |= by_gics.get(gics, set()) if gics else set()
        if direct is not None:
            selected.add(direct)
    if unknown:
        raise UnknownSectorError(unknown, sorted(set(own.values()) | set(SECTORS.names)))
    return SectorMatch(frozenset(selected), read_as)

"""The copilot answers from the scan's data: each answer names the facts it uses, and the
facts are checked against the snapshot they come from."""

from __future__ import annotations

import orjson
import pytest

from pipeline import copilot
from pipeline.vocabulary import LONG_SIGNALS


@pytest.fixture(scope="module")
def document(demo_scan) -> dict:
    return orjson.loads(demo_scan.to_json())


@pytest.fixture(scope="module")
def context(demo_scan, document) -> copilot.Context:
    return copilot.Context(document, demo_scan.table)


def row_of(document: dict, ticker: str) -> dict:
    return next(r for r in document["results"] if r["ticker"] == ticker)


def test_why_a_ticker_is_rated_as_it_is(context, document, demo_scan) -> None:
    row = document["results"][0]
    ticker = row["ticker"]
    answer = copilot.ask(f"Why is {ticker} rated so high?", context)
    assert answer.intent == "ticker" and answer.ticker == ticker
    body = answer.body
    assert f"{ticker} ({row['Sector']}" in body and f"is {row['signal']}" in body
    assert f"TechRating {row['TechRating']:.1f} of 100" in body and f"tier {row['Tier']}" in body
    parts = demo_scan.table.loc[ticker]
    assert f"trend {parts['tech_trend']:.0f} (25%)" in body
    assert f"momentum {parts['tech_momentum']:.0f} (25%)" in body
    assert f"MeritScore {row['merit_score']:.1f} (band {row['merit_band']})" in body
    assert document["regime"]["trend"] in body
    assert "No ML AlphaScore" in body  # no model: the reason is given


def test_plan_risks_and_sector(context, document) -> None:
    row = next(r for r in document["results"] if r["signal"] in LONG_SIGNALS)
    ticker = row["ticker"]
    plan = copilot.ask("what's the plan?", context, symbol=ticker.lower()).body
    for value in (row["entry"], row["stop"], row["target"]):
        assert f"{value:g}" in plan
    assert f"{row['rrr']:g}R" in plan
    risks = copilot.ask(f"risks of {ticker}", context).body
    assert f"ATR(14) is {row['ATR14_pct']:.1%}" in risks
    peers = [r for r in document["results"] if r["Sector"] == row["Sector"]]
    place = [r["ticker"] for r in peers].index(ticker) + 1
    sector = copilot.ask(f"compare ${ticker} with its sector", context).body
    assert f"In {row['Sector']} it ranks {place} of {len(peers)}" in sector
    assert f"best is {peers[0]['ticker']}" in sector


def test_best_setups_in_a_sector(context, document) -> None:
    answer = copilot.ask("best setups in Technology", context)
    it = [
        r["ticker"]
        for r in document["results"]
        if r["Sector"] == "Information Technology" and r["signal"] in LONG_SIGNALS
    ]
    assert answer.intent == "best" and "in Information Technology" in answer.facts[0]
    listed = [f.split(":")[0].split(". ")[1] for f in answer.facts[1:]]
    assert listed == it[: copilot.TOP]


def test_best_setups_for_a_style_use_that_ranking(document) -> None:
    asked = []

    def ranked(style: str) -> dict:
        asked.append(style)
        return {**document, "trade_style": style, "results": document["results"][::-1]}

    context = copilot.Context(document, ranked=ranked)
    answer = copilot.ask("top day trading ideas", context)
    assert asked == ["Day trading"] and "Best Day trading setups" in answer.facts[0]


def test_an_unscored_ticker_says_why(context, document) -> None:
    ticker = document["unscored"]["short_history"][0]
    answer = copilot.ask(f"why isn't {ticker} in the scan?", context)
    assert answer.intent == "unscored" and answer.ticker == ticker
    assert "fewer than 60 clean bars" in answer.body


def test_what_changed_uses_the_diff(document) -> None:
    diff = {
        "from": "a",
        "to": "b",
        "entered": ["X"],
        "left": [],
        "moved": [{"ticker": "Y", "from_rank": 9, "to_rank": 2}],
        "tiers": {"CORE": {"entered": ["Y"], "left": []}},
    }
    answer = copilot.ask(
        "what changed since the last scan?", copilot.Context(document, changes=lambda: diff)
    )
    assert "1 tickers entered the scan, 0 left, 1 changed rank or tier" in answer.body
    assert "CORE: +1 (Y)" in answer.body and "Y 9→2" in answer.body
    none = copilot.ask("what changed?", copilot.Context(document, changes=lambda: None))
    assert "no earlier snapshot" in none.body


def test_questions_it_cannot_answer_get_what_it_can(context) -> None:
    for question in ("tell me a joke", "why is ZZZZQ up?"):
        answer = copilot.ask(question, context)
        assert answer.intent == "help" and "Ask why a ticker is rated" in answer.body
    assert "no ZZZZQ" in copilot.ask("why is ZZZZQ up?", context).body
    assert context.label in copilot.ask("hello", context).body


def test_common_words_are_not_tickers(document) -> None:
    """Lower-case words count as tickers only when they are not common English words."""
    fake = {**document, "results": [{**document["results"][0], "ticker": "ALL"}]}
    context = copilot.Context(fake)
    assert copilot.ask("show me all the best setups", context).intent == "best"
    assert copilot.ask("why is ALL rated so?", context).ticker == "ALL"

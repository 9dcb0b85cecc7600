"""Alert rules on two small snapshot documents."""

from __future__ import annotations

import pytest

from pipeline.alerts.rules import Rule, changes, needed
from pipeline.errors import ConfigError


def _doc(sid: str, rows: list[tuple]) -> dict:
    return {
        "snapshot_id": sid,
        "results": [
            {"ticker": t, "rank": r, "signal": s, "signals": list(f), "close": 10.0}
            for t, r, s, f in rows
        ],
    }


BEFORE = _doc("a", [("AAA", 1, "Long", ()), ("BBB", 2, "Neutral", ("new_52w_high",)),
                    ("CCC", 3, "Avoid", ()), ("DDD", 4, "Short", ())])  # fmt: skip
AFTER = _doc("b", [("CCC", 1, "Strong Long", ("new_52w_high", "unusual_volume")),
                   ("AAA", 2, "Long", ()), ("BBB", 3, "Neutral", ("new_52w_high",)),
                   ("EEE", 4, "Long", ("unusual_volume",))])  # fmt: skip


def test_each_rule_finds_its_changes() -> None:
    top2, signal, highs, volume = (
        Rule("top", 2),
        Rule("signal"),
        Rule("new_52w_high"),
        Rule("unusual_volume"),
    )
    found = changes([top2, signal, highs, volume], BEFORE, AFTER)
    assert [(e["ticker"], e["change"], e["rank"], e["was_rank"]) for e in found[top2]] == [
        ("CCC", "entered", 1, 3),
        ("BBB", "left", 3, 2),
    ]
    assert [(e["ticker"], e["from"], e["to"]) for e in found[signal]] == [
        ("CCC", "Avoid", "Strong Long")
    ]  # EEE is new: no change of signal; DDD left the table: no signal now
    assert [e["ticker"] for e in found[highs]] == ["CCC"]  # BBB had it already
    assert sorted(e["ticker"] for e in found[volume]) == ["CCC", "EEE"]


def test_filters_and_matching() -> None:
    only = Rule.parse({"rule": "signal", "to": "strong long", "tickers": ["ccc", "AAA"]})
    assert only.to == "Strong Long" and only.tickers == {"CCC", "AAA"}
    events = changes(needed([only]), BEFORE, AFTER)
    matched = [e for rule_events in events.values() for e in rule_events if only.matches(e)]
    assert [e["ticker"] for e in matched] == ["CCC"]
    assert Rule.parse({"rule": "top", "top": 3}) in needed([Rule.parse({"rule": "top", "top": 3})])
    assert changes([only], None, AFTER) == {only: []}  # nothing before: nothing changed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"rule": "moon"}, "unknown rule"),
        ({"rule": "signal", "top": 5}, "'top' is for the rule 'top'"),
        ({"rule": "top", "top": 0}, "between 1"),
        ({"rule": "top", "to": "Long"}, "'to' is for the rule 'signal'"),
        ({"rule": "signal", "to": "Moon"}, "Moon"),
    ],
)
def test_bad_rules_say_why(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Rule.parse(spec)

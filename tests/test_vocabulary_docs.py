"""docs/vocabulary.md is the page pipeline.vocabulary_docs generates: it cannot drift from the
vocabulary and the scoring rules."""

from __future__ import annotations

from pathlib import Path

from pipeline import vocabulary_docs
from pipeline.vocabulary import SECTORS, TRADE_STYLES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md"


def test_the_vocabulary_page_is_generated_and_up_to_date() -> None:
    assert PAGE.read_text() == vocabulary_docs.render(), (
        "docs/vocabulary.md is out of date: run "
        "'python -m pipeline.vocabulary_docs > docs/vocabulary.md'"
    )


def test_the_page_names_every_accepted_name() -> None:
    page = PAGE.read_text()
    for name in (*TRADE_STYLES.accepted(), *SECTORS.accepted()):
        assert name in page, name

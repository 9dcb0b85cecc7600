"""One vocabulary: every label the engine assigns is defined once, with the names the app and
other taxonomies use for it, and sector filters match a universe's own names."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import scoring, vocabulary
from pipeline.config import Settings, get_settings
from pipeline.errors import ConfigError, UnknownNameError, UnknownSectorError
from pipeline.vocabulary import SECTORS, TRADE_STYLES, match_sectors
from tests.conftest import shared_file

APP_CHIPS = (  # the app's filter panel (GICS names)
    "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy",
    "Financials", "Health Care", "Industrials", "Information Technology", "Materials",
    "Real Estate", "Utilities",
)  # fmt: skip
RANDOMIZE = {  # the app's Randomize button → the GICS sector it means
    "Technology": "Information Technology",
    "Healthcare": "Health Care",
    "Financial Services": "Financials",
    "Energy": "Energy",
}


@pytest.mark.parametrize(
    ("sent", "style"),
    [
        ("Day", "Day trading"),
        ("Swing", "Short-term swing"),
        ("Position", "Position / longer-term"),
        ("  position / LONGER-term ", "Position / longer-term"),
        ("Short-term swing", "Short-term swing"),
        ("intraday", "Day trading"),
    ],
)
def test_every_trade_style_the_app_sends_means_its_style(sent: str, style: str) -> None:
    assert TRADE_STYLES.parse(sent) == style
    assert Settings(trade_style=sent).trade_style == style


def test_an_unknown_name_lists_every_accepted_one() -> None:
    with pytest.raises(UnknownNameError) as info:
        TRADE_STYLES.parse("Scalping")
    assert isinstance(info.value, ConfigError)
    assert {"Day", "Swing", "Position", "Day trading"} <= set(info.value.valid)
    assert "unknown trade style 'Scalping'" in str(info.value)


def test_a_bad_trade_style_setting_is_one_line(monkeypatch) -> None:
    monkeypatch.setenv("TECHNIC_TRADE_STYLE", "Scalping")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(info.value).startswith("bad setting TECHNIC_TRADE_STYLE: unknown trade style")


def test_a_huge_name_is_not_echoed_whole() -> None:
    with pytest.raises(UnknownSectorError) as info:
        match_sectors(["x" * 100_000], {"Energy"})
    assert len(str(info.value)) < 1_000


def test_scoring_assigns_only_vocabulary_names() -> None:
    assert tuple(scoring.STYLES) == TRADE_STYLES.names
    rating = pd.Series([95.0, 70.0, 50.0, 30.0, 10.0])
    trend = pd.Series([100.0, 50.0, 50.0, 50.0, 0.0])
    signals = scoring.signal(rating, trend)
    assert tuple(signals) == vocabulary.SIGNALS.names
    bands = scoring.merit_band(pd.Series([95.0, 85.0, 70.0, 55.0, 10.0]))
    assert tuple(bands) == vocabulary.MERIT_BANDS.names
    tiers = scoring.tier(
        pd.Series([80.0, 60.0, 10.0]),
        pd.Series(["Long", "Neutral", "Short"]),
        pd.Series([False, False, False]),
    )
    assert tuple(tiers) == vocabulary.TIERS.names


def test_aliases_are_unambiguous() -> None:
    with pytest.raises(ValueError, match="names two"):
        vocabulary.Vocabulary("thing", [vocabulary.Term("A", ("x",)), vocabulary.Term("B", ("X",))])


@pytest.mark.parametrize("chip", APP_CHIPS)
def test_every_gics_chip_matches_itself(chip: str) -> None:
    found = match_sectors([chip], set(APP_CHIPS))
    assert found is not None and found.selected == {chip}


def test_randomize_names_select_the_gics_sector_they_mean() -> None:
    for sent, gics in RANDOMIZE.items():
        found = match_sectors([sent], set(APP_CHIPS))
        assert found.selected == {gics}, sent
        assert found.read_as == {sent: gics}


def test_a_known_sector_the_universe_lacks_selects_nothing_but_is_valid() -> None:
    found = match_sectors(["Real Estate"], {"Energy", "Utilities"})
    assert found is not None and found.selected == frozenset()


def test_unknown_sector_lists_the_universes_names_and_the_gics_ones() -> None:
    with pytest.raises(UnknownSectorError) as info:
        match_sectors(["Crypto Art", "Energy"], {"Energy", "Miscellaneous"})
    assert info.value.unknown == ["Crypto Art"]
    assert set(info.value.valid) == {*SECTORS.names, "Miscellaneous"}


def test_nothing_requested_is_no_filter() -> None:
    assert match_sectors(None, {"Energy"}) is None
    assert match_sectors([" "], {"Energy"}) is None


@pytest.mark.parametrize("snapshot", ["2021-02-02", "2026-08-22"])
def test_the_app_names_select_the_real_nasdaq_taxonomy(snapshot: str) -> None:
    """The real reference list names sectors NASDAQ's way ('Technology', 'Finance', 'Public
    Utilities' in 2021): the app's chips and Randomize names still select them."""
    table = pd.read_parquet(shared_file("us_tickers_sector_industry.parquet"))
    names = set(table.loc[table["snapshot_date"].astype(str) == snapshot, "sector"]) - {""}
    expected = {
        "Information Technology": {"Technology"},
        "Financials": {"Finance"},
        "Health Care": {"Health Care"},
        "Energy": {"Energy"},
    }
    for chip, own in expected.items():
        assert match_sectors([chip], names).selected == own, chip
    for sent, gics in RANDOMIZE.items():
        assert match_sectors([sent], names).selected == expected[gics], sent
    unmatched = {n for n in names if SECTORS.find(n) is None}
    assert unmatched == {"Miscellaneous"}  # every other NASDAQ sector reads as a GICS one
    # every chip is valid against the real names (some select nothing in the 2021 taxonomy)
    for chip in APP_CHIPS:
        assert match_sectors([chip], names) is not None

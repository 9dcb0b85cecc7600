"""The app's scanner query over a finished snapshot: the 0–10 rating rule, sectors by any of
their names, rows cut, ideas from the rows kept, and every filter stated and said."""

from __future__ import annotations

import orjson
import pytest

from pipeline.errors import UnknownSectorError
from pipeline.snapshots.queries import RATING_SCALE, ScannerQuery, answer, tech_rating_floor


@pytest.fixture(scope="module")
def document(demo_scan) -> dict:
    return orjson.loads(demo_scan.to_json())


def test_the_rating_is_the_apps_0_to_10_scale(document) -> None:
    assert tech_rating_floor(7.0) == 70.0 == 7.0 * RATING_SCALE
    got = answer(document, ScannerQuery(min_tech_rating=7.0))
    expected = [r for r in document["results"] if r["TechRating"] >= 70]
    assert 0 < len(expected) < len(document["results"])
    assert got["results"] == expected
    assert got["filters"]["min_tech_rating"] == 7.0 and got["filters"]["min_TechRating"] == 70.0
    assert "Rating ≥ 7 of 10, i.e. TechRating ≥ 70 of 100" in got["log"]
    assert got["log"].startswith(document["log"])


def test_sectors_by_the_apps_names(document) -> None:
    got = answer(document, ScannerQuery(sectors=("Technology", "healthcare")))
    wanted = {"Information Technology", "Health Care"}
    assert got["results"] == [r for r in document["results"] if r["Sector"] in wanted]
    assert got["filters"]["sectors"] == {
        "asked": ["Technology", "healthcare"],
        "matched": sorted(wanted),
    }
    assert "sectors Technology, healthcare → Health Care, Information Technology" in got["log"]
    with pytest.raises(UnknownSectorError):
        answer(document, ScannerQuery(sectors=("Crypto",)))


def test_rows_are_cut_after_filtering_and_ideas_come_from_the_rows_kept(document) -> None:
    got = answer(document, ScannerQuery(sectors=("Energy",), max_symbols=3))
    energy = [r for r in document["results"] if r["Sector"] == "Energy"]
    assert got["results"] == energy[:3]
    assert got["filters"]["matched"] == len(energy) and got["filters"]["returned"] == 3
    assert all(idea["ticker"] in {r["ticker"] for r in energy} for idea in got["ideas"])
    assert "first 3 rows" in got["log"]


def test_options_that_change_nothing_say_so(document) -> None:
    got = answer(document, ScannerQuery(lookback_days=180, options_mode="stock_only"))
    assert got["results"] == document["results"]
    assert got["filters"]["lookback_days"]["asked"] == 180
    assert "changes nothing" in got["filters"]["lookback_days"]["effect"]
    assert got["filters"]["options_mode"]["asked"] == "stock_only"
    assert "lookback_days 180 changes nothing" in got["log"]
    assert "options_mode 'stock_only' changes nothing" in got["log"]
    assert all(r["option_strategies"] == [] for r in got["results"])


def test_the_published_scans_own_filters_are_kept(document) -> None:
    got = answer(document, ScannerQuery())
    assert got["filters"]["scan"] == document["filters"]
    assert got["results"] == document["results"] and got["ideas"] == document["ideas"]

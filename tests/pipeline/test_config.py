"""Settings: defaults, environment variables, validation and the one-line ConfigError."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import Settings, get_settings
from pipeline.errors import ConfigError, TechnicError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Technic variable from the outer environment, and a fresh get_settings cache."""
    for name in list(os.environ):
        if name.upper().startswith("TECHNIC_") or name.upper().startswith("RAY_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def notices() -> Iterator[list[str]]:
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("pipeline.config")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_defaults_work_on_a_laptop() -> None:
    s = Settings()
    assert s.data_dir == Path("~/.technic")
    assert s.store_url == str(Path("~/.technic/store").expanduser())
    assert s.snapshot_dir == Path("~/.technic/snapshots").expanduser()
    assert s.cluster == "local" and s.effective_cluster == "local"
    assert s.max_workers is None and s.workers == (None, 1)
    assert s.dashboard_address == ":8787"
    assert s.alpha_weight == 0.35
    assert s.use_gpu is False and s.use_ml_alpha is True
    assert s.benchmark == "SPY"
    assert (s.min_history, s.stale_days) == (60, 10)
    assert (s.account_size, s.risk_pct) == (100_000.0, 1.0)
    assert s.trade_style == "Short-term swing"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TECHNIC_CLUSTER", "sync")
    monkeypatch.setenv("TECHNIC_MAX_WORKERS", "2x1")
    monkeypatch.setenv("TECHNIC_ALPHA_WEIGHT", "0.5")
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TECHNIC_STORE", str(tmp_path / "bars"))
    monkeypatch.setenv("TECHNIC_DASHBOARD_ADDRESS", ":0")
    s = get_settings()
    assert s.cluster == "sync"
    assert s.workers == (2, 1)
    assert s.alpha_weight == 0.5
    assert s.store_url == str(tmp_path / "bars")
    assert s.snapshot_dir == tmp_path / "snapshots"
    assert s.dashboard_address == ":0"
    assert get_settings() is s  # cached for the process


def test_store_defaults_under_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path))
    assert get_settings().store_url == str(tmp_path / "store")


@pytest.mark.parametrize(
    ("value", "workers"),
    [("2x1", (2, 1)), ("4", (4, 1)), (" 3 x 2 ", (3, 2)), ("2×4", (2, 4)), ("8*1", (8, 1))],
)
def test_max_workers_forms(value: str, workers: tuple[int, int]) -> None:
    assert Settings(max_workers=value).workers == workers


def test_blank_max_workers_means_one_per_core() -> None:
    assert Settings(max_workers="").workers == (None, 1)


@pytest.mark.parametrize("cluster", ["local", "cuda", "sync", "tcp://10.0.0.5:8786", " sync "])
def test_valid_clusters(cluster: str) -> None:
    assert Settings(cluster=cluster).cluster == cluster.strip()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cluster": "gpu"},
        {"cluster": "ray"},
        {"max_workers": "0"},
        {"max_workers": "2x0"},
        {"max_workers": "many"},
        {"alpha_weight": 2},
        {"alpha_weight": -0.1},
        {"risk_pct": 0},
        {"account_size": -5},
        {"min_history": 1},
        {"trade_style": "Scalping"},
    ],
)
def test_invalid_values_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**kwargs)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().cluster = "sync"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TECHNIC_CLUSTER", "gpu"),
        ("TECHNIC_MAX_WORKERS", "0"),
        ("TECHNIC_ALPHA_WEIGHT", "2"),
        ("TECHNIC_USE_GPU", "maybe"),
    ],
)
def test_get_settings_raises_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        get_settings()
    message = str(info.value)
    assert isinstance(info.value, TechnicError)
    assert "\n" not in message
    assert message.startswith(f"bad setting {variable}: ")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_config_error_names_an_unprefixed_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_NUM_CPUS", "lots")
    with pytest.raises(ConfigError) as info:
        get_settings()
    assert "TECHNIC_RAY_NUM_CPUS" not in str(info.value)
    assert "RAY_NUM_CPUS" in str(info.value)


def test_get_settings_recovers_after_the_variable_is_fixed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TECHNIC_CLUSTER", "gpu")
    with pytest.raises(ConfigError):
        get_settings()
    monkeypatch.setenv("TECHNIC_CLUSTER", "sync")
    assert get_settings().cluster == "sync"  # errors are not cached


def test_use_gpu_selects_the_cuda_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHNIC_USE_GPU", "1")
    s = get_settings()
    assert s.use_gpu is True
    assert s.effective_cluster == "cuda"


def test_a_named_scheduler_wins_over_use_gpu() -> None:
    s = Settings(use_gpu=True, cluster="tcp://scheduler:8786")
    assert s.effective_cluster == "tcp://scheduler:8786"
    assert Settings(use_gpu=True, cluster="sync").effective_cluster == "sync"


def test_use_ray_is_accepted_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, notices: list[str]
) -> None:
    monkeypatch.setenv("TECHNIC_USE_RAY", "1")
    s = get_settings()
    assert s.use_ray is True
    assert len(notices) == 1
    assert "TECHNIC_USE_RAY" in notices[0] and "Dask" in notices[0]
    assert "TECHNIC_MAX_WORKERS" in notices[0]


def test_ray_num_cpus_is_accepted_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, notices: list[str]
) -> None:
    monkeypatch.setenv("RAY_NUM_CPUS", "8")
    s = get_settings()
    assert s.ray_num_cpus == 8
    assert s.workers == (None, 1)  # it does not size the Dask cluster
    assert len(notices) == 1 and "RAY_NUM_CPUS" in notices[0]


def test_no_notice_without_ray_variables(notices: list[str]) -> None:
    get_settings()
    assert notices == []

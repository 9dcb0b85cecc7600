"""``technic scan --publish`` and ``technic snapshots list|show|diff|push`` end to end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def redis_env(redis_server, request) -> dict[str, str]:
    prefix = re.sub(r"\W", "-", request.node.name)[:40] + ":v1"
    return {"REDIS_URL": redis_server.url, "TECHNIC_USE_REDIS": "1", "TECHNIC_REDIS_PREFIX": prefix}


def ok(proc):
    assert proc.returncode == 0, ANSI.sub("", proc.stderr)
    return proc


def test_publish_list_show_diff(demo_store: Path, tmp_path: Path, redis_env) -> None:
    store = str(demo_store)
    for as_of in ("2026-11-13", "2026-11-20"):
        proc = ok(
            run_cli(
                "scan",
                "--store",
                store,
                "--as-of",
                as_of,
                "--top",
                "1",
                "--publish",
                data_dir=tmp_path,
                env=redis_env,
            )
        )
        assert "Published " in proc.stderr and "[CACHE] Redis connected:" in proc.stderr
    listed = json.loads(
        ok(run_cli("snapshots", "list", "--json", data_dir=tmp_path, env=redis_env)).stdout
    )
    assert [m["as_of"] for m in listed] == ["2026-11-20", "2026-11-13"]
    shown = json.loads(
        ok(run_cli("snapshots", "show", "--json", data_dir=tmp_path, env=redis_env)).stdout
    )
    assert shown["snapshot_id"] == listed[0]["snapshot_id"] and shown["results"]
    table = ok(
        run_cli("snapshots", "show", "2026-11-13", "--top", "3", data_dir=tmp_path, env=redis_env)
    )
    assert listed[1]["snapshot_id"] in ANSI.sub("", table.stdout)
    change = json.loads(
        ok(
            run_cli(
                "snapshots",
                "diff",
                "2026-11-13",
                "latest",
                "--json",
                data_dir=tmp_path,
                env=redis_env,
            )
        ).stdout
    )
    assert change["from"] == listed[1]["snapshot_id"] and change["to"] == listed[0]["snapshot_id"]
    assert set(change["tiers"]) == {"CORE", "SATELLITE", "WATCH"}
    ticker = shown["results"][0]["ticker"]
    member = json.loads(
        ok(
            run_cli(
                "snapshots", "list", "--ticker", ticker, "--json", data_dir=tmp_path, env=redis_env
            )
        ).stdout
    )
    assert member[0]["as_of"] == "2026-11-20" and member[0]["rank"] >= 1


def test_queued_while_redis_is_away_then_pushed(
    demo_store: Path, tmp_path: Path, redis_env
) -> None:
    away = {**redis_env, "REDIS_URL": "redis://127.0.0.1:1/0", "TECHNIC_REDIS_TIMEOUT": "0.5"}
    proc = ok(
        run_cli(
            "scan",
            "--store",
            str(demo_store),
            "--top",
            "1",
            "--publish",
            data_dir=tmp_path,
            env=away,
        )
    )
    assert "Redis unavailable" in proc.stderr
    assert len(list((tmp_path / "snapshots" / "pending").glob("*.json"))) == 1
    refused = run_cli("snapshots", "push", data_dir=tmp_path, env=away)
    assert (
        refused.returncode == 2 and "error:" in refused.stderr and "Traceback" not in refused.stderr
    )
    pushed = ok(run_cli("snapshots", "push", data_dir=tmp_path, env=redis_env))
    assert "Published 1 queued snapshot" in ANSI.sub("", pushed.stderr)
    assert not list((tmp_path / "snapshots" / "pending").glob("*.json"))
    shutil.rmtree(tmp_path / "snapshots")
    empty = ok(run_cli("snapshots", "push", data_dir=tmp_path, env=redis_env))
    assert "Nothing queued" in empty.stderr


def test_unknown_snapshot_is_a_one_line_error(tmp_path: Path, redis_env) -> None:
    proc = run_cli("snapshots", "show", "1999-01-01", data_dir=tmp_path, env=redis_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no snapshot '1999-01-01'" in ANSI.sub("", proc.stderr)


def test_a_future_as_of_scans_the_last_session(demo_store: Path, tmp_path: Path, redis_env) -> None:
    proc = ok(
        run_cli(
            "scan", "--store", str(demo_store), "--as-of", "2099-01-01", "--top", "1",
            "--publish", data_dir=tmp_path, env=redis_env,
        )
    )  # fmt: skip
    said = ANSI.sub("", proc.stderr)
    assert "as-of 2099-01-01 is after the store's last session: scanning 2026-11-20" in said
    shown = json.loads(
        ok(run_cli("snapshots", "show", "--json", data_dir=tmp_path, env=redis_env)).stdout
    )
    assert shown["as_of"] == "2026-11-20" and shown["rows"] > 0


def test_operator_deletes_and_repoints(demo_store: Path, tmp_path: Path, redis_env) -> None:
    for as_of in ("2026-11-13", "2026-11-20"):
        ok(
            run_cli(
                "scan", "--store", str(demo_store), "--as-of", as_of, "--top", "1", "--publish",
                data_dir=tmp_path, env=redis_env,
            )
        )  # fmt: skip
    backfill = ok(
        run_cli(
            "scan", "--store", str(demo_store), "--as-of", "2026-11-13", "--top", "1",
            "--publish", data_dir=tmp_path, env=redis_env,
        )
    )  # fmt: skip
    assert "not the latest" in ANSI.sub("", backfill.stderr)
    listed = json.loads(
        ok(run_cli("snapshots", "list", "--json", data_dir=tmp_path, env=redis_env)).stdout
    )
    newest = next(m["snapshot_id"] for m in listed if m["as_of"] == "2026-11-20")
    older = listed[0]["snapshot_id"]  # the backfill, published last
    deleted = ok(run_cli("snapshots", "delete", "2026-11-20", data_dir=tmp_path, env=redis_env))
    assert f"Deleted {newest}; latest is now {older}" in ANSI.sub("", deleted.stderr)
    repointed = ok(run_cli("snapshots", "repoint", listed[-1]["snapshot_id"], data_dir=tmp_path,
                           env=redis_env))  # fmt: skip
    assert f"Latest is now {listed[-1]['snapshot_id']}" in ANSI.sub("", repointed.stderr)
    missing = run_cli("snapshots", "delete", "2026-11-20", data_dir=tmp_path, env=redis_env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "no snapshot '2026-11-20'" in ANSI.sub("", missing.stderr)


def test_account_size_inf_is_a_one_line_error(demo_store: Path, tmp_path: Path) -> None:
    proc = run_cli("scan", "--store", str(demo_store), "--account-size", "inf", data_dir=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "account size must be a finite number > 0" in ANSI.sub("", proc.stderr)


def test_push_into_a_redis_out_of_memory(demo_store: Path, tmp_path: Path, redis_env) -> None:
    from tests.pipeline.snapshots import RedisProcess

    full = RedisProcess().start()
    try:
        env = {**redis_env, "REDIS_URL": full.url}
        away = {**env, "REDIS_URL": "redis://127.0.0.1:1/0", "TECHNIC_REDIS_TIMEOUT": "0.5"}
        ok(run_cli("scan", "--store", str(demo_store), "--top", "1", "--publish",
                   data_dir=tmp_path, env=away))  # fmt: skip
        import redis

        redis.Redis.from_url(full.url).config_set("maxmemory", "1")
        proc = run_cli("snapshots", "push", data_dir=tmp_path, env=env)
        said = ANSI.sub("", proc.stderr)
        assert proc.returncode == 2 and "Traceback" not in said, said
        assert "Redis refused the push (OutOfMemoryError: command not allowed" in said
        assert "stay queued" in said
        assert len(list((tmp_path / "snapshots" / "pending").glob("*.json"))) == 1
    finally:
        full.stop()

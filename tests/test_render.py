"""render.yaml and docs/configuration.md against the code.

Every command in the Blueprint names a real entry point (the ``technic`` console script and
its subcommands and options, or an importable ASGI app), every variable is a setting (by its
variable name or alias) or one of the object-storage variables :mod:`pipeline.storage` reads,
secrets are never given a value, every TECHNIC_* setting is listed, the bar store is a bucket
both services reach with their own credentials, and docs/configuration.md is the page
``python -m pipeline.config_docs`` generates.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import typer
import yaml
from pydantic import SecretStr, ValidationError

from pipeline import cli, config_docs, storage
from pipeline.config import Settings
from pipeline.storage import Location
from tests.conftest import REPO

BLUEPRINT = REPO / "render.yaml"
CONFIGURATION = REPO / "docs" / "configuration.md"
PLATFORM = {"PYTHON_VERSION"}  # variables Render itself reads, not Technic's
LEGACY = {"TECHNIC_USE_RAY"}  # accepted from the old system only; not deployed
NEEDED = {"REDIS_URL", "POLYGON_API_KEY"}  # unprefixed variables a deployment must set
# the standard variables an s3:// store is opened with (read by botocore in each process)
BUCKET_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
BUCKET_PLACE = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
OBJECT_STORAGE = {*BUCKET_SECRETS, *BUCKET_PLACE}
MARKET_CLOSE_UTC = 21  # 16:00 in New York is 21:00 UTC in winter (20:00 in summer)


@cache
def blueprint() -> dict:
    return yaml.safe_load(BLUEPRINT.read_text())


def services(kind: str | None = None) -> list[dict]:
    return [s for s in blueprint()["services"] if kind is None or s["type"] == kind]


def env_entries() -> list[tuple[str, dict]]:
    """(owner, entry) for every envVars entry of the groups and services."""
    out = []
    for group in blueprint().get("envVarGroups", []):
        out += [(f"group {group['name']}", e) for e in group["envVars"]]
    for service in services():
        out += [(f"service {service['name']}", e) for e in service.get("envVars", [])]
    return out


def commands() -> list[tuple[str, str]]:
    """(service name, command) for every build and start command."""
    return [
        (s["name"], s[field])
        for s in services()
        for field in ("buildCommand", "startCommand")
        if field in s
    ]


def simple_commands(line: str) -> list[tuple[list[str], list[str]]]:
    """The simple commands of a shell line (split on ``&&``, ``||`` and ``;``): for each, the
    variables it assigns (``NAME=value`` before the program) and its words."""
    out = []
    for part in re.split(r"&&|\|\||;", line):
        words = shlex.split(part)
        assigned = []
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            assigned.append(words.pop(0).split("=", 1)[0])
        if words:
            out.append((assigned, words))
    return out


def test_the_blueprint_defines_web_cron_and_key_value() -> None:
    assert [s["name"] for s in services("web")] == ["technic-api"]
    assert [s["name"] for s in services("cron")] == ["technic-scan"]
    assert [s["name"] for s in services("keyvalue")] == ["technic-redis"]
    kv = services("keyvalue")[0]
    assert "ipAllowList" in kv, "Render requires ipAllowList on a Key Value instance"
    assert kv.get("maxmemoryPolicy") == "volatile-lru"  # evict caches, never snapshots


def test_the_web_service_serves_the_api_with_a_health_check() -> None:
    web = services("web")[0]
    words = shlex.split(web["startCommand"])
    assert words[:2] == ["technic", "serve"]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert words[words.index("--port") + 1] == "$PORT"
    from service.main import create_app

    paths = create_app(Settings(use_redis=False)).openapi()["paths"]
    assert web["healthCheckPath"] == "/health" and "get" in paths["/health"]


def test_the_cron_job_syncs_then_publishes_after_the_close() -> None:
    cron = services("cron")[0]
    steps = [words for _, words in simple_commands(cron["startCommand"])]
    assert steps[0][:2] == ["technic", "sync"]
    assert steps[1][:2] == ["technic", "scan"] and "--publish" in steps[1]
    assert "&&" in cron["startCommand"]  # no publish after a failed sync
    minute, hour, day, month, weekday = cron["schedule"].split()
    assert weekday == "1-5" and day == month == "*"
    assert MARKET_CLOSE_UTC <= int(hour) <= 23 and 0 <= int(minute) < 60


@cache
def technic_command():
    """The click command tree of ``technic`` (typer's own click: groups have ``commands``)."""
    return typer.main.get_command(cli.app)


def _check_technic(words: list[str], where: str) -> list[str]:
    """The subcommand path of a ``technic`` invocation; fails on an unknown subcommand or
    option."""
    command = technic_command()
    path: list[str] = []
    rest = words[1:]
    while rest and hasattr(command, "commands") and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"{where}: 'technic {' '.join(path + rest[:1])}' does not exist"
        command, path, rest = sub, [*path, rest[0]], rest[1:]
    assert not hasattr(command, "commands"), f"{where}: 'technic {' '.join(path)}' needs more"
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for word in rest:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            assert name in options, f"{where}: 'technic {' '.join(path)}' has no option {name}"
    return path


def test_every_command_names_a_real_entry_point() -> None:
    known = config_docs.all_env_names()
    checked: set[tuple[str, ...]] = set()
    for service, line in commands():
        for assigned, words in simple_commands(line):
            for variable in assigned:
                assert variable.upper() in known, f"{service}: {variable} is not a setting"
            program = words[0]
            if program == "technic":
                checked.add(tuple(_check_technic(words, service)))
            elif program in {"pip", "pip3"}:
                assert words[1] == "install", f"{service}: {line}"
            elif program == "uvicorn":
                module, _, attribute = words[1].partition(":")
                assert hasattr(importlib.import_module(module), attribute), line
            else:
                pytest.fail(f"{service}: unknown program {program!r} in {line!r}")
    assert {("serve",), ("sync",), ("scan",)} <= checked
    # and the installed console script answers for each of them
    exe = Path(sys.executable).with_name("technic")
    for path in sorted(checked):
        done = subprocess.run(
            [str(exe), *path, "--help"], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"technic {' '.join(path)} --help: {done.stderr}"
        assert "Usage:" in done.stdout


def test_every_variable_is_a_setting_and_secrets_are_not_committed() -> None:
    known = config_docs.all_env_names()
    fields = Settings.model_fields
    for owner, entry in env_entries():
        if "fromGroup" in entry:
            groups = {g["name"] for g in blueprint().get("envVarGroups", [])}
            assert entry["fromGroup"] in groups, f"{owner}: no group {entry['fromGroup']}"
            continue
        key = entry["key"]
        if key in PLATFORM:
            continue
        if key in OBJECT_STORAGE:
            assert key in (storage.__doc__ or ""), f"{owner}: pipeline/storage.py reads no {key}"
            assert entry.get("sync") is False and "value" not in entry, (
                f"{owner}: {key} differs per deployment (and may be secret): 'sync: false'"
            )
            continue
        assert key.upper() in known, f"{owner}: {key} is not a setting (pipeline/config.py)"
        name = known[key.upper()]
        if config_docs.is_secret(name, fields[name]):
            assert entry.get("sync") is False and "value" not in entry, (
                f"{owner}: secret {key} must be 'sync: false'"
            )
        elif "value" in entry:
            try:
                Settings(**{name: entry["value"]})
            except ValidationError as exc:
                pytest.fail(f"{owner}: {key}={entry['value']!r} is not valid: {exc}")


def test_every_technic_setting_is_listed_and_redis_comes_from_key_value() -> None:
    listed = {entry["key"].upper() for _, entry in env_entries() if "key" in entry}
    primary = {
        config_docs.env_names(name, field)[0].upper()
        for name, field in Settings.model_fields.items()
    }
    wanted = {v for v in primary if v.startswith("TECHNIC_")} - LEGACY | NEEDED
    assert sorted(wanted - listed) == [], "settings missing from render.yaml"
    kv = services("keyvalue")[0]["name"]
    for service in [*services("web"), *services("cron")]:
        redis = [e for e in service["envVars"] if e.get("key") == "REDIS_URL"]
        assert redis and redis[0]["fromService"] == {
            "type": "keyvalue",
            "name": kv,
            "property": "connectionString",
        }, f"{service['name']}: REDIS_URL must come from {kv}"


def _group_values() -> dict[str, dict]:
    """key → entry for every variable of the environment groups."""
    return {
        entry["key"]: entry
        for group in blueprint().get("envVarGroups", [])
        for entry in group["envVars"]
        if "key" in entry
    }


def _group_of(key: str) -> str:
    for group in blueprint().get("envVarGroups", []):
        if any(entry.get("key") == key for entry in group["envVars"]):
            return group["name"]
    pytest.fail(f"{key} is in no environment group")


def test_the_bar_store_is_a_bucket_both_services_read() -> None:
    """TECHNIC_STORE is an s3:// URL in the shared group, so the cron writes the store and the
    web service reads the same one; no service points it (or the cron's command) elsewhere."""
    store = _group_values()["TECHNIC_STORE"]
    value = store.get("value", "")
    assert value.startswith("s3://"), f"TECHNIC_STORE must name a bucket, not {value!r}"
    location = Location.parse(value)  # no credentials in the URL, a bucket named
    assert not location.local and location.url == value.rstrip("/")
    assert Settings(store=value).store_url == location.url
    group = _group_of("TECHNIC_STORE")
    for service in [*services("web"), *services("cron")]:
        entries = service["envVars"]
        assert {"fromGroup": group} in entries, f"{service['name']}: needs the {group} group"
        overrides = {e.get("key") for e in entries} & {"TECHNIC_STORE", "TECHNIC_DATA_DIR"}
        assert not overrides, f"{service['name']}: overrides {overrides}"
    for service, line in commands():
        for _, words in simple_commands(line):
            assert "--store" not in words, f"{service}: {line!r} bypasses TECHNIC_STORE"


def test_both_services_get_the_bucket_credentials_as_secrets() -> None:
    """Each service opens the bucket itself: both get every AWS_* variable, prompted for
    (``sync: false``) on the service, since Render ignores ``sync: false`` in a group."""
    for service in [*services("web"), *services("cron")]:
        entries = {e["key"]: e for e in service["envVars"] if "key" in e}
        for key in (*BUCKET_SECRETS, *BUCKET_PLACE):
            assert key in entries, f"{service['name']}: {key} is missing"
            assert entries[key].get("sync") is False and "value" not in entries[key], (
                f"{service['name']}: {key} must be 'sync: false'"
            )
    for key, entry in _group_values().items():
        assert entry.get("sync") is not False, f"group: Render ignores 'sync: false' {key}"


SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY")
SECRET_VALUES = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "long hex string (an R2 key, a generated API key)": re.compile(r"\b[0-9a-fA-F]{32,}\b"),
    "credentials in a URL": re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
}


def test_no_credential_value_is_committed() -> None:
    for owner, entry in env_entries():
        key = entry.get("key", "")
        if SECRET_NAME.search(key):
            assert entry.get("sync") is False and not {"value", "generateValue"} & set(entry), (
                f"{owner}: {key} looks like a secret: 'sync: false', no value"
            )
    text = BLUEPRINT.read_text()
    for what, pattern in SECRET_VALUES.items():
        found = pattern.search(text)
        line = text.count("\n", 0, found.start()) + 1 if found else 0
        assert found is None, f"render.yaml line {line} holds a {what}"  # never echo it


def test_configuration_page_is_generated_and_up_to_date() -> None:
    assert CONFIGURATION.read_text() == config_docs.render(), (
        "docs/configuration.md is out of date: run "
        "'python -m pipeline.config_docs > docs/configuration.md'"
    )
    assert config_docs.main(["--check", str(CONFIGURATION)]) == 0


def test_every_setting_is_documented() -> None:
    page = CONFIGURATION.read_text()
    for name, field in Settings.model_fields.items():
        for variable in config_docs.env_names(name, field):
            assert f"`{variable}`" in page, f"{variable} ({name}) is not in {CONFIGURATION}"
        assert field.description, f"Settings.{name} has no description"


def _sample(name: str, default: object) -> str | None:
    """A valid value other than the default, as an environment string (None: no sample)."""
    special = {"cluster": "sync", "trade_style": "Day trading", "max_workers": "3x1"}
    if name in special:
        return special[name]
    if isinstance(default, bool):
        return "false" if default else "true"
    if isinstance(default, int):
        return str(default + 1)
    if isinstance(default, float):
        return str(default / 2)
    if isinstance(default, str) or default is None:
        return "7" if name.endswith(("_num_cpus",)) else "sample"
    if isinstance(default, Path):
        return "/tmp/technic-sample"
    return None


def _plain(value: object) -> object:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_documented_variable_names_set_the_setting(name: str, monkeypatch) -> None:
    """Each name the page lists for a setting really sets it (pydantic-settings' rules)."""
    field = Settings.model_fields[name]
    default = field.default_factory() if field.default_factory else field.default
    value = _sample(name, default)
    if isinstance(default, list):
        value = "a,b"
    if value is None:
        pytest.skip(f"no sample value for {name}")
    for variable in config_docs.env_names(name, field):
        for other in config_docs.env_names(name, field):
            monkeypatch.delenv(other, raising=False)
        monkeypatch.setenv(variable, value)
        try:
            got = getattr(Settings(), name)
        except ValidationError:
            pytest.skip(f"the generic sample {value!r} is not valid for {name}")
        assert _plain(got) != default, f"{variable}={value} did not set Settings.{name}"
        monkeypatch.delenv(variable)

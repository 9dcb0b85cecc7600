"""Snapshots waiting for Redis: written to ``<snapshot_dir>/pending`` when it cannot be reached,
published in date order by the next publish or ``technic snapshots push``.

Each entry is ``<id>.arrow`` (the ranked table, Arrow IPC) and ``<id>.json`` (the document),
written atomically in that order, so an entry with its JSON file is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson


def directory(snapshot_dir: Path) -> Path:
    return Path(snapshot_dir).expanduser() / "pending"


def save(snapshot_dir: Path, snapshot_id: str, document_json: bytes, table_arrow: bytes) -> Path:
    """Queue a snapshot; returns its JSON path."""
    folder = directory(snapshot_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / f"{snapshot_id}.arrow", table_arrow)
    _atomic(folder / f"{snapshot_id}.json", document_json)
    return folder / f"{snapshot_id}.json"


def entries(snapshot_dir: Path) -> list[Path]:
    """Complete queued snapshots (their JSON paths), oldest as-of date first."""
    folder = directory(snapshot_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*.json") if p.with_suffix(".arrow").is_file()]

    def order(path: Path) -> tuple[str, str]:
        doc = orjson.loads(path.read_bytes())
        return doc.get("as_of", ""), doc.get("generated_at", "")

    return sorted(found, key=order)


def remove(json_path: Path) -> None:
    json_path.with_suffix(".arrow").unlink(missing_ok=True)
    json_path.unlink(missing_ok=True)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

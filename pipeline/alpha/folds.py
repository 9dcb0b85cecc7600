"""Purged walk-forward folds over the session calendar.

Each fold tests on a block of ``test_days`` consecutive sessions and trains on sessions that
end ``gap`` sessions before the block (``gap`` ≥ the label horizon), either every earlier
session (``expanding``) or the last ``train_days`` of them (``rolling``). A training label at
session ``s`` reads closes up to ``s + horizon``; with ``s ≤ test_start − gap − 1`` that is
before the first test session, so no training label overlaps a test label's period (the purge).
Blocks tile the sessions after the first ``min_train_days + gap``; a last block shorter than
half of ``test_days`` joins the one before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.errors import ConfigError

Window = Literal["expanding", "rolling"]


@dataclass(frozen=True)
class Fold:
    """Session indices (inclusive) of one fold's training and test windows."""

    number: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int

    @property
    def gap(self) -> int:
        """Sessions strictly between the last training and the first test session."""
        return self.test_start - self.train_end - 1


def walk_forward(
    first: int,
    last: int,
    horizon: int,
    *,
    test_days: int = 126,
    min_train_days: int = 126,
    gap: int | None = None,
    window: Window = "expanding",
    train_days: int | None = None,
) -> list[Fold]:
    """Folds over the labelled sessions ``first..last`` (calendar indices, inclusive)."""
    gap = horizon if gap is None else gap
    if gap < horizon:
        raise ConfigError(f"walk-forward gap {gap} is shorter than the label horizon {horizon}")
    if window not in ("expanding", "rolling"):
        raise ConfigError(f"window must be 'expanding' or 'rolling', got {window!r}")
    if test_days < 1 or min_train_days < 1:
        raise ConfigError("test_days and min_train_days must be at least 1")
    train_days = min_train_days if train_days is None else train_days
    start = first + min_train_days + gap
    if start > last:
        need = min_train_days + gap + 1
        raise ConfigError(
            f"too little labelled history for walk-forward: {last - first + 1} sessions, "
            f"need more than {need} (min_train_days {min_train_days} + gap {gap})"
        )
    blocks: list[list[int]] = []
    s = start
    while s <= last:
        e = min(s + test_days - 1, last)
        blocks.append([s, e])
        s = e + 1
    if len(blocks) > 1 and blocks[-1][1] - blocks[-1][0] + 1 < test_days / 2:
        tail = blocks.pop()
        blocks[-1][1] = tail[1]
    folds = []
    for k, (s, e) in enumerate(blocks):
        train_end = s - gap - 1
        train_start = first if window == "expanding" else max(first, train_end - train_days + 1)
        folds.append(Fold(k, train_start, train_end, s, e))
    return folds

"""Bar store → Dask DataFrame indexed by ticker, with known divisions.

Each store file becomes one partition. Files hold whole tickers in sorted order, so the first
ticker of each file gives the divisions without reading any data, and per-ticker work needs no
shuffle, ``set_index`` or ``groupby().apply``.

With a :class:`~pipeline.cache.BarCache`, each partition's file is first looked up in Redis
(its Parquet bytes) and read from the store (then cached) only on a miss. Every partition says
how it was read in ``frame.attrs["bar_cache"]``: ``"hit"``, ``"miss"`` or ``"off"`` (see
:func:`pipeline.cache.count_outcomes`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd

from pipeline.cache import OUTCOME, BarCache
from pipeline.errors import StoreError
from pipeline.schema import empty_bars
from pipeline.store import BarStore, Generation, read_bytes, read_file

if TYPE_CHECKING:
    import dask.dataframe as dd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BarReads:
    """A read of a store planned file by file: one spec per file (file, tickers, start, end,
    cache key), the divisions they give, and the cache they go through. A Dask DataFrame
    maps :meth:`read` over the specs (:func:`load_bars`); a scan without a cluster maps it
    itself, so a one-shot command never imports ``dask.dataframe``."""

    specs: list[tuple]
    divisions: list[str]
    cache: BarCache | None

    def read(self, spec: tuple) -> pd.DataFrame:
        """One file's bars (ticker index); ``attrs["bar_cache"]`` says how it was read."""
        return _read_partition(spec, self.cache)


def plan_reads(
    store: str | os.PathLike[str] | Generation,
    tickers: list[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    cache: BarCache | None = None,
) -> BarReads:
    """The files of ``store`` holding ``tickers`` (all when None) between ``start`` and
    ``end`` (inclusive), each read through ``cache`` when it is enabled (see
    :func:`load_bars`). An unknown ticker raises :class:`UnknownTickerError`."""
    generation = store if isinstance(store, Generation) else BarStore.open(store).current()
    cached = cache is not None and cache.enabled
    selected = generation.select(tickers)
    lo = None if start is None else pd.Timestamp(start)
    hi = None if end is None else pd.Timestamp(end)
    keys: list[str | None] = [None] * len(selected)
    if cached:
        identity = f"{generation.url}@{generation.manifest.get('written_at', '')}"
        keys = [cache.key(generation.data_version, f.name, store=identity) for f, _ in selected]
    specs = [
        (f, hit if tickers is not None else None, lo, hi, key)
        for (f, hit), key in zip(selected, keys, strict=True)
    ]
    divisions = [hit[0] for _, hit in selected] + [selected[-1][1][-1]]
    return BarReads(specs, divisions, cache if cached else None)


def load_bars(
    store: str | os.PathLike[str] | Generation,
    tickers: list[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    cache: BarCache | None = None,
    backend: Literal["pandas", "cudf"] = "pandas",
) -> dd.DataFrame:
    """Bars of ``store`` (a path, or one :class:`Generation` of a store) as a Dask DataFrame
    (index ``ticker``, known divisions).

    ``tickers`` selects tickers (an unknown one raises :class:`UnknownTickerError`); ``start``
    and ``end`` bound the dates, inclusive, and are applied while reading, so bars after
    ``end`` are never read. With an enabled ``cache``, partitions come from Redis when they
    are there (no Parquet is read for them) and are put there when they are not; each
    partition's ``attrs["bar_cache"]`` is ``"hit"``, ``"miss"`` or ``"off"``.
    ``backend="cudf"`` reads the partitions into GPU memory as cuDF frames, without the cache
    (see :mod:`pipeline.cudf_frame`).
    """
    reads = plan_reads(store, tickers, start, end, None if backend == "cudf" else cache)
    extra = {"cache": reads.cache} if reads.cache is not None else {}
    if backend == "cudf":
        from pipeline import cudf_frame

        read, meta = cudf_frame.read_partition, cudf_frame.meta()
    else:
        read, meta = _read_partition, empty_bars()
    import dask.dataframe as dd  # on first use: a second of imports a service may never need

    return dd.from_map(
        read,
        reads.specs,
        meta=meta,
        divisions=reads.divisions,
        label="read-bars",
        enforce_metadata=False,
        **extra,
    )


def _read_partition(spec: tuple, cache: BarCache | None = None) -> pd.DataFrame:
    file, tickers, start, end, key = spec
    if cache is None or key is None:
        frame = read_file(file, tickers, start, end)
        frame.attrs[OUTCOME] = "off"
        return frame
    data = cache.get_bytes(key)
    if data is not None:
        try:
            frame = read_file(file, tickers, start, end, data=data)
        except StoreError as exc:  # a damaged or foreign value: read the store instead
            cache.undecodable(key, exc)
        else:
            frame.attrs[OUTCOME] = "hit"
            return frame
    data = read_bytes(file)
    frame = read_file(file, tickers, start, end, data=data)
    cache.put_bytes(key, data)
    frame.attrs[OUTCOME] = "miss"
    return frame

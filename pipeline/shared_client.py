"""The Dask client of a long-running process, started on first use.

Kept apart from :mod:`pipeline.cluster` so that a process which may never scan (the HTTP
service) does not import ``distributed`` at start: that alone is ~0.4 s of its start-up.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pipeline.config import Settings

if TYPE_CHECKING:
    from distributed import Client


class SharedClient:
    """The Dask client of a long-running process (the service): started on first use, so
    the process starts fast and a scan-less deployment never starts a cluster; closed with
    the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: Client | None = None
        self._started = False
        self._lock = threading.Lock()

    def __call__(self) -> Client | None:
        with self._lock:
            if not self._started:
                from pipeline.cluster import start_client

                self._client = start_client(self.settings)
                self._started = True
            return self._client

    def info(self) -> dict[str, object]:
        """Where scans run: the cluster setting, whether it has started, its workers and
        dashboard link."""
        out: dict[str, object] = {
            "cluster": self.settings.effective_cluster,
            "started": self._started,
            "workers": [],
            "dashboard": None,
        }
        client = self._client
        if client is None:
            return out
        info = client.scheduler_info(n_workers=-1)
        out["scheduler"] = info.get("address")
        out["dashboard"] = client.dashboard_link
        out["workers"] = [
            {
                "address": address,
                "name": str(worker.get("name")),
                "threads": worker.get("nthreads"),
                "memory_limit": worker.get("memory_limit"),
            }
            for address, worker in sorted(info.get("workers", {}).items())
        ]
        return out

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._started = False
        if client is not None:
            from pipeline.cluster import close

            close(client)

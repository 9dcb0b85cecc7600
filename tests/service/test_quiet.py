"""Background work yields to requests: it waits while any is in flight, never forever."""

from __future__ import annotations

import threading
import time

from service.quiet import Quiet


def test_waits_while_a_request_is_in_flight_and_goes_once_quiet() -> None:
    quiet = Quiet()
    quiet.started()
    done = threading.Event()
    worker = threading.Thread(target=lambda: (quiet.wait(quiet=0.05, most=30), done.set()))
    worker.start()
    assert not done.wait(0.3), "background work ran while a request was in flight"
    quiet.ended()
    assert done.wait(10), "background work did not run once requests were quiet"
    worker.join()


def test_never_waits_longer_than_most() -> None:
    quiet = Quiet()
    quiet.started()  # a request that never ends
    tic = time.monotonic()
    quiet.wait(quiet=0.05, most=0.3)
    assert time.monotonic() - tic >= 0.3

"""A trial's heartbeat thread that lives through a database outage.

Optuna's ``HeartbeatThread`` (what ``Study.optimize`` runs) calls ``record_heartbeat`` in a loop
and dies with the first exception, after which training goes on unheard: once the grace period
has passed, a peer's sweep fails the live trial and runs it again, and this worker's result is
thrown away. This thread instead:

* retries a failed heartbeat every second, and shares the process's outage clock
  (``storage._retry.OUTAGE``) with every other storage call;
* gives up only when its last heartbeat that reached the database is ``grace_period - interval``
  seconds old, i.e. just before peers may take the trial as stale. It then stops the trial and
  the worker deliberately: it raises ``HeartbeatLost`` (a ``StorageError``) in the main thread,
  which the worker lets through and the CLI prints as one line (exit 2); storage calls the
  main thread makes meanwhile (the trial's closing attributes) give up at once. The trial is left
  RUNNING; the stale sweep of the next worker fails it and re-enqueues it with its params.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from types import TracebackType
from typing import Any

from ._errors import StorageError
from ._retry import OUTAGE
from ._retry import short
from ._retry import transient
from ._url import mask_url

_logger = logging.getLogger("hpsearch.storage")
RETRY_SECONDS = 1.0  # a failed heartbeat is retried this often
_lost_message = "the trial's heartbeat could not reach the database"


class HeartbeatLost(StorageError):
    """Raised in the main thread when the heartbeat gives up (the message says why)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (_lost_message,)))


class OutageHeartbeat:
    """Context manager: heartbeats for ``trial_id`` on an ``RDBStorage`` ``backend``."""

    def __init__(self, backend: Any, trial_id: int, trial_number: int | None = None) -> None:
        self.backend = backend
        self.trial_id = trial_id
        self.trial_number = trial_number
        interval = backend.get_heartbeat_interval()
        assert interval is not None
        self.interval = float(interval)
        self.grace = float(backend.grace_period or 2 * interval)
        # Give up this long after the last heartbeat that arrived: peers sweep at `grace`.
        self.give_up_after = max(self.grace - self.interval, RETRY_SECONDS)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._main = threading.main_thread().ident
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    def __enter__(self) -> OutageHeartbeat:
        self._thread = threading.Thread(target=self._run, name=f"hpsearch-heartbeat-{self.trial_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _record(self) -> None:
        from optuna.storages import RDBStorage

        RDBStorage.record_heartbeat(self.backend, self.trial_id)  # one attempt; retried here

    def _run(self) -> None:
        last_ok = time.monotonic()
        while True:
            try:
                self._record()
                OUTAGE.recovered()
                last_ok = time.monotonic()
                wait = self.interval
            except Exception as e:
                silent = time.monotonic() - last_ok
                outage = OUTAGE.failed() if transient(e) else silent
                if silent >= self.give_up_after:
                    self._give_up(outage, silent, e)
                    return
                _logger.warning(
                    "heartbeat of trial %s failed (%s); retrying (silent for %.0f s)", self._name(), short(e), silent
                )
                wait = min(RETRY_SECONDS, self.interval)
            if self._stop.wait(wait):
                return

    def _name(self) -> str:
        return str(self.trial_number if self.trial_number is not None else f"id {self.trial_id}")

    def _give_up(self, outage: float, silent: float, e: BaseException) -> None:
        global _lost_message
        message = (
            f"database {mask_url(self.backend.url)} unreachable for {outage:.0f} s ({short(e)}): trial "
            f"{self._name()} had no heartbeat for {silent:.0f} s, and other workers fail it after "
            f"{self.grace:.0f} s; this worker stops, and the next worker's sweep re-enqueues the trial. "
            "Check the server, then restart the worker"
        )
        with self._lock:
            if self._stop.is_set():
                return  # the trial ended meanwhile
            self.lost = message
            _lost_message = message  # the CLI prints it, once, as the worker's last line
            OUTAGE.abandoned = message  # the main thread's pending storage calls stop too
            if self._main is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._main), ctypes.py_object(HeartbeatLost))


def heartbeat_thread(trial_id: int, storage: Any, trial_number: int | None = None) -> Any:
    """The heartbeat context for a trial: ``OutageHeartbeat`` on an RDB storage with heartbeats,
    else Optuna's own (``get_heartbeat_thread``: none, or the gRPC proxy's)."""
    from optuna.storages import RDBStorage
    from optuna.storages._heartbeat import get_heartbeat_thread

    backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in _CachedStorage
    if isinstance(backend, RDBStorage) and backend.get_heartbeat_interval() is not None:
        return OutageHeartbeat(backend, trial_id, trial_number)
    return get_heartbeat_thread(trial_id, storage)

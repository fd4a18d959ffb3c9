"""Retries of transient database errors, bounded by one outage clock per process.

Every storage call of a process (main thread and heartbeat thread alike) shares ``OUTAGE``: it
starts at the first transient error and stops at the next success. A call that fails gives up
once the *outage*, not the call, has lasted ``HPSEARCH_DB_RETRY_SECONDS`` (default 60), so a
worker that makes many calls during one outage still stops after that long, and its message
says how long the database has really been unreachable.

Only reads and idempotent writes are simply repeated. A non-idempotent write gets an
``after_unknown`` check: after a transient error its commit outcome is unknown, so before
repeating it the database is asked whether the write already happened (see ``storage._rdb``).
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import logging
import os
import random
import threading
import time
from typing import Any
from typing import TypeVar

from ._errors import StorageError
from ._url import mask_text
from ._url import mask_url

_logger = logging.getLogger("hpsearch.storage")

DEFAULT_RETRY_SECONDS = 60.0
T = TypeVar("T")


class OutageClock:
    """When the current database outage began (monotonic seconds), shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        # Set when a trial's heartbeat gave up (storage._heartbeat): the worker is stopping, so
        # calls that fail during this outage give up at once, with the same message.
        self.abandoned: str | None = None

    def failed(self) -> float:
        """Record a transient error; return how long the outage has lasted so far."""
        with self._lock:
            now = time.monotonic()
            if self._since is None:
                self._since = now
            return now - self._since

    def recovered(self) -> None:
        if self._since is not None or self.abandoned is not None:
            with self._lock:
                self._since = None
                self.abandoned = None

    def elapsed(self) -> float:
        since = self._since
        return 0.0 if since is None else time.monotonic() - since


OUTAGE = OutageClock()  # one per process
_retry_seconds_override: float | None = None
_nested = threading.local()  # set while a retried call runs: calls nested in it are not retried again


def retry_seconds() -> float:
    """How long one outage may last before storage calls give up (``StoragePolicy``, else env)."""
    if _retry_seconds_override is not None:
        return _retry_seconds_override
    try:
        return float(os.environ.get("HPSEARCH_DB_RETRY_SECONDS", DEFAULT_RETRY_SECONDS))
    except ValueError:
        return DEFAULT_RETRY_SECONDS


def set_retry_seconds(seconds: float | None) -> None:
    global _retry_seconds_override
    _retry_seconds_override = seconds


def transient(exc: BaseException) -> bool:
    """A database error that a retry can cure: lost connection, server restarting, lock timeout."""
    from sqlalchemy import exc as sa_exc

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageError):  # already given up (or not a database error at all)
            return False
        if isinstance(seen, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
            text = str(seen).lower()
            return not any(s in text for s in ("no such table", "doesn't exist", "does not exist", "unknown database"))
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def short(e: BaseException) -> str:
    """The first line of the database driver's message, masked."""
    root: BaseException = e
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(getattr(root, "orig", None) or root).strip().splitlines()
    return mask_text(text[0] if text else type(root).__name__)


def unreachable(url: str, elapsed: float, e: BaseException) -> StorageError:
    return StorageError(
        f"database {mask_url(url)} unreachable for {elapsed:.0f} s ({short(e)}; limit "
        f"HPSEARCH_DB_RETRY_SECONDS={retry_seconds():.0f}); check the server, then restart the worker"
    )


def retry_loop(
    url: str,
    name: str,
    attempt: Callable[[], T],
    after_unknown: Callable[[], tuple[bool, T | None]] | None = None,
) -> T:
    """``attempt()``, repeated on transient errors until the process's outage clock runs out.

    ``after_unknown``, for a non-idempotent write, runs before each repeat: it returns
    ``(True, result)`` when the write turns out to have been committed (or must not be repeated),
    ``(False, None)`` when it was not and ``attempt`` may run again.
    """
    if getattr(_nested, "active", False):
        # A storage method called by another one (``get_all_trials`` -> ``_get_trials``): the
        # outermost call retries the whole.
        return attempt()
    delay = 0.5
    unknown = False
    while True:
        try:
            _nested.active = True
            try:
                if unknown and after_unknown is not None:
                    done, result = after_unknown()
                    if done:
                        OUTAGE.recovered()
                        _logger.warning("%s: committed before the connection was lost; not repeated", name)
                        return result  # type: ignore[return-value]
                result = attempt()
            finally:
                _nested.active = False
            OUTAGE.recovered()
            return result
        except Exception as e:
            if not transient(e):
                raise
            unknown = True
            elapsed = OUTAGE.failed()
            limit = retry_seconds()
            if OUTAGE.abandoned is not None:
                raise StorageError(OUTAGE.abandoned) from None
            if elapsed >= limit:
                raise unreachable(url, elapsed, e) from None
            _logger.warning("database error in %s (%s); retrying in %.1f s", name, short(e), delay)
            time.sleep(min(delay, limit - elapsed) * (0.5 + random.random() / 2))
            delay = min(delay * 2, 8.0)


def with_retries(method: Callable[..., T]) -> Callable[..., T]:
    """A read or idempotent write ``method(storage, ...)``, repeated on transient errors."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        return retry_loop(self.url, method.__name__, lambda: method(self, *args, **kwargs))

    return wrapper

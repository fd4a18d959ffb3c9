"""Storage: the URL (flag > $HPSEARCH_STORAGE > embedded SQLite), the engine, the stale sweep."""

from __future__ import annotations

from ._engine import DEFAULT_GRACE_PERIOD
from ._engine import DEFAULT_HEARTBEAT_INTERVAL
from ._engine import DEFAULT_MAX_RETRY
from ._engine import check_tables
from ._engine import creation_lock
from ._engine import engine_kwargs_for
from ._engine import open_storage
from ._engine import sqlite_path
from ._errors import StorageError
from ._heartbeat import HeartbeatLost
from ._heartbeat import heartbeat_thread
from ._policy import StoragePolicy
from ._queries import set_user_attrs
from ._queries import trial_state_counts
from ._queries import trials_ahead
from ._sweep import sweep_stale_trials
from ._url import DEFAULT_URL
from ._url import mask_text
from ._url import mask_url
from ._url import resolve_url

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_URL",
    "HeartbeatLost",
    "StorageError",
    "StoragePolicy",
    "check_tables",
    "creation_lock",
    "engine_kwargs_for",
    "heartbeat_thread",
    "mask_text",
    "mask_url",
    "open_storage",
    "resolve_url",
    "set_user_attrs",
    "sqlite_path",
    "sweep_stale_trials",
    "trial_state_counts",
    "trials_ahead",
]

"""Storage: the URL (flag > $HPSEARCH_STORAGE > embedded SQLite), the engine, the stale sweep."""

from __future__ import annotations

from storage._engine import DEFAULT_GRACE_PERIOD
from storage._engine import DEFAULT_HEARTBEAT_INTERVAL
from storage._engine import DEFAULT_MAX_RETRY
from storage._engine import check_tables
from storage._engine import engine_kwargs_for
from storage._engine import open_storage
from storage._engine import sqlite_path
from storage._errors import StorageError
from storage._queries import set_user_attrs
from storage._queries import trial_state_counts
from storage._queries import trials_ahead
from storage._sweep import sweep_stale_trials
from storage._url import DEFAULT_URL
from storage._url import mask_text
from storage._url import mask_url
from storage._url import resolve_url


__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_URL",
    "StorageError",
    "check_tables",
    "engine_kwargs_for",
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

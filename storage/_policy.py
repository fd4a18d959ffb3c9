"""The storage side of a worker, assembled in one place: retries, heartbeats, the sweep cadence."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
import warnings

from ._engine import DEFAULT_GRACE_PERIOD
from ._engine import DEFAULT_HEARTBEAT_INTERVAL
from ._engine import DEFAULT_MAX_RETRY
from ._engine import open_storage
from ._retry import retry_seconds
from ._retry import set_retry_seconds


@dataclass(frozen=True)
class StoragePolicy:
    """How a worker uses its storage.

    ``heartbeat_interval``/``grace_period``: Optuna's heartbeats (written by
    ``storage.heartbeat_thread``); ``max_retry``: how often a stale trial is re-enqueued
    (Optuna's ``RetryHeartbeatStaleTrialCallback``); ``retry_seconds``: how long one database
    outage may last before storage calls give up (default ``$HPSEARCH_DB_RETRY_SECONDS``, 60).
    """

    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int = DEFAULT_GRACE_PERIOD
    max_retry: int | None = DEFAULT_MAX_RETRY
    retry_seconds: float = field(default_factory=retry_seconds)

    @property
    def poll_seconds(self) -> float:
        """How often a worker waiting for a slot looks again (and sweeps)."""
        return min(5.0, max(0.5, self.grace_period / 10))

    @property
    def sweep_seconds(self) -> float:
        """Between trials the stale sweep runs at most this often: a trial turns stale only a
        grace period after its last heartbeat, so sweeping more often finds nothing new."""
        return self.grace_period / 4

    def open(self, url: str) -> Any:
        """The worker's storage: heartbeats on, stale trials retried, Optuna's experimental
        warning about heartbeats silenced (hpsearch runs Optuna's heartbeat protocol as is)."""
        import optuna

        set_retry_seconds(self.retry_seconds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return open_storage(
                url,
                heartbeat_interval=self.heartbeat_interval,
                grace_period=self.grace_period,
                max_retry=self.max_retry,
            )

    @staticmethod
    def retry_callback(storage: Any) -> Any:
        """The stale-trial callback that re-enqueues a trial (None behind the gRPC proxy)."""
        backend = getattr(storage, "_backend", storage)
        return getattr(backend, "get_heartbeat_stale_trial_callback", lambda: None)()

"""The stale-trial sweep run by workers at start-up and between trials.

Optuna's ``fail_stale_trials`` fails RUNNING trials whose last heartbeat is older than the grace
period, but skips RUNNING trials that never wrote one (a worker killed between ``ask`` and its
first heartbeat, or a process that ran without heartbeats). This sweep fails both kinds, with the
same steps as Optuna's (state FAIL, then the storage's stale-trial callback, which re-enqueues the
trial with its params), and records why in the trial's ``fail_reason`` user attribute.
"""

from __future__ import annotations

import copy
from datetime import datetime
from datetime import timedelta
import logging
from typing import Any

from ._retry import with_retries as _with_retries

_logger = logging.getLogger("hpsearch.storage")


def _backend(study: Any) -> Any:
    storage = study._storage
    return getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in _CachedStorage


def _never_heartbeated(backend: Any, study_id: int, grace_period: int) -> list[int]:
    """RUNNING trials with no heartbeat row, started more than ``grace_period`` seconds ago.

    ``datetime_start`` is written from the worker's clock, so it is compared with this process's
    clock (workers on several machines need synchronised clocks).
    """
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    session = backend.scoped_session()
    try:
        rows = (
            session.query(models.TrialModel)
            .outerjoin(models.TrialHeartbeatModel, models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialHeartbeatModel.trial_heartbeat_id.is_(None))
            .all()
        )
        limit = datetime.now() - timedelta(seconds=grace_period)
        return [t.trial_id for t in rows if t.datetime_start is not None and t.datetime_start < limit]
    finally:
        session.close()


# A direct query, so retried here as the storage's own calls are (storage._retry):
# a pooled connection used in the last second is not pinged before use (_install_idle_pre_ping).
_never_heartbeated = _with_retries(_never_heartbeated)


def sweep_stale_trials(study: Any) -> list[int]:
    """Fail stale RUNNING trials of ``study`` and re-enqueue them; return their numbers."""
    import optuna
    from optuna.trial import TrialState

    backend = _backend(study)
    interval = backend.get_heartbeat_interval() if isinstance(backend, optuna.storages.RDBStorage) else None
    if interval is None:
        return []
    grace = backend.grace_period or 2 * interval
    stale = {
        tid: f"stale: no heartbeat for {grace} s (worker lost)" for tid in backend._get_stale_trial_ids(study._study_id)
    }
    for tid in _never_heartbeated(backend, study._study_id, grace):
        stale[tid] = f"stale: RUNNING for {grace} s without any heartbeat (worker lost before its first)"
    failed = []
    for tid, reason in stale.items():
        try:
            backend.set_trial_user_attr(tid, "fail_reason", reason)
            if backend.set_trial_state_values(tid, state=TrialState.FAIL):
                failed.append(tid)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # finished or failed by its worker or another sweep meanwhile
    callback = backend.get_heartbeat_stale_trial_callback()
    numbers = []
    for tid in failed:
        trial = copy.deepcopy(backend.get_trial(tid))
        numbers.append(trial.number)
        _logger.warning("trial %d failed by the sweep: %s", trial.number, stale[tid])
        if callback is not None:
            callback(study, trial)
    return numbers

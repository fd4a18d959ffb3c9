"""Cheap reads and one batched write that Optuna's storage API lacks, for the worker's hot path.

A worker checks the study-wide trial cap before and after every ``ask``. Through Optuna's API that
is ``study.get_trials()``, which loads every running trial with its params, attributes and
intermediate values (6-13 ms per call on PostgreSQL here, growing with the number of workers),
only to count trials by state. Optuna has no count-by-state query, so on an ``RDBStorage`` these
are single ``COUNT`` queries on its ``trials`` table (through Optuna's own ORM models, as the
stale-trial sweep does); any other storage (the gRPC proxy) falls back to ``get_trials``.
"""

from __future__ import annotations

from typing import Any

from ._retry import with_retries as _with_retries


def _rdb(study: Any) -> Any | None:
    import optuna

    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in _CachedStorage
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def _count_by_state(backend: Any, study_id: int) -> dict[str, int]:
    from optuna.storages._rdb import models
    import sqlalchemy as sa

    session = backend.scoped_session()
    try:
        rows = (
            session.query(models.TrialModel.state, sa.func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id)
            .group_by(models.TrialModel.state)
            .all()
        )
        return {state.name: int(n) for state, n in rows}
    finally:
        session.close()


def _count_not_failed_before(backend: Any, study_id: int, number: int) -> int:
    from optuna.storages._rdb import models
    from optuna.trial import TrialState
    import sqlalchemy as sa

    session = backend.scoped_session()
    try:
        return int(
            session.query(sa.func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.number < number)
            .filter(models.TrialModel.state != TrialState.FAIL)
            .scalar()
        )
    finally:
        session.close()


# Direct queries, so retried as the storage's own calls are (storage._retry).
_count_by_state = _with_retries(_count_by_state)
_count_not_failed_before = _with_retries(_count_not_failed_before)


def trial_state_counts(study: Any) -> dict[str, int]:
    """Trials of ``study`` per state name (``{"COMPLETE": 7, "RUNNING": 2, ...}``)."""
    backend = _rdb(study)
    if backend is not None:
        return _count_by_state(backend, study._study_id)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def trials_ahead(study: Any, number: int) -> int:
    """How many trials numbered below ``number`` are not FAIL (finished, running or waiting)."""
    backend = _rdb(study)
    if backend is not None:
        return _count_not_failed_before(backend, study._study_id, number)
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number and t.state.name != "FAIL")


def set_user_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    """Write several user attributes of a running ``optuna.Trial`` in one transaction.

    Optuna writes one attribute per transaction; a trial's end writes four (history, best epoch,
    epochs run, seconds). On an RDB storage they share one session here, through Optuna's own
    per-attribute upsert; otherwise (a ``FixedTrial``, the gRPC proxy) they are written one by one.
    """
    import optuna

    backend = _rdb(trial.study) if isinstance(trial, optuna.Trial) else None
    if backend is None or not hasattr(backend, "set_trial_user_attrs"):
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        return
    backend.set_trial_user_attrs(trial._trial_id, attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)  # what Trial.set_user_attr does after its write

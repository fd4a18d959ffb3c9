"""A study-wide lock, and claiming a trial only while the study cap has room for it.

Under contention, checking the cap and then calling ``study.ask()`` let two workers both see one
free slot and both create a trial: the later one lay beyond the cap and was failed ("surplus"),
a FAIL row for something that never failed. Here the cap check and the trial's creation (or the
pop of a waiting retry) happen under one study-wide lock, so a trial beyond the cap is never
created. The other writes that change how many trials count against the cap (the stale sweep's
fail + re-enqueue, an interrupted trial's fail + re-enqueue) take the same lock.

The lock is the database's own where it has one, so it works across machines and dies with its
holder's connection (a worker killed with SIGKILL never leaves it held):

* PostgreSQL: ``pg_try_advisory_lock(key1, key2)``, session level, on a connection held for it;
* MySQL/MariaDB: ``GET_LOCK(name, 0)``, session level;
* SQLite: ``flock`` on ``FILE.hpsearch-lock`` beside the database file (SQLite studies are local:
  WAL needs a local file system);
* the gRPC proxy: no lock (``None``); the worker then falls back to marking a surplus trial.

Acquisition is bounded (``LOCK_WAIT_SECONDS``): a holder stopped with SIGSTOP must not stop every
other worker. After that wait the worker goes on without the lock, and a trial that then turns out
to lie beyond the cap is marked as surplus (PRUNED with the user attribute ``surplus``), never FAIL.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import logging
from pathlib import Path
import time
from typing import Any

_logger = logging.getLogger("hpsearch")

LOCK_WAIT_SECONDS = 30.0
SURPLUS_ATTR = "surplus"
_PG_NAMESPACE = 0x6870  # "hp": the first key of the two-key advisory lock; the second is the study id


def _backend(study: Any) -> Any:
    storage = study._storage
    return getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in _CachedStorage


@contextlib.contextmanager
def study_lock(study: Any, wait: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
    """Hold the study-wide lock; yields whether it is held (False: no lock here, or timed out)."""
    import optuna

    backend = _backend(study)
    if not isinstance(backend, optuna.storages.RDBStorage):
        yield False
        return
    dialect = backend.engine.dialect.name
    if dialect == "sqlite":
        with _file_lock(backend.engine.url.database, wait) as held:
            yield held
        return
    if dialect not in ("postgresql", "mysql", "mariadb"):
        yield False
        return
    try:
        conn = backend.engine.connect()
    except Exception as e:  # the database is down: the caller's next storage call says so, with retries
        _logger.debug("study lock: no connection (%s)", e)
        yield False
        return
    held = False
    try:
        held = _acquire_db_lock(conn, dialect, study._study_id, wait)
        if not held:
            _logger.warning("study lock not acquired within %.0f s; going on without it", wait)
        yield held
    finally:
        try:
            if held:
                _release_db_lock(conn, dialect, study._study_id)
        except Exception:  # the connection died: the server released the lock with it
            pass
        finally:
            conn.close()


def _mysql_name(study_id: int) -> str:
    return f"hpsearch_study_{study_id}"


def _acquire_db_lock(conn: Any, dialect: str, study_id: int, wait: float) -> bool:
    import sqlalchemy as sa

    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        if dialect == "postgresql":
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": _PG_NAMESPACE, "b": study_id}
            ).scalar()
        else:
            got = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": _mysql_name(study_id)}).scalar() == 1
        conn.commit()  # no transaction stays open while the lock is held
        if got:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _release_db_lock(conn: Any, dialect: str, study_id: int) -> None:
    import sqlalchemy as sa

    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"), {"a": _PG_NAMESPACE, "b": study_id})
    else:
        conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _mysql_name(study_id)})
    conn.commit()


@contextlib.contextmanager
def _file_lock(database: str | None, wait: float) -> Iterator[bool]:
    import fcntl

    if not database or database == ":memory:":
        yield False  # one process only: nothing to serialise against
        return
    path = Path(f"{database}.hpsearch-lock")
    try:
        fd = open(path, "a+")  # noqa: SIM115 - held across the yield
    except OSError:
        yield False
        return
    held = False
    try:
        deadline = time.monotonic() + wait
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield held
    finally:
        if held:
            fcntl.flock(fd.fileno(), fcntl.LOCK_UN)
        fd.close()


def claim_trial_id(study: Any, cap: int | None) -> tuple[int | None, bool]:
    """Under the study lock: pop a waiting trial, or create one if the cap leaves room.

    Returns ``(trial_id, within_cap)``; ``trial_id`` is None when every slot of the cap is taken
    (finished or running trials), so the caller waits or stops instead of creating a surplus
    trial. ``within_cap`` is True when the trial is known to lie within the cap (created under the
    lock after the check); otherwise (no lock, or a popped waiting retry) the caller checks it
    against the cap after the fact. This is ``Study.ask`` without its sampling (``optuna.Trial(study, id)``
    samples the relative params afterwards, outside the lock): ``_pop_waiting_trial_id``, then
    ``create_new_trial``.
    """
    from .storage import trial_state_counts

    with study_lock(study) as locked:
        study._thread_local.cached_all_trials = None  # what ask does: sync with the storage once per trial
        trial_id = study._pop_waiting_trial_id()
        if trial_id is None:
            if cap is not None:
                c = trial_state_counts(study)
                taken = c.get("COMPLETE", 0) + c.get("PRUNED", 0) + c.get("RUNNING", 0)
                if taken >= cap:
                    return None, False
            return study._storage.create_new_trial(study._study_id), locked
        return trial_id, False


def mark_surplus(study: Any, trial: Any, cap: int) -> Any:
    """End a trial that lies beyond the cap as PRUNED with the ``surplus`` attribute: not a failure.

    Reached only without the lock (the gRPC proxy, or the lock's wait ran out), or for a waiting
    retry enqueued beyond the cap. ``status``, ``studies`` and ``report`` leave such trials out.
    """
    import optuna

    trial.set_user_attr(SURPLUS_ATTR, True)
    trial.set_user_attr("fail_reason", None)
    trial.set_user_attr("note", f"surplus: the study cap of {cap} was reached by other workers; nothing failed")
    return study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)


def is_surplus(trial: Any) -> bool:
    return bool(trial.user_attrs.get(SURPLUS_ATTR))


def split_surplus(trials: list[Any]) -> tuple[list[Any], list[Any]]:
    """(the study's real trials, its surplus ones): what ``status``, ``studies`` and ``report`` show."""
    kept: list[Any] = []
    surplus: list[Any] = []
    for t in trials:
        (surplus if is_surplus(t) else kept).append(t)
    return kept, surplus

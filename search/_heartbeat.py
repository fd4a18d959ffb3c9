"""Heartbeat settings that cannot make workers fail each other's live trials.

A worker writes a heartbeat for its running trial every ``interval`` seconds; any worker's sweep
fails a RUNNING trial whose last heartbeat is older than that sweeper's ``grace period``. With
``--heartbeat-interval 60 --grace-period 5`` every live trial looked stale to the other worker for
55 of every 60 seconds: a 2-worker study failed 140 trials against 5 COMPLETE.

Rule: ``grace >= 2 * interval + margin``, ``margin = max(1, ceil(interval / 2))`` seconds.

* ``2 * interval``: one heartbeat write may be lost (a dropped connection, a database restart, a
  busy server) without the trial being failed; the next one must arrive in time.
* the margin: Optuna's heartbeat thread sleeps ``interval`` *after* each write, so the gap between
  two writes is the interval plus the write's own time (a pool checkout, a ping of an idle
  connection, a reconnect, the GIL held by the training loop). Half an interval lets that second
  write be late by half its period; it scales with the interval (a 30 s heartbeat may be 15 s
  late, a 1 s one 1 s), and at least 1 s covers the sub-second jitter of the shortest intervals.
  The defaults (30 s, 120 s) need 75 s; the tests' (1 s, 3 s) exactly 3 s.

The same rule holds *across* the workers of one study, since each worker's sweep judges every
other worker's heartbeats: the study records the largest interval and the smallest grace period
any of its workers used (user attribute ``heartbeat``), and a worker whose settings break the rule
against that record exits 2 before it runs a trial. The record is read and written under the
study lock (``_claim.study_lock``), so two first workers cannot both record incompatible values.
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import UsageError

STUDY_ATTR = "heartbeat"
MAX_HEARTBEAT_SECONDS = 86_400  # a day: beyond that, a lost worker's trial would sit RUNNING for days


def min_grace_period(interval: int) -> int:
    """The smallest grace period that is safe with heartbeats every ``interval`` seconds."""
    return 2 * interval + max(1, math.ceil(interval / 2))


def max_interval_for(grace: int) -> int:
    """The largest heartbeat interval that is safe with ``grace`` (0 if none is)."""
    i = max(0, grace // 2)
    while i > 0 and min_grace_period(i) > grace:
        i -= 1
    return i


def _good_pairs(interval: int, grace: int) -> str:
    pairs = [f"--heartbeat-interval {interval} --grace-period {min_grace_period(interval)}"]
    i = max_interval_for(grace)
    if i >= 1:
        pairs.append(f"--heartbeat-interval {i} --grace-period {grace}")
    return " or ".join(pairs)


def check_heartbeat(interval: int | None, grace: int | None) -> None:
    """Raise ``UsageError`` (exit 2) naming both values and a good pair, unless the pair is safe."""
    if interval is None or grace is None:
        return
    for flag, value in (("--heartbeat-interval", interval), ("--grace-period", grace)):
        if value > MAX_HEARTBEAT_SECONDS:
            raise UsageError(f"{flag} {value} is more than {MAX_HEARTBEAT_SECONDS} s (a day); use a smaller value")
    need = min_grace_period(interval)
    if grace < need:
        raise UsageError(
            f"--grace-period {grace} is too short for --heartbeat-interval {interval}: a grace period must be "
            f"at least 2 x the interval + max(1, interval/2) = {need} s, else other workers fail this worker's "
            f"live trials as stale; use {_good_pairs(interval, grace)}"
        )


def check_heartbeat_args(args: Any) -> None:
    """``check_heartbeat`` for a parsed command line that has the heartbeat flags."""
    check_heartbeat(getattr(args, "heartbeat_interval", None), getattr(args, "grace_period", None))


def reconcile_with_study(study: Any, interval: int, grace: int) -> None:
    """Check this worker's pair against the study's record, then widen the record to include it."""
    from ._claim import study_lock

    check_heartbeat(interval, grace)
    with study_lock(study):
        record = study._storage.get_study_user_attrs(study._study_id).get(STUDY_ATTR)  # read under the lock
        if isinstance(record, dict):
            rec_i = int(record.get("max_interval", interval))
            rec_g = int(record.get("min_grace_period", grace))
            worst_i, worst_g = max(interval, rec_i), min(grace, rec_g)
            if worst_g < min_grace_period(worst_i):
                raise UsageError(
                    f"--heartbeat-interval {interval} --grace-period {grace} conflicts with study "
                    f"{study.study_name!r}, whose workers use heartbeat intervals up to {rec_i} s and grace "
                    f"periods down to {rec_g} s: together they need a grace period of at least "
                    f"{min_grace_period(worst_i)} s, else workers fail each other's live trials; use the "
                    f"study's --heartbeat-interval {rec_i} --grace-period {max(rec_g, min_grace_period(rec_i))}"
                )
            if (worst_i, worst_g) == (rec_i, rec_g):
                return
        else:
            worst_i, worst_g = interval, grace
        study.set_user_attr(STUDY_ATTR, {"max_interval": worst_i, "min_grace_period": worst_g})

"""Changing a study's cap on finished trials after the fact (``hpsearch extend``, and ``run
--n-trials`` on an existing study).

The cap is ``n_trials`` in the study's ``settings`` user attribute; each change is appended to
the ``cap_history`` user attribute (from, to, finished trials then, when, by which command).
Workers read the cap when they start: workers started after a change run up to the new cap.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from datetime import timezone
from typing import Any

from ._errors import UsageError
from ._study import SETTINGS_KEY
from ._study import StudySettings

CAP_HISTORY_KEY = "cap_history"
FINISHED = ("COMPLETE", "PRUNED")


def finished_trials(study: Any) -> int:
    from .storage import trial_state_counts

    counts = trial_state_counts(study)
    return sum(counts.get(s, 0) for s in FINISHED)


def new_cap(study: Any, settings: StudySettings, *, n_trials: int | None, add: int | None) -> tuple[int, int]:
    """(the requested cap, finished trials now); ``UsageError`` for a cap below the finished count."""
    finished = finished_trials(study)
    if add is not None:
        cap = (settings.n_trials if settings.n_trials is not None else finished) + add
    elif n_trials is not None:
        cap = n_trials
    else:
        raise UsageError("give the new cap, --n-trials N, or the trials to add, --add K")
    if cap < finished:
        raise UsageError(
            f"study {study.study_name!r} already has {finished} finished trials, more than a cap of {cap}; "
            f"give --n-trials {finished} or more"
        )
    return cap, finished


def set_cap(study: Any, settings: StudySettings, cap: int, finished: int, *, by: str) -> StudySettings:
    """Write the new cap into the study's settings and log the change in ``cap_history``."""
    history = list(study.user_attrs.get(CAP_HISTORY_KEY) or [])
    history.append(
        {
            "from": settings.n_trials,
            "to": cap,
            "finished": finished,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "by": by,
        }
    )
    new = replace(settings, n_trials=cap)
    study.set_user_attr(CAP_HISTORY_KEY, history)
    study.set_user_attr(SETTINGS_KEY, new.to_attr())
    return new

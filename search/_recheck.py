"""Re-measuring the top configurations before one is picked (``hpsearch recheck``, ``export``).

Why: a trial's value is its best validation accuracy over the epochs of one training run. With
training noise (seed, data order) and a small validation split (mnist_mlp on the t10k data: 1,000
images, a binomial sd of ~0.007 at 0.95), the trial ``study.best_trial`` names is the luckiest
measurement, often of a configuration worth less than a runner-up: the winner's curse. On the
replay benchmark (BENCHMARKS.md, 2026-12-05) the search's pick was never worth more than the seed
baseline's own configuration, and less in 95 of 100 seeds, though it beat the baseline's measured
value in 91 %.

What: ``enqueue_rechecks`` enqueues the ``top`` best configurations again (``repeats`` times each)
with ``Study.enqueue_trial`` and the user attribute ``recheck_of`` (the original trial's number),
and raises the study's cap by as many trials (as ``extend`` would), so that any worker trains
them next. A worker trains a recheck for all of the study's epochs, never pruned, with its own
seed (the trial's number). ``pick`` is what ``export``, ``status`` and the summaries use: once a
configuration has a COMPLETE recheck, the pick is the rechecked configuration whose mean
validation curve over its runs (the original's included) is best, read as the study reads a trial's
value (the best mean of ``value_window`` consecutive epochs, settings version 4; the best epoch in
older studies), and its best epoch the last of that window; before any recheck,
``study.best_trial``. Optuna has no notion of repeated measurements of one configuration (its
``best_trial`` is the single best value), hence this module.

Live (settings ``live_recheck``, stop 33): while the search runs, each COMPLETE trial that becomes the
best by value among the search's own trials is enqueued once more (``enqueue_live_recheck``), within
the study's cap: the re-measurement takes a slot of the search, as it takes time from it on the
replay benchmark that chose it. In such a study the pick is ``best_trial`` (of the search's own
trials) until that trial's recheck ends, then the rechecked configuration whose mean curve is best:
a new lead is picked at once, and corrected by its second measurement (the *eager* rule, version 5).
From settings version 6 (stop 35) that comparison is narrower: once the lead's recheck ends, the
pick is the lead or a re-measured *baseline* (a seed or ``--baseline`` configuration, user attribute
``baseline``), whichever mean curve is best; earlier leads of the search no longer compete. Why: a
baseline is known good before the search, while the search's earlier leads are near-equal draws
that the lead displaced, and going back to one of them on a second noisy measurement is a bet on
noise. Over the same replayed searches this rule was worth more than the eager rule in every case
scored (BENCHMARKS.md, notes of stops 34 and 35). Live rechecks carry ``live_recheck`` besides
``recheck_of``; once ``hpsearch recheck`` has re-measured the top configurations on request, every
re-measured configuration competes again, as in a study without live recheck.

From settings version 7 (stop 38) a live recheck needs time: a worker with a deadline (``worker
--timeout``) enqueues one only while its time left is at least ``LIVE_HEADROOM`` times the lead's own
training time. Why: the recheck is one more full training of the lead, taken from the search; where the
budget holds few trainings (CIFAR-10 on a slow CPU, stop 37: the first complete trial's recheck took 40 %
of the training time), it costs more than its measurement is worth. A baseline (user attribute
``baseline``) that leads is re-measured whatever the time left: its recheck is what lets the pick go
back to it when a later lead's own recheck falls short, the comparison that gains with baselines.
Without a deadline (a trial cap only) a recheck still needs a free slot in the cap, as before.

From settings version 8 (stop 39) the search's first complete trial is not re-measured for leading
(a baseline still is): it leads because nothing else has finished, and its recheck, one more full
training, re-measures a configuration compared with nothing yet. Where the budget holds a few
trainings that training is a large share of the search (BENCHMARKS.md, notes of stop 39).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
import json
import logging
import math
from typing import Any

from ._errors import UsageError

_logger = logging.getLogger("hpsearch")

RECHECK_ATTR = "recheck_of"
# Marks a recheck that ``enqueue_live_recheck`` enqueued (from settings version 6), as against one
# asked for by ``hpsearch recheck``.
LIVE_ATTR = "live_recheck"
# The setting measured on the replay benchmark (BENCHMARKS.md, stop 24): the 5 best, 2 more runs each.
DEFAULT_TOP = 5
DEFAULT_REPEATS = 2
# Settings version 7: a live recheck only while the worker's time left is at least this many times the
# lead's training time (module doc; chosen on the replay benchmark, BENCHMARKS.md notes of stop 38).
LIVE_HEADROOM = 5.0


def is_recheck(trial: Any) -> bool:
    return trial.user_attrs.get(RECHECK_ATTR) is not None


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def candidates(study: Any, top: int) -> list[Any]:
    """The ``top`` best COMPLETE trials of distinct params (by value, earliest of equals), rechecks
    and surplus trials left out: the configurations a recheck retrains."""
    import optuna

    from ._claim import is_surplus

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ranked = sorted(
        (t for t in trials if not is_recheck(t) and not is_surplus(t) and t.value is not None),
        key=lambda t: (-t.value, t.number),
    )
    out: list[Any] = []
    seen: set[str] = set()
    for t in ranked:
        k = _key(t.params)
        if k not in seen:
            seen.add(k)
            out.append(t)
        if len(out) == top:
            break
    return out


def enqueue_rechecks(study: Any, *, top: int, repeats: int) -> tuple[list[int], int, int]:
    """Enqueue ``repeats`` rechecks of each of the ``top`` best configurations and raise the cap by
    as many. Returns (the original trials' numbers, the number enqueued, the new cap or -1 where the
    study has no cap). ``UsageError`` (nothing written) where the study has no COMPLETE trial."""
    from ._claim import study_lock
    from ._extend import finished_trials
    from ._extend import set_cap
    from ._study import read_settings

    if top < 1 or repeats < 1:
        raise UsageError("--top and --repeats must be 1 or more")
    chosen = candidates(study, top)
    if not chosen:
        raise UsageError(
            f"study {study.study_name!r} has no COMPLETE trial to recheck; run `hpsearch worker --study "
            f"{study.study_name}` first"
        )
    n = len(chosen) * repeats
    with study_lock(study):
        # The cap first: a recheck enqueued beyond the cap would be marked surplus, never trained.
        current = read_settings(study)
        cap = -1
        if current.n_trials is not None:
            cap = current.n_trials + n
            set_cap(study, current, cap, finished_trials(study), by="recheck")
        for _ in range(repeats):
            for t in chosen:
                study.enqueue_trial(t.params, user_attrs={RECHECK_ATTR: t.number})
    return [t.number for t in chosen], n, cap


def training_seconds(trial: Any) -> float | None:
    """How long ``trial`` took, start to end (its training, data loading included); None if unknown."""
    start, end = trial.datetime_start, trial.datetime_complete
    return None if start is None or end is None else max((end - start).total_seconds(), 0.0)


def enqueue_live_recheck(
    study: Any, frozen: Any, *, time_left: float | None = None, say: Callable[[str], None] | None = None
) -> int | None:
    """After ``frozen`` completed in a ``live_recheck`` study: when it is the best of the search's own
    COMPLETE trials (rechecks and surplus trials left out; the first of equals stays best) and the
    study's cap leaves a slot, enqueue it once more, unpruned, for the next free worker. Returns the
    recheck's trial number, else None. Under the study lock, so that two workers finishing at once
    compare against each other's trials. ``time_left``: the seconds before the calling worker's
    deadline (None: no deadline); from settings version 7, a lead whose training took more than
    ``time_left / LIVE_HEADROOM`` is not re-measured unless it is a baseline, and from version 8 nor is
    the search's first complete trial (module doc). ``say``: where the line that explains such a skip
    goes (a worker prints it beside its trial lines); None: the ``hpsearch`` logger at INFO."""
    import optuna

    from ._claim import is_surplus
    from ._claim import study_lock

    if frozen.state != optuna.trial.TrialState.COMPLETE or frozen.value is None or is_recheck(frozen):
        return None
    from ._study import read_settings

    with study_lock(study):
        trials = study.get_trials(deepcopy=False)
        others = 0  # the search's own COMPLETE trials besides this one
        for t in trials:
            if t.state != optuna.trial.TrialState.COMPLETE or t.number == frozen.number or t.value is None:
                continue
            if not is_recheck(t) and not is_surplus(t):
                others += 1
                if t.value > frozen.value or (t.value == frozen.value and t.number < frozen.number):
                    return None
        # The worker that pops it runs it only within the cap (``Worker._surplus``: fewer than ``cap``
        # trials ahead of it that are not FAIL); with no slot left the search is over: not enqueued.
        settings = read_settings(study)
        cap = settings.n_trials
        if cap is not None and sum(1 for t in trials if t.state != optuna.trial.TrialState.FAIL) >= cap:
            return None
        took = training_seconds(frozen)
        baseline = frozen.user_attrs.get("baseline") is not None  # spared: module doc
        skip = None
        if settings.version >= 8 and not baseline and others == 0:
            skip = "it is the only complete trial yet"
        elif (
            settings.version >= 7
            and not baseline
            and time_left is not None
            and took is not None
            and time_left < LIVE_HEADROOM * took
        ):
            skip = f"{max(time_left, 0.0):.0f} s left, less than {LIVE_HEADROOM:g} x its {took:.0f} s"
        if skip is not None:
            line = f"trial {frozen.number} leads the search; not trained again: {skip}"
            if say is None:
                _logger.info(line)
            else:
                say(line)
            return None
        study.enqueue_trial(frozen.params, user_attrs={RECHECK_ATTR: frozen.number, LIVE_ATTR: True})
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return max(t.number for t in waiting if t.user_attrs.get(RECHECK_ATTR) == frozen.number)


@dataclass(frozen=True)
class Pick:
    """The configuration ``export`` writes: its first trial, the value and best epoch ``export``
    reports, and the trials measured (one: no recheck; more: the value is their mean curve's)."""

    trial: Any
    value: float
    best_epoch: int | None
    trials: list[int] = field(default_factory=list)

    @property
    def measurements(self) -> int:
        return len(self.trials)


def _curve(trial: Any) -> list[float] | None:
    hist = (trial.user_attrs.get("history") or {}).get("val_accuracy")
    if not hist:
        return None
    return [v if v is not None and math.isfinite(v) else 0.0 for v in hist]


def pick(study: Any) -> Pick | None:
    """The pick (module doc); None before any COMPLETE trial."""
    import optuna

    from ._claim import is_surplus

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not is_surplus(t) and t.value is not None
    ]
    if not complete:
        return None
    by_number = {t.number: t for t in complete}
    groups: dict[int, list[Any]] = {}
    for t in complete:
        if is_recheck(t) and int(t.user_attrs[RECHECK_ATTR]) in by_number:
            groups.setdefault(int(t.user_attrs[RECHECK_ATTR]), []).append(t)
    from ._study import SETTINGS_KEY
    from ._study import StudySettings

    attr = study.user_attrs.get(SETTINGS_KEY)
    settings = StudySettings.from_attr(attr) if isinstance(attr, dict) and "task" in attr else None
    if settings is not None and settings.live_recheck:
        # A live-recheck study: the search's lead (the first of its best, as enqueue_live_recheck reads
        # it) stands until its own recheck ends.
        own = [t for t in complete if not is_recheck(t)]
        lead = max(own, key=lambda t: (t.value, -t.number)) if own else None
        if lead is not None and lead.number not in groups:
            return Pick(lead, float(lead.value), lead.user_attrs.get("best_epoch"), [lead.number])
        asked = any(not t.user_attrs.get(LIVE_ATTR) for g in groups.values() for t in g)
        if settings.version >= 6 and lead is not None and not asked:
            # Version 6: the lead against the re-measured baselines only (module doc).
            groups = {
                o: g
                for o, g in groups.items()
                if o == lead.number or by_number[o].user_attrs.get("baseline") is not None
            }
    if not groups:
        best = study.best_trial
        return Pick(best, float(best.value), best.user_attrs.get("best_epoch"), [best.number])
    from ._objective import windowed_best

    window = (settings.value_window if settings else None) or 1
    scored = []
    for origin, rechecks in groups.items():
        runs = [by_number[origin], *sorted(rechecks, key=lambda t: t.number)]
        curves = [_curve(t) for t in runs]
        if all(c for c in curves):
            n = min(len(c) for c in curves if c)
            mean = [sum(c[i] for c in curves if c) / len(curves) for i in range(n)]
            # The study's own reading of a curve (the earliest window of the best mean); finite here.
            value, end = windowed_best(list(mean), window) or (max(mean), mean.index(max(mean)) + 1)
            epoch: int | None = end
        else:  # a trial without a recorded history (not one of hpsearch's): the mean of the values
            value = sum(float(t.value) for t in runs) / len(runs)
            epoch = by_number[origin].user_attrs.get("best_epoch")
        scored.append((value, -origin, Pick(by_number[origin], value, epoch, [t.number for t in runs])))
    return max(scored, key=lambda s: (s[0], s[1]))[2]


def pick_line(p: Pick) -> str:
    """``trial 12 value=0.9512 best_epoch=7``, and how it was measured where rechecked."""
    from ._summary import fmt

    text = f"trial {p.trial.number} value={fmt(p.value)} best_epoch={p.best_epoch if p.best_epoch else '-'}"
    if p.measurements > 1:
        text += f" (mean of {p.measurements} runs: trials {', '.join(map(str, p.trials))})"
    return text

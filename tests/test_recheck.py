"""``hpsearch recheck``: the top configurations trained again, and ``export`` picking by their mean."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from conftest import hpsearch
import optuna
import pytest

from hpsearch._recheck import LIVE_HEADROOM
from hpsearch._recheck import RECHECK_ATTR
from hpsearch._recheck import enqueue_live_recheck
from hpsearch._recheck import enqueue_rechecks
from hpsearch._recheck import pick
from hpsearch._study import FORMAT_VERSION
from hpsearch._study import SETTINGS_KEY
from hpsearch._study import StudySettings
from hpsearch._study import create_study
from hpsearch._study import read_settings
from hpsearch.storage import open_storage

DIST = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)


def _trial(study: optuna.Study, lr: float, curve: list[float], **attrs: object) -> None:
    study.add_trial(
        optuna.create_trial(
            params={"learning_rate": lr},
            distributions={"learning_rate": DIST},
            value=max(curve),
            user_attrs={"history": {"val_accuracy": curve}, "best_epoch": curve.index(max(curve)) + 1, **attrs},
        )
    )


def _study(
    url: str, name: str, cap: int | None = 10, live: bool | None = None, version: int | None = None
) -> optuna.Study:
    settings = StudySettings(task="digits", n_trials=cap, baselines=False, live_recheck=live)
    if version is not None:  # an older settings version's rules
        settings = dataclasses.replace(settings, version=version)
    study, created = create_study(open_storage(url, create_tables=True), name, settings, url=url)
    assert created
    return study


def test_recheck_enqueues_the_top_distinct_configurations_and_export_picks_by_their_mean(
    storage_url: str, study_name: str
) -> None:
    study = _study(storage_url, study_name)
    _trial(study, 0.01, [0.90, 0.99])  # trial 0: one lucky epoch
    _trial(study, 0.003, [0.95, 0.95])  # trial 1
    _trial(study, 0.01, [0.91, 0.97])  # trial 2: trial 0's configuration again, not a second candidate
    _trial(study, 0.0001, [0.50, 0.60])  # trial 3
    assert pick(study).trial.number == 0  # type: ignore[union-attr]  # before a recheck: best_trial

    numbers, n, cap = enqueue_rechecks(study, top=2, repeats=1)
    assert numbers == [0, 1] and n == 2 and cap == 12
    assert read_settings(study).n_trials == 12 and study.user_attrs["cap_history"][-1]["by"] == "recheck"
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"]["learning_rate"], t.user_attrs[RECHECK_ATTR]) for t in waiting] == [
        (0.01, 0),
        (0.003, 1),
    ]
    assert pick(study).trial.number == 0  # type: ignore[union-attr]  # waiting rechecks change nothing yet

    # The rechecks' runs: trial 0's configuration measures 0.80-0.85 again, trial 1's 0.94-0.96.
    for curve in ([0.80, 0.85], [0.94, 0.96]):
        trial = study.ask()  # pops the waiting rechecks in order, as a worker would
        trial.set_user_attr("history", {"val_accuracy": curve})
        study.tell(trial, max(curve))
    chosen = pick(study)
    assert chosen is not None
    # Means: trial 0's configuration [0.85, 0.92], trial 1's [0.945, 0.955], each read as the study
    # reads a trial (settings version 4: the best mean of 3 consecutive epochs, here both epochs):
    # 0.885 and 0.95: trial 1, its window ending at epoch 2.
    assert read_settings(study).value_window == 3
    assert chosen.trial.number == 1 and chosen.best_epoch == 2 and chosen.trials == [1, 5]
    assert chosen.value == pytest.approx(0.95)


def test_the_pick_of_rechecked_configurations_reads_their_mean_curve_with_the_study_value_window(
    storage_url: str, study_name: str
) -> None:
    """A one-epoch spike in the mean curve wins under window 1 (a study of versions 1-3) and loses
    under window 3 (version 4) to a configuration steady over three epochs."""
    study = _study(storage_url, study_name)
    _trial(study, 0.01, [0.80, 0.97, 0.80, 0.80])  # trial 0: one spike
    _trial(study, 0.003, [0.93, 0.94, 0.95, 0.94])  # trial 1: steady
    enqueue_rechecks(study, top=2, repeats=1)
    for curve in ([0.80, 0.97, 0.80, 0.80], [0.93, 0.94, 0.95, 0.94]):
        trial = study.ask()
        trial.set_user_attr("history", {"val_accuracy": curve})
        study.tell(trial, max(curve))
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 1
    assert chosen.value == pytest.approx(0.9433333) and chosen.best_epoch == 4  # epochs 2-4
    attr = dict(study.user_attrs["settings"], value_window=1)
    study.set_user_attr("settings", attr)
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 0
    assert chosen.value == pytest.approx(0.97) and chosen.best_epoch == 2


def test_recheck_of_a_study_without_a_complete_trial_is_refused_and_writes_nothing(
    tmp_path: Path, study_name: str
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study = _study(url, study_name, cap=5)
    before = (len(study.trials), study.user_attrs)
    r = hpsearch("recheck", "--study", study_name, "--storage", url, check=False, cwd=tmp_path)
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "no COMPLETE trial" in err[0] and f"hpsearch worker --study {study_name}" in err[0]
    study = optuna.load_study(study_name=study_name, storage=url)
    assert (len(study.trials), study.user_attrs) == before


def test_a_recheck_trains_every_epoch_unpruned_and_export_writes_the_mean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    # `run --recheck 2`: the search, then the two best configurations twice more each, one summary.
    run = hpsearch(
        *("run", "--task", "digits", "--study", "demo", "--n-trials", "4", "--max-epochs", "3", "--storage", url),
        *("--recheck", "2"),
        cwd=tmp_path,
    ).stdout
    assert "recheck: " in run and run.count("done in ") == 1 and "pick (export): trial" in run
    # One summary for both passes: it counts the search's trials and the rechecks, and the worker's
    # pid line is not repeated by the second pass.
    n_run = len(optuna.load_study(study_name="demo", storage=url).trials)
    assert n_run > 4 and "done in " in run and f": {n_run} trial(s) run here, " in run
    assert run.count("worker pid ") == 1 and run.count("worker done: ") == 2
    # `hpsearch recheck` + a worker: the best single run's configuration once more.
    out = hpsearch("recheck", "--study", "demo", "--top", "1", "--repeats", "1", "--storage", url, cwd=tmp_path).stdout
    assert "1 recheck(s) of trial(s)" in out and "cap raised to" in out and "hpsearch worker --study demo" in out
    w = hpsearch("worker", "--study", "demo", "--storage", url, cwd=tmp_path).stdout
    study = optuna.load_study(study_name="demo", storage=url)
    rechecks = [t for t in study.trials if t.user_attrs.get(RECHECK_ATTR) is not None]
    assert len(rechecks) >= 2 and all(t.state.name == "COMPLETE" for t in rechecks)
    assert all(t.user_attrs["epochs_run"] == 3 for t in rechecks)  # never pruned
    assert f"recheck_of={rechecks[-1].user_attrs[RECHECK_ATTR]}" in w
    hpsearch("export", "--study", "demo", "-o", "best.json", "--storage", url, cwd=tmp_path)
    doc = json.loads((tmp_path / "best.json").read_text())
    origin = study.trials[doc["trial"]]
    runs = [origin, *(t for t in rechecks if t.user_attrs[RECHECK_ATTR] == origin.number)]
    assert doc["measured_by"] == [t.number for t in runs] and len(runs) >= 2
    curves = [t.user_attrs["history"]["val_accuracy"] for t in runs]
    mean = [sum(v) / len(v) for v in zip(*curves)]
    # --max-epochs 3: the study's value window is 3, the whole mean curve.
    assert doc["value"] == pytest.approx(sum(mean) / 3) and doc["best_epoch"] == 3
    assert doc["params"] == origin.params
    # Every other rechecked configuration's mean is no better.
    for o in {t.user_attrs[RECHECK_ATTR] for t in rechecks} - {origin.number}:
        group = [study.trials[o], *(t for t in rechecks if t.user_attrs[RECHECK_ATTR] == o)]
        curves = [t.user_attrs["history"]["val_accuracy"] for t in group]
        assert sum(sum(v) / len(v) for v in zip(*curves)) / 3 <= doc["value"] + 1e-12
    status = hpsearch("status", "--study", "demo", "--storage", url, cwd=tmp_path).stdout
    assert "pick (export): trial" in status and f"recheck of {origin.number}" in status
    hpsearch("report", "--study", "demo", "-o", "r.html", "--storage", url, cwd=tmp_path)
    html = (tmp_path / "r.html").read_text()
    assert "<th>export&#x27;s pick (rechecked)</th>" in html
    assert f"trial {origin.number} value=" in html


def test_run_recheck_with_nothing_to_recheck_still_ends_with_the_summary(tmp_path: Path) -> None:
    # A search pass that ran no trial (its time spent at once): nothing to recheck, said, and the
    # summary the search pass held back is printed all the same.
    url = f"sqlite:///{tmp_path / 'x.db'}"
    run = hpsearch(
        *("run", "--task", "digits", "--study", "d", "--n-trials", "2", "--timeout", "0.001", "--storage", url),
        *("--recheck", "2"),
        cwd=tmp_path,
    ).stdout
    assert "recheck: no COMPLETE trial to recheck" in run
    assert "done in " in run and ": 0 trial(s) run here, " in run and "best: none yet" in run
    assert "hpsearch recheck" not in run  # nothing to recheck yet: not suggested


# -- live recheck (settings versions 5 and 6): each new lead of the search trained once more as it runs -----
def test_live_recheck_enqueues_each_new_lead_once_and_the_pick_waits_for_its_recheck(
    storage_url: str, study_name: str
) -> None:
    # Version 7's rules: from version 8 the first complete trial is not re-measured (the test below).
    study = _study(storage_url, study_name, live=True, version=7)
    assert read_settings(study).live_recheck is True and read_settings(study).version == 7

    def done(lr: float, curve: list[float], **attrs: object) -> optuna.trial.FrozenTrial:
        _trial(study, lr, curve, **attrs)
        return study.trials[-1]

    first = done(0.01, [0.90, 0.99])  # trial 0: the first lead
    assert enqueue_live_recheck(study, first) == 1  # enqueued as trial 1, waiting
    assert enqueue_live_recheck(study, done(0.003, [0.95, 0.96])) is None  # trial 2: below the lead
    assert enqueue_live_recheck(study, done(0.002, [0.97, 0.99])) is None  # trial 3: equal, later: not a lead
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [(t.number, t.user_attrs[RECHECK_ATTR], t.system_attrs["fixed_params"]) for t in waiting] == [
        (1, 0, {"learning_rate": 0.01})
    ]
    # Until the lead's own recheck ends, the pick is the lead itself (one measurement).
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 0 and chosen.measurements == 1
    # Its recheck runs (a worker pops it) and measures it lower: the lead's mean curve is
    # [0.85, 0.92], and a recheck, though COMPLETE, is never a lead itself.
    trial = study.ask()
    assert trial.number == 1 and trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True) == 0.01
    trial.set_user_attr("history", {"val_accuracy": [0.80, 0.85]})
    recheck = study.tell(trial, 0.85)
    assert enqueue_live_recheck(study, recheck) is None
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 0 and chosen.trials == [0, 1]
    assert chosen.value == pytest.approx(0.885)
    # A new lead (trial 4) is picked at once, before its recheck (trial 5) ends.
    assert enqueue_live_recheck(study, done(0.004, [0.96, 0.995])) == 5
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 4 and chosen.measurements == 1
    # A pruned trial is never a lead.
    study.add_trial(
        optuna.create_trial(
            params={"learning_rate": 0.05},
            distributions={"learning_rate": DIST},
            state=optuna.trial.TrialState.PRUNED,
            intermediate_values={1: 0.999},
        )
    )
    assert enqueue_live_recheck(study, study.trials[-1]) is None
    # With no slot left in the cap the search is over: nothing is enqueued (a worker would mark it
    # surplus, or it would wait forever).
    full = _study(storage_url, study_name + "_full", cap=1, live=True, version=7)
    _trial(full, 0.01, [0.90])
    assert enqueue_live_recheck(full, full.trials[-1]) is None and len(full.trials) == 1


def test_live_pick_compares_the_lead_with_rechecked_baselines_only_from_version_6(
    storage_url: str, study_name: str
) -> None:
    settings = StudySettings(task="digits", n_trials=10, baselines=False, live_recheck=True, value_window=1)
    study = create_study(open_storage(storage_url, create_tables=True), study_name, settings, url=storage_url)[0]

    def done(lr: float, curve: list[float], **attrs: object) -> optuna.trial.FrozenTrial:
        _trial(study, lr, curve, **attrs)
        return study.trials[-1]

    def recheck(curve: list[float]) -> None:  # a worker pops the waiting recheck and trains it
        trial = study.ask()
        assert trial.user_attrs[RECHECK_ATTR] is not None
        trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        trial.set_user_attr("history", {"val_accuracy": curve})
        study.tell(trial, max(curve))

    assert enqueue_live_recheck(study, done(0.01, [0.90, 0.96], baseline=0)) == 1  # the seed baseline leads
    recheck([0.95, 0.97])  # trial 1: its mean curve [0.925, 0.965]
    assert enqueue_live_recheck(study, done(0.003, [0.93, 0.97])) == 3  # trial 2 leads
    recheck([0.95, 0.97])  # trial 3: trial 2's mean [0.94, 0.97], the best mean of all
    assert study.trials[3].user_attrs["live_recheck"] is True
    assert enqueue_live_recheck(study, done(0.002, [0.95, 0.985])) == 5  # trial 4 leads
    recheck([0.93, 0.94])  # trial 5: trial 4's mean [0.94, 0.9625]
    # Version 6: the lead (0.9625) against the re-measured baseline (0.965); trial 2, an earlier lead
    # of the search, no longer competes though its mean (0.97) is best.
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 0 and chosen.trials == [0, 1]
    assert chosen.value == pytest.approx(0.965)
    # A version-5 study keeps the eager rule: the best mean of every re-measured configuration.
    attr = dict(study.user_attrs[SETTINGS_KEY])
    study.set_user_attr(SETTINGS_KEY, {**attr, "version": 5})
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 2 and chosen.value == pytest.approx(0.97)
    study.set_user_attr(SETTINGS_KEY, attr)
    # Once `hpsearch recheck` re-measures on request, every re-measured configuration competes again.
    assert enqueue_rechecks(study, top=1, repeats=1)[0] == [4]
    recheck([0.90, 0.95])  # trial 6: trial 4's third run, its mean [0.927, 0.958]
    chosen = pick(study)
    assert chosen is not None and chosen.trial.number == 2 and "live_recheck" not in study.trials[6].user_attrs


def test_live_recheck_needs_time_left_from_version_7(storage_url: str, study_name: str) -> None:
    """Version 7: a worker with a deadline re-measures a lead only while its time left is at least
    LIVE_HEADROOM times the lead's training time; a baseline that leads, without a deadline, and in a
    version-6 study, always."""
    from datetime import datetime
    from datetime import timedelta

    study = _study(storage_url, study_name, live=True, version=7)
    start = datetime(2026, 12, 7, 12, 0, 0)

    def done(lr: float, value: float, seconds: float, **attrs: object) -> optuna.trial.FrozenTrial:
        study.add_trial(
            optuna.create_trial(
                params={"learning_rate": lr},
                distributions={"learning_rate": DIST},
                value=value,
                user_attrs={"history": {"val_accuracy": [value]}, "best_epoch": 1, **attrs},
            )
        )
        frozen = study.trials[-1]
        # A trial added whole has one time stamp; a worker's trial runs from its start to its end.
        frozen.datetime_start, frozen.datetime_complete = start, start + timedelta(seconds=seconds)
        return frozen

    said: list[str] = []
    lead = done(0.01, 0.90, 100.0)  # trained 100 s
    left = LIVE_HEADROOM * 100.0 - 1  # too little time
    assert enqueue_live_recheck(study, lead, time_left=left, say=said.append) is None
    assert said == [f"trial 0 leads the search; not trained again: {left:.0f} s left, less than 5 x its 100 s"]
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert enqueue_live_recheck(study, lead, time_left=LIVE_HEADROOM * 100.0, say=said.append) == 1  # just enough
    assert len(said) == 1  # nothing said for a lead that is re-measured
    lead = done(0.003, 0.95, 100.0)  # trial 2, a new lead
    assert enqueue_live_recheck(study, lead, time_left=None) == 3  # no deadline: re-measured
    lead = done(0.03, 0.97, 100.0, baseline=0)  # trial 4: a baseline leads
    assert enqueue_live_recheck(study, lead, time_left=1.0) == 5  # re-measured whatever the time left
    # A version-6 study re-measures any lead whatever the time left (as it always did).
    attr = dict(study.user_attrs[SETTINGS_KEY])
    study.set_user_attr(SETTINGS_KEY, {**attr, "version": 6})
    lead = done(0.002, 0.98, 100.0)  # trial 6
    assert enqueue_live_recheck(study, lead, time_left=1.0) == 7


def test_from_version_8_the_first_complete_trial_is_not_rechecked_for_leading(
    storage_url: str, study_name: str
) -> None:
    """Version 8: the search's first complete trial leads because nothing else has finished; it is
    not re-measured (a baseline is). A later lead is, under version 7's time rule."""
    from datetime import datetime
    from datetime import timedelta

    study = _study(storage_url, study_name, live=True)
    assert read_settings(study).version == FORMAT_VERSION == 8

    def done(lr: float, value: float, seconds: float = 10.0, **attrs: object) -> optuna.trial.FrozenTrial:
        _trial(study, lr, [value], **attrs)
        frozen = study.trials[-1]
        start = datetime(2026, 12, 7, 12, 0, 0)
        frozen.datetime_start, frozen.datetime_complete = start, start + timedelta(seconds=seconds)
        return frozen

    said: list[str] = []
    assert enqueue_live_recheck(study, done(0.01, 0.90), say=said.append) is None  # trial 0: the only one
    assert said == ["trial 0 leads the search; not trained again: it is the only complete trial yet"]
    assert enqueue_live_recheck(study, done(0.003, 0.80), say=said.append) is None  # trial 1: below the lead
    assert len(said) == 1  # a trial that does not lead is not mentioned
    assert enqueue_live_recheck(study, done(0.002, 0.95)) == 3  # trial 2: a lead among 3
    lead = done(0.001, 0.97, seconds=100.0)  # trial 4
    assert enqueue_live_recheck(study, lead, time_left=LIVE_HEADROOM * 100.0 - 1) is None  # version 7's rule
    assert not [t for t in study.trials if t.user_attrs.get(RECHECK_ATTR) == 0]
    # A baseline that completes first is re-measured: its recheck lets the pick go back to it.
    other = _study(storage_url, study_name + "_b", live=True)
    _trial(other, 0.01, [0.90], baseline=0)
    assert enqueue_live_recheck(other, other.trials[-1]) == 1


def test_a_worker_says_why_it_does_not_retrain_the_first_complete_trial(tmp_path: Path) -> None:
    """Through the CLI: the first complete trial leads and is not trained again, and the worker says
    why (version 8)."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    hpsearch(
        *("create", "--task", "digits", "--study", "first", "--max-epochs", "3", "--storage", url),
        # No pruner: a drawn configuration that cannot learn is then not stopped by the floor, so
        # trial 0 completes whatever it draws; one worker index draws the same trial 0 every run.
        *("--live-recheck", "--no-baseline", "--pruner", "none"),
        cwd=tmp_path,
    )
    out = hpsearch(
        *("worker", "--study", "first", "--n-trials", "1", "--worker-index", "0", "--storage", url), cwd=tmp_path
    )
    study = optuna.load_study(study_name="first", storage=url)
    assert read_settings(study).version == FORMAT_VERSION
    assert study.trials and study.trials[0].state.name == "COMPLETE"
    assert not [t for t in study.trials if t.user_attrs.get(RECHECK_ATTR) is not None]
    # On stdout as a line of its own after trial 0's line, as the worker's other lines are; not a log record.
    lines = out.stdout.splitlines()
    said = "trial 0 leads the search; not trained again: it is the only complete trial yet"
    assert said in lines, out.stdout
    assert lines[lines.index(said) - 1].startswith("trial 0 "), out.stdout
    assert "not trained again" not in out.stderr


def test_a_study_of_an_older_version_reads_as_without_live_recheck() -> None:
    attr = StudySettings(task="digits").to_attr()
    del attr["live_recheck"]
    old = StudySettings.from_attr({**attr, "version": 4})
    assert old.live_recheck is False and old.version == 4


def test_run_with_live_recheck_trains_each_lead_again_within_the_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    run = hpsearch(
        *("run", "--task", "digits", "--study", "live", "--n-trials", "6", "--max-epochs", "3", "--storage", url),
        *("--live-recheck", "--no-baseline"),
        cwd=tmp_path,
    ).stdout
    assert "leads the search: trial " in run
    study = optuna.load_study(study_name="live", storage=url)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and not t.user_attrs.get("surplus")]
    assert len(finished) == 6  # the rechecks count within the cap
    rechecks = [t for t in study.trials if t.user_attrs.get(RECHECK_ATTR) is not None]
    ran = [t for t in rechecks if t.state.name == "COMPLETE"]
    assert ran and all(t.user_attrs["epochs_run"] == 3 for t in ran)  # never pruned
    for t in rechecks:  # each the configuration of a trial that led the search when it ended
        origin = study.trials[t.user_attrs[RECHECK_ATTR]]
        assert t.system_attrs["fixed_params"] == origin.params and RECHECK_ATTR not in origin.user_attrs
        assert t.params == origin.params and t.state.name == "COMPLETE"  # none enqueued beyond the cap
        before = [
            u.value
            for u in study.trials[: origin.number]
            if u.state.name == "COMPLETE" and RECHECK_ATTR not in u.user_attrs
        ]
        assert all(v < origin.value for v in before)
    hpsearch("export", "--study", "live", "-o", "best.json", "--storage", url, cwd=tmp_path)
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["params"] == pick(study).trial.params  # type: ignore[union-attr]

"""hpsearch core: the task contract, pruning, storage URLs, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess
import sys

from conftest import MNIST_T10K
from conftest import cli_env
from conftest import hpsearch
from conftest import need
import numpy as np
import optuna
import pytest

from hpsearch.objectives import TaskError
from hpsearch.objectives import get_task
from hpsearch.objectives import validate_params
from hpsearch.storage import mask_text
from hpsearch.storage import mask_url
from hpsearch.storage import resolve_url


# -- the task contract ---------------------------------------------------------------------------
def test_digits_contract_trains_and_reports() -> None:
    import keras

    task = get_task("digits")
    data = task.load_data(None, seed=0)
    assert data.sizes == {"train": 1257, "val": 270, "test": 270}
    params = validate_params(task, task.baselines[0])
    model = task.build_model(params, data.spec)
    keras.utils.set_random_seed(0)
    tr = data.inputs("train", params["batch_size"])
    va = data.inputs("val", params["batch_size"])
    hist = model.fit(tr.x, tr.y, batch_size=tr.batch_size, epochs=3, validation_data=(va.x, va.y), verbose=0)
    assert hist.history["val_accuracy"][-1] > 0.8  # the baseline really learns


def test_search_space_is_the_only_optuna_code_and_builder_takes_plain_dicts() -> None:
    task = get_task("mnist_mlp")
    trial = optuna.trial.FixedTrial(task.baselines[0])
    params = task.search_space(trial)
    assert params == task.baselines[0]
    assert isinstance(params, dict) and all(not isinstance(v, optuna.trial.BaseTrial) for v in params.values())


def test_mnist_t10k_split_is_seeded_disjoint_and_documented() -> None:
    from hpsearch.objectives import _mnist

    need(MNIST_T10K)
    a, desc = _mnist.load_arrays(str(MNIST_T10K), seed=0)
    b, _ = _mnist.load_arrays(str(MNIST_T10K), seed=0)
    assert [len(a[s][0]) for s in ("train", "val", "test")] == [8000, 1000, 1000]
    assert "8000 train / 1000 val / 1000 test" in desc
    for s in ("train", "val", "test"):
        assert np.array_equal(a[s][0], b[s][0]) and np.array_equal(a[s][1], b[s][1])
    # disjoint: no test image appears in train (compare raw bytes)
    train_rows = {x.tobytes() for x in a["train"][0]}
    assert sum(x.tobytes() in train_rows for x in a["test"][0]) <= 2  # MNIST has a couple of exact duplicates
    assert set(np.unique(a["train"][1])) == set(range(10))


def test_mnist_reads_plain_idx_and_npz(tmp_path: Path) -> None:
    import gzip
    import shutil

    from hpsearch.objectives import _mnist

    need(MNIST_T10K)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(MNIST_T10K / f"{name}.gz", "rb") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    plain, _ = _mnist.load_arrays(str(tmp_path), seed=0)
    gz, _ = _mnist.load_arrays(str(MNIST_T10K), seed=0)
    assert np.array_equal(plain["val"][0], gz["val"][0])
    x, y = gz["test"]
    npz = tmp_path / "npz"
    npz.mkdir()
    np.savez(npz / "mnist.npz", x_train=gz["train"][0], y_train=gz["train"][1], x_test=x, y_test=y)
    full, desc = _mnist.load_arrays(str(npz), seed=0)
    assert len(full["test"][0]) == 1000 and len(full["train"][0]) + len(full["val"][0]) == 8000
    assert "official test" in desc


def test_bad_data_dirs_are_task_errors(tmp_path: Path) -> None:
    task = get_task("mnist_mlp")
    with pytest.raises(TaskError, match="does not exist"):
        task.load_data(str(tmp_path / "nope"), seed=0)
    with pytest.raises(TaskError, match="no MNIST data"):
        task.load_data(str(tmp_path), seed=0)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(TaskError, match="cannot read IDX"):
        task.load_data(str(tmp_path), seed=0)


def test_validate_params_rejects_missing_extra_and_out_of_range() -> None:
    task = get_task("mnist_mlp")
    good = dict(task.baselines[0])
    with pytest.raises(TaskError, match="units_1"):
        validate_params(task, {k: v for k, v in good.items() if k != "units_1"})
    with pytest.raises(TaskError, match="not in"):
        validate_params(task, {**good, "bogus": 1})
    with pytest.raises(TaskError, match="learning_rate"):
        validate_params(task, {**good, "learning_rate": 5.0})
    with pytest.raises(TaskError, match="batch_size"):
        validate_params(task, {**good, "batch_size": "32"})
    with pytest.raises(TaskError, match="unknown task"):
        get_task("nope")


# -- pruning, through the real worker loop ----------------------------------------------------
def test_pruning_really_prunes_and_every_epoch_is_reported(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    hpsearch(
        "run",
        "--task",
        "digits",
        "--study",
        study_name,
        "--n-trials",
        "14",
        "--max-epochs",
        "6",
        "--seed",
        "1",
        "--storage",
        url,
        cwd=tmp_path,
    )
    study = optuna.load_study(study_name=study_name, storage=url)
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 14
    assert "PRUNED" in states and "COMPLETE" in states
    for t in trials:  # a step is the number of epochs done (settings version 2)
        assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs_run"] + 1))
        h = t.user_attrs["history"]["val_accuracy"]
        assert [round(v, 6) for v in t.intermediate_values.values()] == pytest.approx(h, abs=1e-6)
        if t.state.name == "COMPLETE":
            assert t.user_attrs["epochs_run"] == 6
            # settings version 4: the value is the best mean of 3 consecutive epochs, best_epoch the
            # last of them
            best3 = max(sum(h[i : i + 3]) / 3 for i in range(len(h) - 2))
            assert t.value == pytest.approx(best3, abs=1e-5)
            end = t.user_attrs["best_epoch"]
            assert end >= 3 and sum(h[end - 3 : end]) / 3 == pytest.approx(best3, abs=1e-5)
        else:
            assert t.user_attrs["epochs_run"] < 6
    assert trials[0].user_attrs.get("baseline") == 0


def test_every_pruner_choice_builds_optunas_pruner_and_the_default_is_asha() -> None:
    from hpsearch._study import PRUNERS
    from hpsearch._study import StudySettings
    from hpsearch._study import make_pruner
    from hpsearch.cli import build_parser

    args = build_parser().parse_args(["create", "--task", "digits", "--study", "s"])
    assert args.pruner is None and StudySettings(task="digits").pruner == "asha"
    create = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices["create"]._actions  # type: ignore[union-attr]
        if a.dest == "pruner"
    )
    assert tuple(create.choices) == PRUNERS  # the CLI offers exactly what make_pruner knows
    kinds = {p: type(make_pruner(StudySettings(task="digits", pruner=p))).__name__ for p in PRUNERS}
    assert kinds == {
        "asha": "SuccessiveHalvingPruner",
        "hyperband": "HyperbandPruner",
        "median": "MedianPruner",
        "none": "NopPruner",
    }
    asha = make_pruner(StudySettings(task="digits"))
    assert (asha._min_resource, asha._reduction_factor) == (1, 4)
    # a study created before steps counted epochs done keeps its pruner: rungs after epochs 2, 4, 10
    old = StudySettings.from_attr({k: v for k, v in StudySettings(task="digits").to_attr().items() if k != "version"})
    assert old.version == 1 and old.first_step == 0
    asha = make_pruner(old)
    assert (asha._min_resource, asha._reduction_factor) == (1, 3)
    median = make_pruner(StudySettings(task="digits", pruner="median"))
    assert median._n_warmup_steps == 2  # never after the first epoch, as with version 1's warm-up of 1
    # a task (or --prune-after) that needs 4 epochs before ranks mean anything moves every pruner
    late = {p: make_pruner(StudySettings(task="digits", pruner=p, prune_after=4, max_epochs=15)) for p in PRUNERS}
    assert (late["asha"]._min_resource, late["asha"]._reduction_factor) == (4, 4)
    assert late["hyperband"]._min_resource == 4 and late["median"]._n_warmup_steps == 5


def test_a_task_sets_the_epochs_before_pruning_and_create_can_override_it(tmp_path: Path, study_name: str) -> None:
    """cifar10_cnn declares prune_after_epochs = 4 (its early epochs rank configurations poorly); the
    study stores the number, --prune-after overrides it, and studies of versions 1-2 read as 1."""
    from hpsearch._study import SETTINGS_KEY
    from hpsearch._study import StudySettings
    from hpsearch._study import make_pruner
    from hpsearch._study import read_settings

    url = f"sqlite:///{tmp_path / 'p.db'}"
    out = hpsearch(
        "create", "--task", "cifar10_cnn", "--study", study_name, "--max-epochs", "15", "--storage", url, cwd=tmp_path
    )
    assert "pruner asha (from epoch 4)" in out.stdout
    hpsearch("create", "--task", "digits", "--study", "d", "--storage", url, cwd=tmp_path)
    hpsearch("create", "--task", "cifar10_cnn", "--study", "c2", "--prune-after", "2", "--storage", url, cwd=tmp_path)
    stored = {
        n: optuna.load_study(study_name=n, storage=url).user_attrs[SETTINGS_KEY]["prune_after"]
        for n in (study_name, "d", "c2")
    }
    assert stored == {study_name: 4, "d": 1, "c2": 2}
    s = read_settings(optuna.load_study(study_name=study_name, storage=url))
    assert make_pruner(s)._min_resource == 4
    v2 = {k: v for k, v in StudySettings(task="cifar10_cnn").to_attr().items() if k != "prune_after"}
    assert StudySettings.from_attr({**v2, "version": 2}).prune_after == 1  # it was pruned from epoch 1


def test_prune_after_beyond_the_epochs_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    p = hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        "s",
        "--max-epochs",
        "3",
        "--prune-after",
        "4",
        "--storage",
        url,
        cwd=tmp_path,
        check=False,
    )
    _one_line_error(p, "--prune-after 4 is out of range", "give 1 to --max-epochs (3)", "--pruner none")
    assert not (tmp_path / "r.db").exists() or optuna.get_all_study_names(storage=url) == []


def test_windowed_best_is_the_best_mean_of_consecutive_epochs() -> None:
    from hpsearch._objective import windowed_best

    acc = [0.5, 0.9, 0.5, 0.8, 0.8, 0.7]
    assert windowed_best(acc, 1) == (0.9, 2)  # window 1: the single best epoch (versions 1-3)
    mean, end = windowed_best(acc, 3)  # type: ignore[misc]
    assert end == 6 and mean == pytest.approx((0.8 + 0.8 + 0.7) / 3)  # not around the lucky epoch 2
    assert windowed_best([0.7, 0.9], 3) == (pytest.approx(0.8), 2)  # fewer epochs: all of them
    assert windowed_best([0.9, 0.9, 0.9, 0.9], 2) == (0.9, 2)  # the earliest of equals
    assert windowed_best([0.9, float("nan"), 0.8, 0.8], 2) == (0.8, 4)  # a window with NaN does not count
    assert windowed_best([None, float("nan")], 2) is None


def test_a_trials_value_window_is_stored_and_studies_of_older_versions_keep_their_best_epoch(
    tmp_path: Path, study_name: str
) -> None:
    """Settings version 4 stores ``value_window`` (default 3, at most --max-epochs); a study written
    before it reads as 1 and `create --exist-ok` without the flag does not call it different."""
    from hpsearch._runworker import WorkerConfig
    from hpsearch._runworker import run_worker
    from hpsearch._study import DEFAULT_LIVE_RECHECK
    from hpsearch._study import SETTINGS_KEY
    from hpsearch._study import StudySettings

    url = f"sqlite:///{tmp_path / 'w.db'}"
    hpsearch("create", "--task", "digits", "--study", "a", "--storage", url, cwd=tmp_path)
    hpsearch("create", "--task", "digits", "--study", "b", "--max-epochs", "2", "--storage", url, cwd=tmp_path)
    hpsearch(
        *("create", "--task", "digits", "--study", "c", "--value-window", "1", "--no-live-recheck"),
        *("--storage", url),
        cwd=tmp_path,
    )
    stored = {n: optuna.load_study(study_name=n, storage=url).user_attrs[SETTINGS_KEY] for n in "abc"}
    # Version 5 (stop 33) adds ``live_recheck``, stored resolved (the default, or the flag); version 6
    # (stop 35) changes only how a live-recheck study's pick reads its rechecks, version 7 (stop 38)
    # only when a worker with a deadline enqueues one, version 8 (stop 39) only which trials are pruned.
    assert {n: (d["value_window"], d["version"], d["live_recheck"]) for n, d in stored.items()} == {
        "a": (3, 8, DEFAULT_LIVE_RECHECK),
        "b": (2, 8, DEFAULT_LIVE_RECHECK),
        "c": (1, 8, False),
    }
    v3 = {k: v for k, v in StudySettings(task="digits").to_attr().items() if k != "value_window"}
    assert StudySettings.from_attr({**v3, "version": 3}).value_window == 1

    # A version-3 study (as one written before version 4: no value_window): its trials' values stay
    # their best epoch, and create --exist-ok without the flag accepts it.
    hpsearch("create", "--task", "digits", "--study", study_name, "--max-epochs", "4", "--storage", url, cwd=tmp_path)
    study = optuna.load_study(study_name=study_name, storage=url)
    attr = {k: v for k, v in study.user_attrs[SETTINGS_KEY].items() if k not in ("value_window", "live_recheck")}
    study.set_user_attr(SETTINGS_KEY, {**attr, "version": 3})
    out = hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        study_name,
        "--max-epochs",
        "4",
        "--exist-ok",
        "--storage",
        url,
        cwd=tmp_path,
    ).stdout
    assert "exists (same settings)" in out and "epoch mean" not in out  # the study's own settings shown
    assert run_worker(WorkerConfig(study=study_name, n_trials=1), url) == 0
    (t,) = optuna.load_study(study_name=study_name, storage=url).trials
    h = t.user_attrs["history"]["val_accuracy"]
    assert t.state.name == "COMPLETE" and t.value == pytest.approx(max(h), abs=1e-6)
    assert h[t.user_attrs["best_epoch"] - 1] == pytest.approx(max(h), abs=1e-6)


def test_a_value_window_beyond_the_epochs_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    p = hpsearch(
        "create", "--task", "digits", "--study", "s", "--max-epochs", "3", "--value-window", "4",
        "--storage", url, cwd=tmp_path, check=False,
    )  # fmt: skip
    _one_line_error(p, "--value-window 4 is out of range", "give 1 (a trial's best epoch) to --max-epochs (3)")
    assert not (tmp_path / "v.db").exists() or optuna.get_all_study_names(storage=url) == []


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.mark.parametrize(("max_epochs", "state", "epochs"), [(3, "PRUNED", 1), (1, "COMPLETE", 1)])
def test_the_last_epoch_is_never_pruned(max_epochs: int, state: str, epochs: int) -> None:
    """Pruning after the last epoch would save nothing and hide a fully trained trial."""
    from hpsearch._objective import TrialRunner

    task = get_task("digits")
    data = task.load_data(None, seed=0)
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    study.enqueue_trial(task.baselines[0])
    study.optimize(TrialRunner(task, data, max_epochs=max_epochs, seed=0), n_trials=1)
    t = study.trials[0]
    assert t.state.name == state
    assert t.user_attrs["epochs_run"] == epochs and sorted(t.intermediate_values) == list(range(1, epochs + 1))


@pytest.mark.parametrize(
    ("version", "prune_after", "steps", "pruned_after"),
    [(3, None, [1], 1), (3, 2, [1], 2), (2, None, [1], 1), (1, None, [0, 1], 2)],
)
def test_the_default_pruner_stops_a_poor_trial_after_its_first_epoch(
    tmp_path: Path, study_name: str, version: int, prune_after: int | None, steps: list[int], pruned_after: int
) -> None:
    """Versions 2-3 (steps = epochs done, ASHA factor 4) prune at step 1, after one epoch, or after
    ``prune_after`` epochs where a study sets it; a version-1 study, whose steps start at 0, is
    still pruned at its step 1, after two."""
    import dataclasses

    from hpsearch._runworker import WorkerConfig
    from hpsearch._runworker import run_worker
    from hpsearch._study import SETTINGS_KEY
    from hpsearch._study import StudySettings
    from hpsearch._study import create_study
    from hpsearch.storage import open_storage

    url = f"sqlite:///{tmp_path / 'v.db'}"
    settings = dataclasses.replace(
        StudySettings(task="digits", max_epochs=4, baselines=False, prune_after=prune_after), version=version
    )
    study, _ = create_study(open_storage(url, create_tables=True), study_name, settings, url=url)
    assert study.user_attrs[SETTINGS_KEY]["version"] == version
    good = get_task("digits").baselines[0]
    study.enqueue_trial(good)
    study.enqueue_trial({**good, "learning_rate": 1e-4}, user_attrs={"poor": True})  # the space's lowest
    assert run_worker(WorkerConfig(study=study_name, n_trials=2), url) == 0
    best, worse = sorted(optuna.load_study(study_name=study_name, storage=url).trials, key=lambda t: t.number)
    assert best.state.name == "COMPLETE" and sorted(best.intermediate_values) == [steps[0] + i for i in range(4)]
    assert worse.user_attrs.get("poor") and worse.state.name == "PRUNED"
    assert sorted(worse.intermediate_values) == [steps[0] + i for i in range(pruned_after)]
    assert worse.user_attrs["epochs_run"] == pruned_after


# -- storage URLs ----------------------------------------------------------------------------------
def test_url_precedence_and_password_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in (
        "HPSEARCH_STORAGE",
        "HPSEARCH_STORAGE_FILE",
        "HPSEARCH_STORAGE_PASSWORD",
        "HPSEARCH_STORAGE_PASSWORD_FILE",
    ):
        monkeypatch.delenv(k, raising=False)
    assert resolve_url(None) == "sqlite:///hpsearch.db"
    monkeypatch.setenv("HPSEARCH_STORAGE", "postgresql://u@db/x")
    assert resolve_url(None) == "postgresql://u@db/x"
    assert resolve_url("sqlite:///a.db") == "sqlite:///a.db"
    monkeypatch.setenv("HPSEARCH_STORAGE_PASSWORD", "p@ss:w/rd")
    filled = resolve_url(None)
    assert "p%40ss%3Aw%2Frd" in filled and mask_url(filled) == "postgresql://u:***@db/x"
    monkeypatch.delenv("HPSEARCH_STORAGE_PASSWORD")
    secret = tmp_path / "pw"
    secret.write_text("filepw\n")
    monkeypatch.setenv("HPSEARCH_STORAGE_PASSWORD_FILE", str(secret))
    assert resolve_url(None) == "postgresql://u:filepw@db/x"
    monkeypatch.delenv("HPSEARCH_STORAGE")
    urlfile = tmp_path / "url"
    urlfile.write_text("mysql+pymysql://root@h/db\n")
    monkeypatch.setenv("HPSEARCH_STORAGE_FILE", str(urlfile))
    assert resolve_url(None) == "mysql+pymysql://root:filepw@h/db"


def test_masking() -> None:
    assert mask_url("postgresql+psycopg2://bob:hunter2@db:5432/x") == "postgresql+psycopg2://bob:***@db:5432/x"
    assert mask_url("sqlite:///hpsearch.db") == "sqlite:///hpsearch.db"
    text = "could not connect to mysql+pymysql://root:topsecret@10.0.0.1/db (timeout) topsecret"
    masked = mask_text(text, "topsecret")
    assert "topsecret" not in masked and "root:***@" in masked


# -- the CLI end to end ----------------------------------------------------------------------------
def test_help_and_tasks_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from hpsearch.cli import main; rc = main(['tasks']); "
        "assert rc == 0; assert 'tensorflow' not in sys.modules and 'optuna' not in sys.modules, 'heavy import'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "mnist_mlp" in proc.stdout and "digits" in proc.stdout


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """`hpsearch status | head`: the pipe closes before hpsearch writes; no traceback, exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "tasks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    proc.stdout.close()  # type: ignore[union-attr]  # before the interpreter has even started
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_run_status_export_train_end_to_end(tmp_path: Path) -> None:
    import keras

    run = hpsearch("run", "--task", "digits", "--study", "demo", "--n-trials", "5", "--max-epochs", "4", cwd=tmp_path)
    assert (tmp_path / "hpsearch.db").is_file()  # the embedded default, in the working directory
    lines = [ln for ln in run.stdout.splitlines() if re.match(r"trial \d+ (COMPLETE|PRUNED|FAIL) ", ln)]
    assert len(lines) == 5 and all("value=" in ln and "epochs=" in ln and "params=" in ln for ln in lines)
    # Live recheck (settings version 5): the first complete trial leads, and is trained once more.
    assert "trial 0 leads the search: trial 1 trains it once more" in run.stdout
    status = hpsearch("status", "--study", "demo", cwd=tmp_path).stdout
    assert "best: trial" in status and "baseline 0" in status
    hpsearch("export", "--study", "demo", "-o", "best.json", cwd=tmp_path)
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["format"] == "hpsearch-params" and doc["version"] == 1 and doc["task"] == "digits"
    assert {"trial", "value", "best_epoch", "versions", "study"} <= set(doc)
    assert "optuna" in doc["versions"] and "tensorflow" in doc["versions"]
    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{tmp_path / 'hpsearch.db'}")
    from hpsearch._recheck import pick

    chosen = pick(study)  # the lead, or after its recheck the best mean of the rechecked configurations
    assert chosen is not None and doc["trial"] == chosen.trial.number and doc["params"] == chosen.trial.params
    assert doc["value"] == pytest.approx(chosen.value)
    hpsearch("train", "--params", "best.json", "--out", "final", cwd=tmp_path)
    metrics = json.loads((tmp_path / "final" / "metrics.json").read_text())
    assert metrics["epochs"] == doc["best_epoch"]
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["test_size"] == 270
    model = keras.models.load_model(tmp_path / "final" / "model.keras")
    data = get_task("digits").load_data(None, seed=0)
    pred = np.argmax(model.predict(data.inputs("test", 64).x, verbose=0), axis=-1)
    assert float((pred == data.labels("test")).mean()) == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    # the stock Optuna CLI reads the study unchanged
    optuna_cli = Path(sys.executable).with_name("optuna")
    out = subprocess.run(
        [str(optuna_cli), "trials", "--study-name", "demo", "--storage", "sqlite:///hpsearch.db", "-f", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    assert sorted(t["number"] for t in json.loads(out.stdout)) == list(range(len(study.trials)))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_create_worker_export_on_each_backend(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, study_name: str
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'x.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")
    )
    env = cli_env(HPSEARCH_STORAGE=url)  # the URL from the environment, not a flag
    hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        study_name,
        "--max-epochs",
        "3",
        "--pruner",
        "median",
        "--n-trials",
        "3",
        cwd=tmp_path,
        env=env,
    )
    w = hpsearch("worker", "--study", study_name, cwd=tmp_path, env=env)
    assert w.stdout.count("trial ") >= 3
    study = optuna.load_study(study_name=study_name, storage=url)
    assert study.user_attrs["settings"]["pruner"] == "median" and study.user_attrs["task"] == "digits"
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    out = hpsearch("export", "--study", study_name, "--format", "yaml", cwd=tmp_path, env=env).stdout
    import yaml

    from hpsearch._recheck import pick

    doc = yaml.safe_load(out)
    chosen = pick(study)  # the live recheck's pick (settings version 5), not always study.best_trial
    assert chosen is not None and doc["task"] == "digits" and doc["params"] == chosen.trial.params


# -- bad input: one line, exit 2, nothing written ---------------------------------------------------
def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = [
        ln
        for ln in proc.stderr.splitlines()
        if ln.strip() and not ln.startswith(("I0000", "E0000", "W0000", "WARNING: All log"))
    ]
    assert len(err) == 1, proc.stderr
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    p = hpsearch("create", "--task", "nope", "--study", "s", cwd=tmp_path, check=False)
    _one_line_error(p, "unknown task", "hpsearch tasks")
    p = hpsearch("run", "--task", "mnist_mlp", "--data-dir", str(tmp_path / "missing"), cwd=tmp_path, check=False)
    _one_line_error(p, "does not exist", "--data-dir")
    empty = tmp_path / "empty"
    empty.mkdir()
    p = hpsearch("run", "--task", "mnist_mlp", "--data-dir", str(empty), "--study", "s", cwd=tmp_path, check=False)
    _one_line_error(p, "no MNIST data")
    p = hpsearch("create", "--task", "digits", "--study", "s", "--max-epochs", "0", cwd=tmp_path, check=False)
    _one_line_error(p, "--max-epochs", "must be >= 1")
    p = hpsearch("worker", "--study", "s", cwd=tmp_path, check=False)
    _one_line_error(p, "hpsearch create")
    p = hpsearch("status", "--study", "s", cwd=tmp_path, check=False)
    _one_line_error(p, "hpsearch create")
    assert not (tmp_path / "hpsearch.db").exists()  # nothing was written by any of the above
    hpsearch("create", "--task", "digits", "--study", "s", cwd=tmp_path)
    p = hpsearch("worker", "--study", "other", cwd=tmp_path, check=False)
    _one_line_error(p, "no study 'other'", "hpsearch create", "studies here: s")
    p = hpsearch("create", "--task", "digits", "--study", "s", cwd=tmp_path, check=False)
    _one_line_error(p, "already exists", "--exist-ok")
    p = hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        "s",
        "--exist-ok",
        "--pruner",
        "median",
        "--max-epochs",
        "7",
        cwd=tmp_path,
        check=False,
    )
    _one_line_error(p, "different settings", "pruner: existing 'asha' != requested 'median'", "max_epochs")
    hpsearch("create", "--task", "digits", "--study", "s", "--exist-ok", cwd=tmp_path)
    studies = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'hpsearch.db'}")
    assert [s.study_name for s in studies] == ["s"]
    assert studies[0].n_trials == 1  # only the enqueued baseline; no trial was run or half-written


def test_unreachable_database_masks_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg2://bob:hunter2@127.0.0.1:1/nowhere"
    p = hpsearch("create", "--task", "digits", "--study", "s", "--storage", url, cwd=tmp_path, check=False)
    line = _one_line_error(p, "cannot connect", "bob:***@127.0.0.1:1")
    assert "hunter2" not in p.stderr + p.stdout and "hunter2" not in line
    env = cli_env(HPSEARCH_STORAGE="mysql+pymysql://root@127.0.0.1:1/x", HPSEARCH_STORAGE_PASSWORD="sekrit")
    p = hpsearch("studies", cwd=tmp_path, env=env, check=False)
    _one_line_error(p, "cannot connect", "root:***@")
    assert "sekrit" not in p.stderr + p.stdout


@pytest.mark.parametrize("sampler", ["random", "gp"])
def test_other_samplers_run(sampler: str, tmp_path: Path) -> None:
    if sampler == "gp":
        pytest.importorskip("torch", reason="--sampler gp needs PyTorch (pip install 'hpsearch[gp]')")
    hpsearch(
        "run",
        "--task",
        "digits",
        "--study",
        "s",
        "--sampler",
        sampler,
        "--pruner",
        "none",
        "--n-trials",
        "3",
        "--max-epochs",
        "2",
        "--no-baseline",
        cwd=tmp_path,
    )
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'hpsearch.db'}")
    assert study.user_attrs["settings"]["sampler"] == sampler
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert all("baseline" not in t.user_attrs for t in study.trials)


def test_create_puts_the_embedded_sqlite_file_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    hpsearch("create", "--task", "digits", "--study", "s", cwd=tmp_path)
    with sqlite3.connect(tmp_path / "hpsearch.db") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    p = hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        "s",
        "--storage",
        f"sqlite:///{tmp_path}/no/such/dir.db",
        cwd=tmp_path,
        check=False,
    )
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_a_study_of_a_newer_settings_version_is_refused_untouched(tmp_path: Path, study_name: str) -> None:
    """An older hpsearch would count its steps or prune it the old way: it says to update, exit 2."""
    from hpsearch._study import FORMAT_VERSION
    from hpsearch._study import SETTINGS_KEY

    url = f"sqlite:///{tmp_path / 'n.db'}"
    hpsearch("create", "--task", "digits", "--study", study_name, "--storage", url, cwd=tmp_path)
    study = optuna.load_study(study_name=study_name, storage=url)
    attr = {**study.user_attrs[SETTINGS_KEY], "version": FORMAT_VERSION + 1}
    study.set_user_attr(SETTINGS_KEY, attr)
    before = [(t.number, t.state.name) for t in study.get_trials()]
    proc = hpsearch("worker", "--study", study_name, "--storage", url, "--n-trials", "1", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "newer hpsearch" in line and "pip install -e ." in line
    after = optuna.load_study(study_name=study_name, storage=url)
    assert [(t.number, t.state.name) for t in after.get_trials()] == before
    assert after.user_attrs[SETTINGS_KEY] == attr

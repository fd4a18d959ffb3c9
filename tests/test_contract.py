"""The task contract and the params' one source of truth, through the real CLI.

- ``get_task`` checks the ``Task`` protocol and names what is missing; tasks never import the registry.
- ``create`` refuses a ``search_space`` that returns keys it did not suggest, by name, exit 2.
- ``export`` writes a plain-JSON snapshot of the space; ``train`` checks params against it without
  importing Optuna; export -> train works for every built-in task, a plug-in and ``fault_task``.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import pickle
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hpsearch.cli import main
from hpsearch.objectives import RecordingTrial
from hpsearch.objectives import Task
from hpsearch.objectives import TaskError
from hpsearch.objectives import get_task
from hpsearch.objectives import validate_params

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
DATASETS = REPO.parent / "shared" / "datasets"
HPSEARCH = [sys.executable, "-m", "hpsearch"]
BUILTIN = ("mnist_mlp", "mnist_cnn", "cifar10_cnn", "cats_vs_dogs", "celeba_gender", "image_folder", "digits")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data set {path} is absent (see shared/datasets/README.md)")
    return path


def env_with_tests(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(TESTS), **extra})
    return env


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``main()`` in this process (TensorFlow is loaded once): restore what a worker changes."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setenv("HPSEARCH_WORKER_INDEX", "0")
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    monkeypatch.syspath_prepend(str(TESTS))
    yield
    for s, h in handlers.items():
        signal.signal(s, h)


# -- the contract -------------------------------------------------------------------------------
def test_every_builtin_task_is_a_task_and_no_task_imports_the_registry() -> None:
    for name in BUILTIN:
        assert isinstance(get_task(name), Task)
    for path in (REPO / "objectives").glob("*.py"):
        if not path.name.startswith("_"):
            assert "_registry" not in path.read_text(), f"{path.name} calls back into the registry"


def test_registration_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "half_task.py").write_text(
        textwrap.dedent(
            """
            name = "half_task"
            description = 3
            baselines = []
            def load_data(data_dir, *, seed=0): ...
            def search_space(trial): ...
            def search_model(params, data): ...
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskError) as e:
        get_task("half_task")
    msg = str(e.value)
    for what in ("description (a str)", "build_model() (a function)", "load_data() keyword argument(s) options"):
        assert what in msg
    assert "search_model() keyword argument(s) seed" in msg and "\n" not in msg


def constant_task_module(folder: Path) -> None:
    """The old shape of tests/fault_task.py: constants returned beside the suggested values."""
    fault = (TESTS / "fault_task.py").read_text()
    start = fault.index("def search_space")
    end = fault.index("def load_data")
    old = """def search_space(trial):
    return {
        "units": trial.suggest_int("units", 4, 32),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
        "batch_size": 32,
        "optimizer": "adam",
        "fault": "none",
    }


"""
    (folder / "constant_task.py").write_text(fault[:start] + old + fault[end:])


def test_create_refuses_a_search_space_returning_constants(tmp_path: Path) -> None:
    constant_task_module(tmp_path)
    env = env_with_tests(PYTHONPATH=os.pathsep.join([str(tmp_path), str(TESTS)]))
    db = tmp_path / "c.db"
    out = subprocess.run(
        [*HPSEARCH, "create", "--task", "constant_task", "--study", "c", "--storage", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "search_space returns keys it did not suggest: batch_size, fault, optimizer" in lines[0]
    assert "build_model" in lines[0] and not db.exists()


def test_recording_trial_checks_params_without_optuna() -> None:
    task = get_task("digits")
    trial = RecordingTrial(task.baselines[0])
    assert task.search_space(trial) == task.baselines[0] and not trial.missing
    assert trial.space["learning_rate"] == {"type": "float", "low": 1e-4, "high": 0.1, "step": None, "log": True}
    assert trial.space["activation"] == {"type": "categorical", "choices": ["relu", "tanh"]}
    with pytest.raises(TaskError, match="missing units_0"):
        validate_params(task, {k: v for k, v in task.baselines[0].items() if k != "units_0"})
    with pytest.raises(TaskError, match=r"activation='gelu' is outside its search space categorical"):
        validate_params(task, {**task.baselines[0], "activation": "gelu"})
    with pytest.raises(TaskError, match=r"n_layers=True is outside"):  # a bool is not an int
        validate_params(task, {**task.baselines[0], "n_layers": True})


# -- export -> train ------------------------------------------------------------------------------
def run_export(tmp_path: Path, task: str, *flags: str) -> Path:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    run = ["run", "--task", task, "--study", "e", "--n-trials", "1", "--max-epochs", "1", "--storage", db]
    assert main([*run, *flags]) == 0
    best = tmp_path / "best.json"
    assert main(["export", "--study", "e", "--storage", db, "-o", str(best)]) == 0
    return best


def write_cifar_fixture(folder: Path, n_train: int = 200, n_test: int = 50) -> Path:
    """A tiny ``cifar-10-batches-py`` from the shared subset: the first images of each batch."""
    folder.mkdir()
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        with open(need(DATASETS / "cifar10-subset") / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        small = {b"data": batch[b"data"][:n], b"labels": list(batch[b"labels"][:n])}
        (folder / name).write_bytes(pickle.dumps(small))
    return folder


def data_for(name: str, tmp_path: Path) -> list[str]:
    from test_tasks import copy_subset
    from test_tasks import make_celeba

    small = ["--weights", "none", "--option", "image_size=32"]
    if name in ("mnist_mlp", "mnist_cnn"):
        return ["--data-dir", str(need(DATASETS / "mnist-t10k"))]
    if name == "cifar10_cnn":
        return ["--data-dir", str(write_cifar_fixture(tmp_path / "cifar"))]
    if name == "cats_vs_dogs":
        root = copy_subset(need(DATASETS / "cats-and-dogs-small"), tmp_path / "cats", per_class=12)
        return ["--data-dir", str(root), *small]
    if name == "image_folder":
        root = copy_subset(need(DATASETS / "cats-and-dogs-small") / "train", tmp_path / "flat", per_class=15)
        return ["--data-dir", str(root), *small]
    if name == "celeba_gender":
        root, _ = make_celeba(tmp_path / "celeba", 40)
        return ["--data-dir", str(root), *small]
    return []


@pytest.mark.parametrize("name", [*BUILTIN, "plugin_task", "fault_task"])
def test_export_then_train_every_task(name: str, tmp_path: Path, in_process: None) -> None:
    best = run_export(tmp_path, name, *data_for(name, tmp_path))
    doc = json.loads(best.read_text())
    assert set(doc["space"]) == set(doc["params"])  # the snapshot covers exactly the best trial's params
    for dist in doc["space"].values():
        assert dist["type"] in ("int", "float", "categorical")
    out = tmp_path / "final"
    # A PYTHONPATH plug-in is code a params file names: train imports it only with --allow-module.
    allow = [] if name in BUILTIN else ["--allow-module"]
    assert main(["train", "--params", str(best), "--epochs", "1", "--out", str(out), *allow]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and (out / "model.keras").is_file()


def test_train_never_imports_optuna(tmp_path: Path, in_process: None) -> None:
    best = run_export(tmp_path, "digits")
    probe = (
        "import sys\n"
        "from hpsearch.cli import main\n"
        f"assert main(['train', '--params', {str(best)!r}, '--epochs', '1', '--out', {str(tmp_path / 'out')!r}]) == 0\n"
        "assert 'optuna' not in sys.modules, sorted(m for m in sys.modules if m.startswith('optuna'))[:5]\n"
        "print('no optuna')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env_with_tests(), timeout=300
    )
    assert out.returncode == 0 and "no optuna" in out.stdout, out.stdout + out.stderr


def test_train_checks_the_snapshot_and_old_files_use_the_search_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_process: None
) -> None:
    best = run_export(tmp_path, "digits")
    doc = json.loads(best.read_text())
    # a value outside the snapshot is refused, naming it, before any training
    doc["params"]["learning_rate"] = 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["train", "--params", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "learning_rate=0.5 is outside its search space float [0.0001, 0.1] log" in err and "\n" not in err
    # a malformed snapshot is refused too
    doc["params"]["learning_rate"] = 0.01
    doc["space"]["learning_rate"] = {"type": "float", "low": "small"}
    bad.write_text(json.dumps(doc))
    assert main(["train", "--params", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "space['learning_rate']" in capsys.readouterr().err
    # a file without a snapshot (written by hand, or by an older hpsearch): the task's search_space decides
    del doc["space"]
    doc["params"]["units_1"] = 16  # n_layers is 1: not a param of this configuration
    bad.write_text(json.dumps(doc))
    assert main(["train", "--params", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "params not in task 'digits''s search space: units_1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fault_task_baseline_and_run_through_the_real_fault_path(tmp_path: Path, in_process: None) -> None:
    """fault_task is a valid task: its injected faults still reach the trial through the CLI."""
    os.environ["HPSEARCH_TEST_FAULTS"] = "0:error"
    try:
        db = f"sqlite:///{tmp_path / 'f.db'}"
        assert main(["run", "--task", "fault_task", "--n-trials", "2", "--max-epochs", "1", "--storage", db]) == 0
    finally:
        del os.environ["HPSEARCH_TEST_FAULTS"]
    import optuna

    trials = optuna.load_study(study_name="fault_task", storage=db).get_trials()
    assert trials[0].state.name == "FAIL" and "injected failure" in trials[0].user_attrs["fail_reason"]
    assert [t.state.name for t in trials[1:]] == ["COMPLETE", "COMPLETE"]
    assert set(trials[1].params) == {"units", "learning_rate", "batch_size"}


def test_array_fixture_is_what_it_claims(tmp_path: Path) -> None:
    d = get_task("cifar10_cnn").load_data(str(write_cifar_fixture(tmp_path / "c")), seed=0)
    assert d.sizes == {"train": 180, "val": 20, "test": 50}
    assert np.asarray(d.labels("test")).shape == (50,)


# -- the worker's configuration --------------------------------------------------------------------
def test_worker_config_travels_as_one_json_argument(capsys: pytest.CaptureFixture[str]) -> None:
    from hpsearch._runworker import WorkerConfig

    config = WorkerConfig(study="s", n_trials=3, timeout=1.5, data_dir="/data", grace_period=7)
    assert WorkerConfig.from_json(config.to_json()) == config
    assert main(["worker", "--config", '{"study": "s", "bogus": 1}']) == 2
    err = capsys.readouterr().err.strip()
    assert "--config must be a JSON object" in err and "\n" not in err
    assert main(["worker", "--config", "{nope"]) == 2
    assert "--config is not valid JSON" in capsys.readouterr().err
    assert main(["worker"]) == 2
    assert "give --study NAME (or --config JSON)" in capsys.readouterr().err
    cli = (REPO / "search" / "cli.py").read_text()
    assert "Namespace(" not in cli and "TrialRunner" not in cli and "Worker(" not in cli  # no worker composition

"""Settings version 8: a trial no better than always giving the same answer is pruned
(``_objective._pruning_callback``), whatever the pruner says: Optuna's pruners keep a search's first
trial at every rung, so a first trial that never learns used to train in full."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from conftest import cli_env
from conftest import hpsearch
import numpy as np
import optuna
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
REASON = "no better than always answering the validation split's most common class"


def test_the_floor_is_the_most_common_val_class_plus_half_an_image() -> None:
    from hpsearch._objective import constant_answer_floor
    from hpsearch.objectives import ArrayData
    from hpsearch.objectives import Data

    x = np.zeros((6, 2, 2), "float32")
    y = np.array([0, 1, 2, 2, 2, 1])  # train: 2 is the most common; val: 1
    data = ArrayData(
        x_train=x, y_train=y, x_val=x[:4], y_val=np.array([1, 1, 1, 0]), x_test=x, y_test=y,
        class_names=("a", "b", "c"), description="six images",
    )  # fmt: skip
    assert constant_answer_floor(data) == pytest.approx(3.5 / 4)
    assert constant_answer_floor(Data()) is None  # a plug-in's data without labels: no floor


@pytest.mark.parametrize(
    ("curve", "max_epochs", "prune", "stopped"),
    [
        ([0.115, 0.112, 0.30, 0.40], 4, True, 2),  # at the floor after 2 epochs
        ([0.02, 0.115, 0.115, 0.115], 4, True, 2),
        ([0.116, 0.09, 0.30, 0.40], 4, True, None),  # one image above the floor: it learns something
        ([0.10, 0.11, 0.30, 0.40], 4, True, 2),  # the floor does not wait for a late learner
        ([0.10, 0.10], 2, True, None),  # the last epoch is never pruned
        ([0.10, 0.10, 0.10, 0.10], 4, False, None),  # a recheck trains every epoch
    ],
)
def test_a_trial_no_better_than_a_constant_answer_is_pruned_after_floor_after_epochs(
    curve: list[float], max_epochs: int, prune: bool, stopped: int | None
) -> None:
    from hpsearch._objective import _pruning_callback

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    callback = _pruning_callback(trial, max_epochs, 1, prune=prune, floor=115.5 / 1000, floor_after=2)
    ran = 0
    with pytest.raises(optuna.TrialPruned) if stopped else contextlib.nullcontext():
        for epoch, value in enumerate(curve):
            ran = epoch + 1
            callback.on_epoch_end(epoch, {"val_accuracy": value})
    frozen = study.trials[0]
    assert ran == (stopped or len(curve))
    assert frozen.intermediate_values == {i + 1: v for i, v in enumerate(curve[:ran])}
    if stopped:
        assert REASON in frozen.user_attrs["prune_reason"]
        assert f"after {stopped} epochs" in frozen.user_attrs["prune_reason"]
    else:
        assert "prune_reason" not in frozen.user_attrs


def test_the_floor_waits_for_the_tasks_own_first_rung_and_needs_version_8_and_a_pruner() -> None:
    from hpsearch._study import StudySettings

    s = StudySettings(task="digits", prune_after=1)
    assert s.version == 8 and s.constant_answer_after == 2  # at least 2 epochs
    assert dataclasses.replace(s, prune_after=4).constant_answer_after == 4  # cifar10_cnn's rungs
    assert dataclasses.replace(s, pruner="none").constant_answer_after == 0  # --pruner none: no pruning
    assert dataclasses.replace(s, version=7).constant_answer_after == 0  # older studies keep their pruning


@pytest.mark.parametrize(("pruner", "state", "epochs"), [("asha", "PRUNED", 2), ("none", "COMPLETE", 4)])
def test_a_first_trial_that_only_learns_a_constant_answer_stops_after_two_epochs(
    tmp_path: Path, study_name: str, pruner: str, state: str, epochs: int
) -> None:
    """Through the CLI: trial 0 is alone at every rung, so ASHA alone would train it in full."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    env = cli_env(PYTHONPATH=f"{TESTS}{os.pathsep}{ROOT}", HPSEARCH_TEST_FAULTS="0:dead")
    out = hpsearch(
        "run", "--task", "fault_task", "--study", study_name, "--n-trials", "1", "--max-epochs", "4",
        "--pruner", pruner, "--storage", url, cwd=tmp_path, env=env,
    )  # fmt: skip
    (t,) = optuna.load_study(study_name=study_name, storage=url).trials
    assert t.state.name == state and t.user_attrs["epochs_run"] == epochs
    if state == "PRUNED":
        assert REASON in t.user_attrs["prune_reason"]
        assert "trial 0 PRUNED" in out.stdout + out.stderr and REASON[:40] in out.stdout + out.stderr
    else:  # it never learned: every epoch at a constant answer's accuracy or below
        import fault_task

        from hpsearch._objective import constant_answer_floor

        floor = constant_answer_floor(fault_task.load_data())
        assert floor is not None and max(t.user_attrs["history"]["val_accuracy"]) <= floor

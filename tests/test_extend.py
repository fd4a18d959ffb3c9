"""Extending a study: `hpsearch extend` and `run --n-trials` on an existing study."""

from __future__ import annotations

import os
from pathlib import Path
import re

from conftest import ROOT
from conftest import cli_env
from conftest import hpsearch
import optuna


def _env(url: str) -> dict[str, str]:
    return cli_env(HPSEARCH_STORAGE=url, PYTHONPATH=f"{ROOT / 'tests'}{os.pathsep}{ROOT}")


def _finished(url: str, name: str) -> int:
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def test_extending_a_finished_study_by_5_runs_exactly_5_more(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    env = _env(url)
    base = ["--study", study_name]
    hpsearch("create", "--task", "fault_task", *base, "--max-epochs", "1", "--n-trials", "3", cwd=tmp_path, env=env)
    hpsearch("worker", *base, cwd=tmp_path, env=env)
    assert _finished(url, study_name) == 3
    # finished: a worker says so at once, naming `extend`, and runs nothing
    idle = hpsearch("worker", *base, cwd=tmp_path, env=env).stdout
    assert "reached its cap of 3" in idle and "hpsearch extend" in idle and "trial " not in idle
    # a cap below the finished count: exit 2, nothing written
    low = hpsearch("extend", *base, "--n-trials", "2", cwd=tmp_path, env=env, check=False)
    assert low.returncode == 2 and "3 finished trials" in low.stderr, low.stderr
    study = optuna.load_study(study_name=study_name, storage=url)
    assert study.user_attrs["settings"]["n_trials"] == 3 and "cap_history" not in study.user_attrs

    out = hpsearch("extend", *base, "--add", "5", cwd=tmp_path, env=env).stdout
    assert "cap 3 -> 8" in out
    ran = hpsearch("worker", *base, cwd=tmp_path, env=env).stdout
    assert len(re.findall(r"^trial \d+ COMPLETE ", ran, re.M)) == 5, ran
    assert _finished(url, study_name) == 8
    study = optuna.load_study(study_name=study_name, storage=url)
    assert [(h["from"], h["to"], h["finished"], h["by"]) for h in study.user_attrs["cap_history"]] == [
        (3, 8, 3, "extend")
    ]


def test_run_with_a_higher_n_trials_extends_a_finished_study(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    env = _env(url)
    run = ["run", "--task", "fault_task", "--study", study_name, "--max-epochs", "1"]
    hpsearch(*run, "--n-trials", "2", cwd=tmp_path, env=env)
    out = hpsearch(*run, "--n-trials", "4", cwd=tmp_path, env=env).stdout
    assert "cap 2 -> 4" in out and len(re.findall(r"^trial \d+ COMPLETE ", out, re.M)) == 2, out
    assert _finished(url, study_name) == 4
    # create's own hint for an existing study names `extend`
    again = hpsearch("create", "--task", "fault_task", "--study", study_name, cwd=tmp_path, env=env, check=False)
    assert again.returncode == 2 and f"hpsearch extend --study {study_name}" in again.stderr

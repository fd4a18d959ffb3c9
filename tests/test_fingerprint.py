"""Data identity: a worker on other data than the study's trials used stops (exit 2) unless allowed."""

from __future__ import annotations

import os
from pathlib import Path
import re

from conftest import ROOT
from conftest import cli_env
from conftest import hpsearch
import optuna

from hpsearch._fingerprint import differences
from hpsearch._fingerprint import files_fingerprint


def _folder(path: Path, **files: str) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_a_worker_on_other_data_stops_naming_the_difference(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    env = cli_env(HPSEARCH_STORAGE=url, PYTHONPATH=f"{ROOT / 'tests'}{os.pathsep}{ROOT}")
    first = _folder(tmp_path / "a", **{"images.bin": "0123456789", "labels.bin": "01"})
    same = _folder(tmp_path / "a_copy", **{"images.bin": "0123456789", "labels.bin": "01"})  # elsewhere, same
    other = _folder(tmp_path / "b", **{"images.bin": "0123456789X", "labels.bin": "01"})
    hpsearch("create", "--task", "fault_task", "--study", study_name, "--max-epochs", "1", "--n-trials", "3",
             cwd=tmp_path, env=env)  # fmt: skip
    worker = ["worker", "--study", study_name, "--n-trials", "1", "--data-dir"]
    hpsearch(*worker, str(first), cwd=tmp_path, env=env)
    fp = optuna.load_study(study_name=study_name, storage=url).user_attrs["data_fingerprint"]
    assert fp["files"] == 2 and fp["bytes"] == 12 and fp["splits"] == {"train": 200, "val": 50, "test": 50}

    hpsearch(*worker, str(same), cwd=tmp_path, env=env)  # same content at another path: fine
    proc = hpsearch(*worker, str(other), cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "file images.bin has 11 bytes, was 10" in proc.stderr and "--allow-other-data" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "trial " not in proc.stdout
    assert sum(t.state.name == "COMPLETE" for t in optuna.load_study(study_name=study_name, storage=url).trials) == 2

    allowed = hpsearch(*worker, str(other), "--allow-other-data", cwd=tmp_path, env=env)
    assert len(re.findall(r"^trial \d+ COMPLETE ", allowed.stdout, re.M)) == 1 and "other data" in allowed.stderr


def test_differences_name_files_folders_and_splits(tmp_path: Path) -> None:
    a = files_fingerprint(str(_folder(tmp_path / "a", x="1", y="22")))
    b = files_fingerprint(str(_folder(tmp_path / "b", x="1", z="333")))
    assert differences(a, b) == ["file y is missing", "file z is new"]
    assert differences({**a, "splits": {"train": 8, "val": 1}}, {**a, "splits": {"train": 7, "val": 1}}) == [
        "train split has 7 examples, was 8"
    ]
    assert differences(a, a) == []

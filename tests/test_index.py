"""The worker index rule (search/_index.py): one rule for workers and ``launch``, under any scheduler."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from test_concurrency import create
from test_concurrency import env_for

from hpsearch._index import RESTART_STRIDE
from hpsearch._index import launch_slot_index
from hpsearch._index import resolve_worker_index
from hpsearch._launch import Launcher
from hpsearch._launch import plan_slots

ALL = {
    "HPSEARCH_WORKER_INDEX": "7",
    "SLURM_ARRAY_TASK_ID": "3",
    "SLURM_RESTART_COUNT": "0",
    "JOB_COMPLETION_INDEX": "5",
    "JOB_INDEX_FAILURE_COUNT": "0",
}


def test_the_first_source_wins_in_order() -> None:
    env = dict(ALL)
    assert resolve_worker_index(2, env).index == 2 and resolve_worker_index(2, env).source == "--worker-index"
    seen = []
    for var in ("HPSEARCH_WORKER_INDEX", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        w = resolve_worker_index(None, env)
        seen.append((w.source, w.index))
        del env[var]
    w = resolve_worker_index(None, env)
    assert seen == [("HPSEARCH_WORKER_INDEX", 7), ("SLURM_ARRAY_TASK_ID", 3), ("JOB_COMPLETION_INDEX", 5)]
    assert w.source == "host+pid" and w.scheduler is None and 0 <= w.index < 1_000_000


def test_schedulers_are_named_and_restarts_move_the_index() -> None:
    slurm = resolve_worker_index(None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_RESTART_COUNT": "2"})
    assert (slurm.index, slurm.scheduler, slurm.restarts) == (3 + 2 * RESTART_STRIDE, "Slurm", 2)
    assert slurm.describe() == f"worker index {slurm.index} from Slurm (SLURM_ARRAY_TASK_ID, restart 2)"
    k8s = resolve_worker_index(None, {"JOB_COMPLETION_INDEX": "1", "JOB_INDEX_FAILURE_COUNT": ""})
    assert (k8s.index, k8s.scheduler) == (1, "Kubernetes")  # annotation absent: no failures yet
    assert k8s.describe() == "worker index 1 from Kubernetes (JOB_COMPLETION_INDEX)"


@pytest.mark.parametrize("bad", ["", "x", "-1", " "])
def test_unusable_values_fall_through(bad: str) -> None:
    w = resolve_worker_index(
        None, {"HPSEARCH_WORKER_INDEX": bad, "SLURM_ARRAY_TASK_ID": bad, "JOB_COMPLETION_INDEX": "4"}
    )
    assert (w.source, w.index) == ("JOB_COMPLETION_INDEX", 4)


def test_distinct_hosts_get_distinct_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    seen = set()
    for host in ("a1b2c3d4e5f6", "0f9e8d7c6b5a"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        seen.add(resolve_worker_index(None, {}).index)
    assert len(seen) == 2


def test_launch_slot_indices_are_distinct_across_launchers_slots_and_restarts() -> None:
    n, m = 3, 2
    combos = list(itertools.product(range(4), range(m + 1), range(n)))  # (launcher, restart, slot)
    indices = [launch_slot_index(b, i, n, r, m) for b, r, i in combos]
    assert len(set(indices)) == len(combos)
    assert [launch_slot_index(0, i, n, 0, m) for i in range(n)] == [0, 1, 2]  # outside a scheduler: as before
    assert launch_slot_index(0, 1, n, 1, m) == 1 + n  # a restart: index + restarts * slots, as before


def test_launch_under_a_scheduler_offsets_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPSEARCH_WORKER_INDEX", raising=False)
    slots = plan_slots(["0", "1"], 1, 1)
    first = Launcher(slots, [], storage_url="sqlite://", max_restarts=3, base_index=0)
    second = Launcher(slots, [], storage_url="sqlite://", max_restarts=3, base_index=1)
    a = {first._env(s)["HPSEARCH_WORKER_INDEX"] for s in slots}
    b = {second._env(s)["HPSEARCH_WORKER_INDEX"] for s in slots}
    assert a == {"0", "1"} and len(b) == 2 and not a & b


def test_a_worker_logs_the_scheduler_it_saw(tmp_path: Path, study_name: str) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'i.db'}"
    create(url, study_name, tmp_path, "--n-trials", "1")
    runs = [
        (
            [],
            {"SLURM_ARRAY_TASK_ID": "3", "JOB_COMPLETION_INDEX": "9"},
            "worker index 3 from Slurm (SLURM_ARRAY_TASK_ID)",
        ),
        (
            [],
            {"JOB_COMPLETION_INDEX": "2", "JOB_INDEX_FAILURE_COUNT": "1"},
            f"worker index {2 + RESTART_STRIDE} from Kubernetes (JOB_COMPLETION_INDEX, restart 1)",
        ),
    ]
    for flags, extra, expected in runs:
        proc = subprocess.run(
            [sys.executable, "-m", "hpsearch", "worker", "--study", study_name, *flags],
            cwd=tmp_path,
            env=env_for(url, **extra),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert expected in proc.stdout, proc.stdout

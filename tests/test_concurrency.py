"""Many workers, one shared study: caps, crashes, restarts, signals, on real database servers."""

from __future__ import annotations

from datetime import datetime
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from conftest import ROOT
from conftest import cli_env
from conftest import hpsearch
import optuna
import pytest

TESTS = ROOT / "tests"


def env_for(url: str, **extra: str) -> dict[str, str]:
    return cli_env(HPSEARCH_STORAGE=url, PYTHONPATH=f"{TESTS}{os.pathsep}{ROOT}", **extra)


def create(url: str, name: str, cwd: Path, *flags: str, **env: str) -> None:
    hpsearch(
        "create",
        "--task",
        "fault_task",
        "--study",
        name,
        "--max-epochs",
        "1",
        "--pruner",
        "none",
        *flags,
        cwd=cwd,
        env=env_for(url, **env),
    )


def start_worker(url: str, name: str, cwd: Path, *flags: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "worker", "--study", name, *flags],
        cwd=cwd,
        env=env_for(url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finish(procs: list[subprocess.Popen[str]], timeout: float = 300) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(out)
        assert p.returncode == 0, f"worker exited {p.returncode}:\n{out}"
    return outs


def assert_clean(study: optuna.Study, cap: int) -> None:
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # unique and contiguous
    s = states(study)
    assert s.get("COMPLETE", 0) + s.get("PRUNED", 0) == cap, s
    assert s.get("RUNNING", 0) == 0 and s.get("WAITING", 0) == 0, s


# 1. ------------------------------------------------------------------------------------------------
def test_four_workers_respect_the_study_cap_exactly(storage_url: str, study_name: str, tmp_path: Path) -> None:
    create(storage_url, study_name, tmp_path, "--n-trials", "40")
    procs = [
        start_worker(storage_url, study_name, tmp_path, HPSEARCH_WORKER_ID=f"w{i}", HPSEARCH_WORKER_INDEX=str(i))
        for i in range(4)
    ]  # started at the same instant on an empty study
    outs = finish(procs)
    assert all(o.count("COMPLETE") >= 1 for o in outs), "every worker ran"
    assert_clean(load(storage_url, study_name), 40)


# 2. ------------------------------------------------------------------------------------------------
def test_kill_9_mid_trial_is_failed_after_grace_and_retried_once(
    storage_url: str, study_name: str, tmp_path: Path
) -> None:
    create(storage_url, study_name, tmp_path, "--n-trials", "4")
    hb = ["--heartbeat-interval", "1", "--grace-period", "3"]
    victim = start_worker(storage_url, study_name, tmp_path, *hb, HPSEARCH_TEST_FAULTS="0:slow")
    study = load(storage_url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 1, 120, "trial 0 running")
    time.sleep(1.5)  # mid-trial: a heartbeat was written
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    t0 = study.get_trials(deepcopy=False)[0]
    assert t0.state.name == "RUNNING"  # a zombie, until the grace period says otherwise
    rescuer = start_worker(storage_url, study_name, tmp_path, *hb)
    finish([rescuer])
    study = load(storage_url, study_name)
    trials = study.get_trials()
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["fail_reason"].startswith("stale")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].params == trials[0].params
    assert retries[0].state.name == "COMPLETE" and retries[0].user_attrs.get("retry_of") == 0
    assert retries[0].user_attrs.get("fail_reason") is None
    assert_clean(study, 4)


# 3. ------------------------------------------------------------------------------------------------
@pytest.fixture
def own_postgres():  # type: ignore[no-untyped-def]
    """A PostgreSQL of this test's own, which it may restart (never the shared server)."""
    from private_postgres import private_postgres

    with private_postgres() as pg:
        yield pg


def test_postgres_restart_during_a_search_loses_nothing(own_postgres, study_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg_url = own_postgres.url
    create(pg_url, study_name, tmp_path, "--n-trials", "30")
    procs = [start_worker(pg_url, study_name, tmp_path, HPSEARCH_WORKER_INDEX=str(i)) for i in range(2)]
    study = load(pg_url, study_name)
    wait_for(lambda: states(study).get("COMPLETE", 0) >= 5, 180, "5 finished trials")
    before = {t.number: t.value for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    own_postgres.restart()
    restarted = datetime.now()
    finish(procs)  # both workers exit 0: they carried on through the restart
    study = load(pg_url, study_name)
    after = {t.number: t.value for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    assert all(after.get(n) == v for n, v in before.items()), "a finished trial was lost"
    assert (
        sum(t.datetime_complete > restarted for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
        >= 5
    ), "trials finished after the restart"
    # A trial in flight during the restart may have been failed and retried; none may be left RUNNING.
    s = states(study)
    assert s.get("RUNNING", 0) == 0 and s.get("COMPLETE", 0) + s.get("PRUNED", 0) == 30, s


# 4. ------------------------------------------------------------------------------------------------
def test_nan_and_out_of_memory_trials_do_not_stop_the_worker(storage_url: str, study_name: str, tmp_path: Path) -> None:
    create(storage_url, study_name, tmp_path, "--n-trials", "4")
    w = start_worker(storage_url, study_name, tmp_path, HPSEARCH_TEST_FAULTS="0:nan,1:oom,2:error")
    finish([w])
    trials = load(storage_url, study_name).get_trials()
    assert trials[0].state.name == "PRUNED" and trials[0].user_attrs["fail_reason"].startswith("diverged")
    assert trials[1].state.name == "FAIL" and trials[1].user_attrs["fail_reason"].startswith("out of memory")
    assert "ResourceExhaustedError" in trials[1].user_attrs["fail_reason"]
    assert trials[2].state.name == "FAIL" and "injected failure" in trials[2].user_attrs["fail_reason"]
    assert [t.state.name for t in trials[3:]] == ["COMPLETE"] * 3


def test_k_consecutive_failures_stop_the_worker(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    create(url, study_name, tmp_path)
    w = start_worker(url, study_name, tmp_path, "--max-failures", "2", HPSEARCH_TEST_FAULTS="0:error,1:error,2:error")
    out, _ = w.communicate(timeout=300)
    assert w.returncode == 3, out
    assert "2 trials failed in a row" in out and "fix the cause" in out
    assert [t.state.name for t in load(url, study_name).get_trials()] == ["FAIL", "FAIL"]


# 5. ------------------------------------------------------------------------------------------------
def test_two_workers_on_embedded_sqlite_never_hit_database_is_locked(tmp_path: Path, study_name: str) -> None:
    url = "sqlite:///hpsearch.db"  # the embedded default, relative to the working directory
    create(url, study_name, tmp_path, "--n-trials", "100")
    procs = [start_worker(url, study_name, tmp_path, HPSEARCH_WORKER_INDEX=str(i)) for i in range(2)]
    outs = finish(procs, timeout=600)
    assert not any("locked" in o for o in outs)
    study = load(f"sqlite:///{tmp_path / 'hpsearch.db'}", study_name)
    assert states(study) == {"COMPLETE": 100}


# 6. ------------------------------------------------------------------------------------------------
def test_sigterm_during_a_trial_exits_promptly_and_requeues_it(
    storage_url: str, study_name: str, tmp_path: Path
) -> None:
    create(storage_url, study_name, tmp_path, "--n-trials", "3")
    w = start_worker(storage_url, study_name, tmp_path, HPSEARCH_TEST_FAULTS="0:slow", HPSEARCH_TEST_SLOW_SECONDS="1")
    study = load(storage_url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 1, 120, "trial 0 running")
    time.sleep(2)
    t0 = time.monotonic()
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < 10, f"worker took {elapsed:.1f} s to stop"
    assert w.returncode == 0, out
    trials = load(storage_url, study_name).get_trials()
    assert trials[0].state.name == "FAIL" and "SIGTERM" in trials[0].user_attrs["fail_reason"]
    assert trials[1].state.name == "WAITING" and trials[1].params == trials[0].params  # re-enqueued
    assert "RUNNING" not in [t.state.name for t in trials]
    # the next worker picks the retry up first
    finish([start_worker(storage_url, study_name, tmp_path)])
    trials = load(storage_url, study_name).get_trials()
    assert trials[1].state.name == "COMPLETE" and trials[1].user_attrs["retry_of"] == 0


# launcher --------------------------------------------------------------------------------------------
def test_launch_gives_each_slot_its_gpu_and_restarts_a_crashed_worker(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    create(url, study_name, tmp_path, "--n-trials", "12")
    p = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "launch", "--study", study_name, "--gpus", "0,1", "--workers-per-gpu", "2"],
        cwd=tmp_path,
        env=env_for(url, HPSEARCH_TEST_FAULTS="0:slow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,  # TensorFlow's C++ logs (stderr) must not split stdout lines
    )
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, out + err
    started = [ln for ln in out.splitlines() if ln.startswith("[launch] started")]
    assert [ln.split("CUDA_VISIBLE_DEVICES=")[1] for ln in started] == ["0", "0", "1", "1"]
    # each worker reports its own environment
    seen = sorted(ln.split("CUDA_VISIBLE_DEVICES=")[1].split(";")[0] for ln in out.splitlines() if "] worker pid" in ln)
    assert seen == ["0", "0", "1", "1"]
    assert all(
        f"[gpu{g}-w{i}] trial" in out or f"[gpu{g}-w{i}] worker done" in out for i, g in enumerate(["0", "0", "1", "1"])
    )
    assert_clean(load(url, study_name), 12)


def test_launch_restarts_a_killed_worker_and_ctrl_c_stops_all(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    create(url, study_name, tmp_path)  # no cap: workers run until stopped
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpsearch",
            "launch",
            "--study",
            study_name,
            "--gpus",
            "none",
            "--workers-per-gpu",
            "2",
            "--heartbeat-interval",
            "1",
            "--grace-period",
            "3",
        ],
        cwd=tmp_path,
        env=env_for(url, HPSEARCH_TEST_FAULTS="0:slow,1:slow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    study = load(url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 2, 120, "both workers in their (slow) first trials")
    children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGKILL)
    wait_for(
        lambda: (
            len(subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()) == 2
            and subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split() != children
        ),
        60,
        "the killed worker to be restarted",
    )
    wait_for(
        lambda: states(study).get("FAIL", 0) >= 1 and states(study).get("COMPLETE", 0) >= 3,
        180,
        "the killed worker's trial to be swept, and more trials",
    )
    p.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert "crashed (code -9); restart 1/3" in out
    assert "stopping 2 worker(s)" in out
    assert states(load(url, study_name)).get("RUNNING", 0) == 0


# studies before workers ------------------------------------------------------------------------------
def test_a_trial_failed_elsewhere_does_not_kill_the_worker(storage_url: str, study_name: str, tmp_path: Path) -> None:
    create(storage_url, study_name, tmp_path, "--n-trials", "2")
    w = start_worker(storage_url, study_name, tmp_path, HPSEARCH_TEST_FAULTS="0:slow", HPSEARCH_TEST_SLOW_SECONDS="0.3")
    study = load(storage_url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 1, 120, "trial 0 running")
    # what a sweep on another machine does to a trial it believes lost
    study._storage.set_trial_state_values(study.get_trials(deepcopy=False)[0]._trial_id, optuna.trial.TrialState.FAIL)
    out = finish([w])[0]
    assert "already FAIL elsewhere" in out
    assert [t.state.name for t in load(storage_url, study_name).get_trials()] == ["FAIL", "COMPLETE", "COMPLETE"]


def test_schema_too_old_names_optuna_storage_upgrade(tmp_path: Path, study_name: str) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'old.db'}"
    create(url, study_name, tmp_path)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as c:  # pretend the tables were made by an old Optuna
        c.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = 'v3.0.0.d'"))
    engine.dispose()
    p = start_worker(url, study_name, tmp_path)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2, out
    assert "optuna storage upgrade --storage" in out and "too old" in out

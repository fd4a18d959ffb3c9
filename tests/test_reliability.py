"""Issue 16, the worker side: heartbeat settings, secrets of child workers, surplus trials, signals.

Real servers and real worker processes (tests/fault_task.py, tests/generator_task.py), no mocks.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

from conftest import hpsearch
import optuna
import pytest
from test_concurrency import create
from test_concurrency import env_for
from test_concurrency import finish
from test_concurrency import load
from test_concurrency import start_worker
from test_concurrency import states
from test_concurrency import wait_for


def _one_line(p: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert len(err) == 1, p.stderr
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


# -- heartbeat settings ---------------------------------------------------------------------------
def test_storm_settings_exit_2_before_any_trial(pg_url: str, study_name: str, tmp_path: Path) -> None:
    """The fault matrix's storm: 2 workers, --heartbeat-interval 60 --grace-period 5, a cap of 6.

    Before the fix both ran, and each failed the other's live trials as stale (140 FAIL against 5
    COMPLETE). Now each exits 2 with one line naming both values and a good pair, before a trial.
    """
    create(pg_url, study_name, tmp_path, "--n-trials", "6")
    procs = [
        subprocess.run(
            [sys.executable, "-m", "hpsearch", "worker", "--study", study_name]
            + ["--heartbeat-interval", "60", "--grace-period", "5"],
            cwd=tmp_path,
            env=env_for(pg_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    for p in procs:
        line = _one_line(p, "--grace-period 5", "--heartbeat-interval 60", "150 s")
        assert (
            "--heartbeat-interval 60 --grace-period 150" in line and "--heartbeat-interval 2 --grace-period 5" in line
        )
    assert load(pg_url, study_name).get_trials() == []  # nothing ran, nothing failed
    # the same check guards `run` and `launch` before they start a child
    for cmd in (["launch", "--study", study_name, "--gpus", "none"], ["run", "--task", "fault_task"]):
        p = hpsearch(
            *cmd, "--heartbeat-interval", "60", "--grace-period", "5", cwd=tmp_path, env=env_for(pg_url), check=False
        )
        _one_line(p, "--grace-period 5 is too short for --heartbeat-interval 60")


def test_the_rule_and_its_good_pairs() -> None:
    from hpsearch._errors import UsageError
    from hpsearch._heartbeat import check_heartbeat
    from hpsearch._heartbeat import max_interval_for
    from hpsearch._heartbeat import min_grace_period

    assert min_grace_period(30) == 75 and min_grace_period(1) == 3 and min_grace_period(60) == 150
    check_heartbeat(30, 120)  # the defaults
    check_heartbeat(1, 3)  # the tests' fast pair
    for i, g in ((60, 5), (60, 120), (1, 2), (10, 20)):
        with pytest.raises(UsageError):
            check_heartbeat(i, g)
    for g in range(3, 400):  # every suggested pair is itself accepted, and is the largest interval
        i = max_interval_for(g)
        check_heartbeat(i, g)
        with pytest.raises(UsageError):
            check_heartbeat(i + 1, g)


def test_workers_with_clashing_flags_on_one_study_exit_2(pg_url: str, study_name: str, tmp_path: Path) -> None:
    """Each pair alone is valid; together (interval 5 s judged by a 5 s grace period) they are not."""
    create(pg_url, study_name, tmp_path, "--n-trials", "2")
    first = start_worker(pg_url, study_name, tmp_path, "--heartbeat-interval", "1", "--grace-period", "5")
    finish([first])
    study = load(pg_url, study_name)
    assert study.user_attrs["heartbeat"] == {"max_interval": 1, "min_grace_period": 5}
    p = hpsearch(
        "worker",
        "--study",
        study_name,
        "--heartbeat-interval",
        "5",
        "--grace-period",
        "120",
        cwd=tmp_path,
        env=env_for(pg_url),
        check=False,
    )
    _one_line(p, "conflicts with study", "intervals up to 1 s", "grace periods down to 5 s", "at least 13 s")
    # a compatible pair is accepted and widens nothing it does not need to
    ok = start_worker(pg_url, study_name, tmp_path, "--heartbeat-interval", "2", "--grace-period", "30")
    finish([ok])
    assert load(pg_url, study_name).user_attrs["heartbeat"] == {"max_interval": 2, "min_grace_period": 5}
    assert states(load(pg_url, study_name)) == {"COMPLETE": 2}


# -- secrets ----------------------------------------------------------------------------------------
SECRET = "s3cret-Pw-4711"  # PostgreSQL on 127.0.0.1 trusts local connections: any password works


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def _environ(pid: int) -> dict[bytes, bytes]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


@pytest.mark.parametrize(("command", "via"), [("launch", "file"), ("run", "environment")])
def test_child_workers_never_get_the_resolved_password(
    pg_url: str, study_name: str, tmp_path: Path, command: str, via: str
) -> None:
    assert "@" in pg_url and ":" not in pg_url.split("//", 1)[1].split("@")[0]  # no password in the URL
    extra = {"HPSEARCH_TEST_FAULTS": "0:slow,1:slow", "HPSEARCH_TEST_SLOW_SECONDS": "1"}
    if via == "file":
        secret_file = tmp_path / "pw"
        secret_file.write_text(SECRET + "\n")
        extra["HPSEARCH_STORAGE_PASSWORD_FILE"] = str(secret_file)
    else:
        extra["HPSEARCH_STORAGE_PASSWORD"] = SECRET
    if command == "launch":
        create(pg_url, study_name, tmp_path)
        cmd = ["launch", "--study", study_name, "--gpus", "none", "--workers-per-gpu", "2"]
    else:
        cmd = ["run", "--task", "fault_task", "--study", study_name, "--workers", "2", "--max-epochs", "1"]
        cmd += ["--pruner", "none", "--n-trials", "50"]
    p = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", *cmd],
        cwd=tmp_path,
        env=env_for(pg_url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: len(_children(p.pid)) == 2, 120, "two child workers")
        wait_for(
            lambda: (
                study_name in [s.study_name for s in optuna.get_all_study_summaries(pg_url)]
                and states(load(pg_url, study_name)).get("RUNNING", 0) >= 1
            ),
            180,
            "a running trial: the children connected, so they had the password they needed",
        )
        for child in _children(p.pid):
            env = _environ(child)
            assert SECRET.encode() not in env.get(b"HPSEARCH_STORAGE", b""), "password in the child's URL variable"
            if via == "file":
                assert not any(SECRET.encode() in v for v in env.values()), "password in the child's environment"
                assert env[b"HPSEARCH_STORAGE_PASSWORD_FILE"] == str(secret_file).encode()
            else:
                assert env[b"HPSEARCH_STORAGE_PASSWORD"] == SECRET.encode()  # passed on as given
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert SECRET not in out


# -- surplus trials ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_claims_racing_for_the_last_slots_never_overshoot_the_cap(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, study_name: str
) -> None:
    """16 claimers (own storages, so own connections) start at one instant on a study capped at 5:
    exactly 5 trials are created, none beyond the cap. Without the lock, each saw room and created one."""
    from hpsearch._claim import claim_trial_id
    from hpsearch.storage import open_storage

    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")
    )
    optuna.create_study(study_name=study_name, storage=open_storage(url, create_tables=True), direction="maximize")
    studies = [optuna.load_study(study_name=study_name, storage=open_storage(url)) for _ in range(16)]
    barrier = threading.Barrier(len(studies))
    got: list[int | None] = []

    def claim(study: optuna.Study) -> None:
        barrier.wait()
        tid, _ = claim_trial_id(study, 5)
        got.append(tid)

    threads = [threading.Thread(target=claim, args=(s,)) for s in studies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    created = [t for t in got if t is not None]
    assert len(got) == 16 and len(created) == 5, got
    assert len(load(url, study_name).get_trials()) == 5


def _many_workers_no_fail_row(url: str, study_name: str, tmp_path: Path, n: int, cap: int) -> None:
    create(url, study_name, tmp_path, "--n-trials", str(cap))
    procs = [
        start_worker(url, study_name, tmp_path, HPSEARCH_WORKER_ID=f"w{i}", HPSEARCH_WORKER_INDEX=str(i))
        for i in range(n)
    ]
    finish(procs, timeout=900)
    study = load(url, study_name)
    assert states(study) == {"COMPLETE": cap}, states(study)  # no FAIL row, nothing beyond the cap
    status = hpsearch("status", "--study", study_name, cwd=tmp_path, env=env_for(url)).stdout
    assert f"trials: COMPLETE {cap}\n" in status and "FAIL" not in status and "surplus" not in status
    out = tmp_path / "r.html"
    report = hpsearch("report", "--study", study_name, "-o", str(out), cwd=tmp_path, env=env_for(url)).stdout
    page = out.read_text()
    assert f": {cap} trials;" in report and f"{cap} (COMPLETE {cap})" in page, report
    assert '<td class="state">FAIL</td>' not in page


@pytest.mark.slow  # 214 s on the shared 2 cores (8 TensorFlow start-ups); the racing-claims test above is the fast proof
def test_eight_workers_and_a_cap_leave_no_fail_row(pg_url: str, study_name: str, tmp_path: Path) -> None:
    _many_workers_no_fail_row(pg_url, study_name, tmp_path, n=8, cap=16)


@pytest.mark.slow
def test_sixteen_workers_and_a_cap_leave_no_fail_row(pg_url: str, study_name: str, tmp_path: Path) -> None:
    _many_workers_no_fail_row(pg_url, study_name, tmp_path, n=16, cap=48)


def test_a_surplus_trial_reads_as_no_failure(tmp_path: Path, study_name: str) -> None:
    """The fallback (no lock: the gRPC proxy, or the lock's wait ran out): PRUNED + ``surplus``,
    left out of status, studies and report."""
    from hpsearch._claim import mark_surplus
    from hpsearch.storage import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    create(url, study_name, tmp_path, "--n-trials", "1")
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    t = study.ask()
    study.tell(t, 0.5)
    frozen = mark_surplus(study, study.ask(), 1)
    assert frozen.state.name == "PRUNED" and frozen.user_attrs["surplus"] is True
    status = hpsearch("status", "--study", study_name, cwd=tmp_path, env=env_for(url)).stdout
    assert "trials: COMPLETE 1\n" in status and "PRUNED" not in status and "1 surplus trial(s)" in status
    studies = hpsearch("studies", cwd=tmp_path, env=env_for(url)).stdout
    row = next(line for line in studies.splitlines() if line.startswith(study_name)).split()
    assert row[2:6] == ["1", "1", "0", "0"], studies  # trials, complete, pruned, fail
    out = tmp_path / "r.html"
    report = hpsearch("report", "--study", study_name, "-o", str(out), cwd=tmp_path, env=env_for(url)).stdout
    assert ": 1 trials;" in report and "1 (COMPLETE 1)" in out.read_text()


# -- signals ----------------------------------------------------------------------------------------
def _running(study: optuna.Study, number: int) -> bool:
    return any(t.number == number and t.state.name == "RUNNING" for t in study.get_trials())


def test_sigterm_of_a_retry_trial_requeues_it(tmp_path: Path, study_name: str) -> None:
    """Optuna's retry callback allows one retry; an interruption is no failure and re-enqueues anyway."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    create(url, study_name, tmp_path, "--n-trials", "2")
    slow = {"HPSEARCH_TEST_FAULTS": "0:slow,1:slow", "HPSEARCH_TEST_SLOW_SECONDS": "3"}  # 18 s per trial
    for number in (0, 1):  # trial 0, then its retry (trial 1), each interrupted mid-trial
        w = start_worker(url, study_name, tmp_path, **slow)
        study = load(url, study_name)
        wait_for(lambda n=number, s=study: _running(s, n), 120, f"trial {number} running")
        time.sleep(1.5)
        w.send_signal(signal.SIGTERM)
        out, _ = w.communicate(timeout=60)
        assert w.returncode == 0, out
    trials = load(url, study_name).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "WAITING"]
    assert trials[2].params == trials[0].params and trials[2].system_attrs["failed_trial"] == 0
    assert trials[2].system_attrs["interrupted"] == [0, 1]
    assert all("SIGTERM; re-enqueued" in t.user_attrs["fail_reason"] for t in trials[:2])
    finish([start_worker(url, study_name, tmp_path)])
    trials = load(url, study_name).get_trials()
    assert trials[2].state.name == "COMPLETE" and trials[2].user_attrs["retry_of"] == 0
    assert states(load(url, study_name)) == {"FAIL": 2, "COMPLETE": 2}


def _interrupt(url: str, study_name: str, tmp_path: Path, signals: list[int], gap: float) -> tuple[float, str]:
    w = start_worker(url, study_name, tmp_path, HPSEARCH_TEST_SLOW_SECONDS="0.3")
    study = load(url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 1, 180, "a running trial")
    time.sleep(1.0)  # inside model.fit, on the generator's batches
    t0 = time.monotonic()
    for s in signals:
        if w.poll() is not None:
            break  # already gone: its clean-up was done
        w.send_signal(s)
        time.sleep(gap)
    try:
        out, _ = w.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        w.kill()
        out, _ = w.communicate()
        raise AssertionError(f"worker hung after {signals}:\n{out}") from None
    assert w.returncode == 0, f"exit {w.returncode}:\n{out}"
    return time.monotonic() - t0, out


def _generator_study(tmp_path: Path, study_name: str) -> str:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    hpsearch(
        "create",
        "--task",
        "generator_task",
        "--study",
        study_name,
        "--max-epochs",
        "50",
        "--pruner",
        "none",
        cwd=tmp_path,
        env=env_for(url),
    )
    return url


@pytest.mark.parametrize(
    ("sig", "count", "gap"),
    [(signal.SIGINT, 2, 0.05), (signal.SIGTERM, 2, 0.05), (signal.SIGINT, 200, 0.01)],
    ids=["ctrl-c-twice", "sigterm-twice", "ctrl-c-burst"],
)
def test_a_second_signal_50_ms_later_does_not_abort_the_clean_up(
    sig: int, count: int, gap: float, tmp_path: Path, study_name: str
) -> None:
    """The burst (a signal every 10 ms until the worker is gone) is sure to land inside the clean-up
    (writing the FAIL and the re-enqueue), where a second raise used to escape: exit 130, trial RUNNING."""
    url = _generator_study(tmp_path, study_name)
    seconds, out = _interrupt(url, study_name, tmp_path, [sig] * count, gap=gap)
    assert seconds < 20, seconds
    trials = load(url, study_name).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"], out
    assert trials[1].params == trials[0].params
    assert f"interrupted by {signal.Signals(sig).name}; re-enqueued" in trials[0].user_attrs["fail_reason"]


@pytest.mark.slow
def test_sigterm_of_a_generator_fed_trial_ten_times_never_hangs(tmp_path: Path, study_name: str) -> None:
    url = _generator_study(tmp_path, study_name)
    times = []
    for _ in range(10):
        seconds, _ = _interrupt(url, study_name, tmp_path, [signal.SIGTERM], gap=0)
        times.append(seconds)
    assert max(times) < 20, times
    s = states(load(url, study_name))
    assert s == {"FAIL": 10, "WAITING": 1}, s  # each interrupted trial re-enqueued, the last one waiting


def test_sigterm_of_a_generator_fed_trial_three_times(tmp_path: Path, study_name: str) -> None:
    """The default-run share of the ten-times test above."""
    url = _generator_study(tmp_path, study_name)
    for _ in range(3):
        seconds, out = _interrupt(url, study_name, tmp_path, [signal.SIGTERM], gap=0)
        assert seconds < 20 and "worker done" in out, (seconds, out)
    assert states(load(url, study_name)) == {"FAIL": 3, "WAITING": 1}


# -- bad input: one line, exit 2, nothing written ---------------------------------------------------
def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from hpsearch.cli import main

    try:
        rc = main(args)
    except SystemExit as e:  # argparse's own errors
        rc = int(e.code or 0)
    err = capsys.readouterr().err
    return rc, err


def _params_file(tmp_path: Path, **change: object) -> Path:
    import json

    from test_train import GOOD

    doc = {**GOOD, **change}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("export into a missing folder", "does not exist; create it or fix -o"),
        ("train --out under a file", "lies under"),
        ("dashboard --port 70000", "70000 is not a TCP port"),
        ("proxy --port 70000", "70000 is not a TCP port"),
        ("URL with a non-numeric port", "has port 'abc'"),
        ("10,000-character study name", "10000 characters long, more than 512"),
        ("empty study name", "the study name is empty"),
        ("--max-epochs 1000000000", "--max-epochs 1000000000 is out of range: give 1 to 10000"),
        ("best_epoch 10**12", "'best_epoch' is 1000000000000, more than 10000"),
        ("train --epochs 10**9", "--epochs 1000000000 is more than 10000"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    case: str, needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k in list(os.environ):
        if k.startswith("HPSEARCH_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "hpsearch.db"
    if case == "export into a missing folder":
        url = f"sqlite:///{db}"
        study = optuna.create_study(study_name="s", storage=url, direction="maximize")
        study.set_user_attr("settings", {"task": "digits"})
        study.add_trial(optuna.create_trial(value=0.5))
        args = ["export", "--study", "s", "-o", str(tmp_path / "missing" / "best.json")]
    elif case == "train --out under a file":
        (tmp_path / "afile").write_text("x")
        args = ["train", "--params", str(_params_file(tmp_path)), "--out", str(tmp_path / "afile" / "final")]
    elif case.startswith(("dashboard", "proxy")):
        args = [case.split()[0], "--port", "70000"]
    elif case == "URL with a non-numeric port":
        args = ["status", "--study", "s", "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:abc/db"]
    elif case == "10,000-character study name":
        args = ["create", "--task", "digits", "--study", "x" * 10_000]
    elif case == "empty study name":
        args = ["create", "--task", "digits", "--study", ""]
    elif case == "--max-epochs 1000000000":
        args = ["create", "--task", "digits", "--study", "s", "--max-epochs", "1000000000"]
    elif case == "best_epoch 10**12":
        args = ["train", "--params", str(_params_file(tmp_path, best_epoch=10**12)), "--out", "final"]
    else:
        args = ["train", "--params", str(_params_file(tmp_path)), "--epochs", str(10**9), "--out", "final"]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, err = _main(args, capsys)
    assert rc == 2, (case, err)
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "pw" not in err.replace("--", "")  # a password in a bad URL stays masked
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was written"


# -- train resolves tasks among built-in and installed plug-in tasks only ---------------------------
def test_train_does_not_import_a_module_named_by_the_params_file(tmp_path: Path) -> None:
    import json

    from test_train import GOOD

    params = tmp_path / "p.json"
    params.write_text(json.dumps({**GOOD, "task": "this", "params": {}}))
    p = subprocess.run(
        [sys.executable, "-m", "hpsearch", "train", "--params", str(params), "--out", str(tmp_path / "f")],
        cwd=tmp_path,
        env=env_for("sqlite:///unused.db"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Zen of Python" not in p.stdout and "Beautiful is better" not in p.stdout + p.stderr
    _one_line(p, "unknown task 'this' in the params file: not a built-in or installed plug-in task", "--allow-module")
    assert not (tmp_path / "f").exists()


def test_train_allow_module_runs_a_pythonpath_plugin(tmp_path: Path) -> None:
    import json

    params = tmp_path / "p.json"
    doc = {
        "format": "hpsearch-params",
        "version": 1,
        "task": "plugin_task",
        "params": {"units": 4, "learning_rate": 0.01, "batch_size": 16},
        "best_epoch": 1,
    }
    params.write_text(json.dumps(doc))
    base = [sys.executable, "-m", "hpsearch", "train", "--params", str(params), "--out", str(tmp_path / "f")]
    env = env_for("sqlite:///unused.db")
    refused = subprocess.run(base, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    _one_line(refused, "'plugin_task'", "--allow-module")
    ok = subprocess.run([*base, "--allow-module"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "f" / "model.keras").is_file()

"""The gRPC path: ``hpsearch proxy`` in front of the database, workers on ``grpc://HOST:PORT``.

Two workers behind one proxy (on a SQLite file) reach the study-wide cap exactly. Crash recovery
behind the proxy (README "Many workers, one study"): Optuna's proxy carries no heartbeats, so a
worker behind it that dies leaves its trial RUNNING; nothing behind the proxy sweeps it, and the
cap counts it as taken until a direct-database worker's sweep (or an operator) fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

from conftest import ROOT
from conftest import cli_env
from conftest import hpsearch
import optuna

TESTS = ROOT / "tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def proxy_for(db: str, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """``hpsearch proxy`` on ``db``; yields the workers' storage URL."""
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "proxy", "--port", str(port), "--storage", db],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        banner = proxy.stdout.readline()
        assert f"grpc://127.0.0.1:{port}" in banner, banner
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proxy.send_signal(signal.SIGINT)
        try:
            proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()


def worker(cwd: Path, env: dict[str, str], url: str, i: int, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "worker", "--study", "p", *flags],
        cwd=cwd,
        env={**env, "HPSEARCH_STORAGE": url, "HPSEARCH_WORKER_ID": f"g{i}", "HPSEARCH_WORKER_INDEX": str(i)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def create(db: str, cwd: Path, env: dict[str, str], cap: int) -> None:
    hpsearch(
        "create", "--task", "fault_task", "--study", "p", "--n-trials", str(cap), "--max-epochs", "1",
        "--pruner", "none", "--storage", db, cwd=cwd, env=env,
    )  # fmt: skip


def test_two_workers_behind_the_proxy_reach_the_cap_exactly(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    env = cli_env(PYTHONPATH=str(TESTS))
    create(db, tmp_path, env, cap=6)
    with proxy_for(db, tmp_path, env) as url:
        workers = [worker(tmp_path, env, url, i) for i in range(2)]
        try:
            outputs = [w.communicate(timeout=300)[0] for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out
    ran = [sum(" COMPLETE " in line for line in out.splitlines()) for out in outputs]
    assert sum(ran) == 6 and all(ran), (ran, outputs)  # both took part; surplus trials print FAIL
    study = optuna.load_study(study_name="p", storage=db)  # the database itself, not the proxy
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6, [t.state.name for t in study.get_trials()]
    assert not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert {t.user_attrs.get("worker") for t in finished} == {"g0", "g1"}


def test_a_worker_lost_behind_the_proxy_leaves_its_trial_running(tmp_path: Path) -> None:
    """What README documents: no heartbeat through the proxy, so no sweep behind it; the lost
    trial stays RUNNING and keeps its slot of the cap."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    env = cli_env(PYTHONPATH=str(TESTS), HPSEARCH_TEST_FAULTS="0:slow", HPSEARCH_TEST_SLOW_SECONDS="5")
    create(db, tmp_path, env, cap=2)
    with proxy_for(db, tmp_path, env) as url:
        victim = worker(tmp_path, env, url, 0, "--grace-period", "3", "--heartbeat-interval", "1")
        study = optuna.load_study(study_name="p", storage=db)
        deadline = time.monotonic() + 120
        while not [t for t in study.get_trials() if t.state.name == "RUNNING"]:
            assert time.monotonic() < deadline and victim.poll() is None, "trial 0 never started"
            time.sleep(0.5)
        victim.kill()  # lost mid-trial: no SIGTERM handler runs
        victim.wait()
        time.sleep(3)  # past the grace period
        other = worker(tmp_path, env, url, 1, "--grace-period", "3", "--heartbeat-interval", "1", "--timeout", "15")
        out = other.communicate(timeout=300)[0]
    assert other.returncode == 0, out
    trials = {t.number: t.state.name for t in optuna.load_study(study_name="p", storage=db).get_trials()}
    assert trials[0] == "RUNNING", trials  # never swept, never retried
    assert list(trials.values()).count("COMPLETE") == 1, trials  # the cap still counts trial 0 as taken

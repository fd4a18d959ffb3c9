"""The gRPC path: ``hpsearch proxy`` in front of the database, workers on ``grpc://HOST:PORT``.

Two workers behind one proxy (on a SQLite file) reach the study-wide cap exactly. Crash recovery
behind the proxy (README "Many workers, one study"): Optuna's proxy carries no heartbeats, so a
worker behind it that dies leaves its trial RUNNING; nothing behind the proxy sweeps it, and the
cap counts it as taken until a direct-database worker's sweep (or an operator) fails it.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import socket
import subprocess
import sys

from conftest import ROOT
from conftest import cli_env
from conftest import hpsearch
import optuna

TESTS = ROOT / "tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_workers_behind_the_proxy_reach_the_cap_exactly(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    env = cli_env(PYTHONPATH=str(TESTS))
    hpsearch(
        "create", "--task", "fault_task", "--study", "p", "--n-trials", "6", "--max-epochs", "1",
        "--pruner", "none", "--storage", db, cwd=tmp_path, env=env,
    )  # fmt: skip
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "proxy", "--port", str(port), "--storage", db],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers: list[subprocess.Popen[str]] = []
    try:
        assert proxy.stdout is not None
        banner = proxy.stdout.readline()
        assert f"grpc://127.0.0.1:{port}" in banner, banner
        wenv = {**env, "HPSEARCH_STORAGE": f"grpc://127.0.0.1:{port}"}
        for i in range(2):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hpsearch", "worker", "--study", "p"],
                    cwd=tmp_path,
                    env={**wenv, "HPSEARCH_WORKER_ID": f"g{i}", "HPSEARCH_WORKER_INDEX": str(i)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = [w.communicate(timeout=300)[0] for w in workers]
        for w, out in zip(workers, outputs):
            assert w.returncode == 0, out
        ran = [sum(" COMPLETE " in line for line in out.splitlines()) for out in outputs]
        assert sum(ran) == 6 and all(ran), (ran, outputs)  # both took part; surplus trials print FAIL
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        proxy.send_signal(signal.SIGINT)
        try:
            proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proxy.kill()
    study = optuna.load_study(study_name="p", storage=db)  # the database itself, not the proxy
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6, [t.state.name for t in study.get_trials()]
    assert not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert {t.user_attrs.get("worker") for t in finished} == {"g0", "g1"}
    assert os.path.exists(tmp_path / "p.db")

"""``hpsearch report`` content, and that no storage password reaches the report or the dashboard.

Studies here are synthetic (trials added through Optuna's API with the same user attributes the
trial runner writes), so these tests need no TensorFlow and run in seconds. The real end-to-end
run (a digits search, then report and dashboard in Chromium) is in ``test_browser.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any
import urllib.request
import uuid

import pytest

ROOT = Path(__file__).resolve().parents[1]
HPSEARCH = [sys.executable, "-m", "hpsearch"]
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
SECRET = "s3cret"

TITLES = (
    "Optimization History Plot",
    "Learning curves (validation accuracy per epoch)",
    "Hyperparameter Importances",
    "Parallel Coordinate Plot",
    "Slice Plot",
    "Timeline Plot",
)

# (state, per-epoch val_accuracy, seconds); max_epochs is 4
SPECS: list[tuple[str, list[float], float]] = [
    ("COMPLETE", [0.80, 0.90, 0.93, 0.95], 4.0),
    ("PRUNED", [0.30, 0.35], 2.0),
    ("COMPLETE", [0.85, 0.91, 0.96, 0.94], 4.4),
    ("PRUNED", [0.10], 1.0),
    ("FAIL", [0.50], 1.5),  # left out of the savings
    ("COMPLETE", [0.70, 0.80, 0.85, 0.88], 3.6),
    ("PRUNED", [0.60, 0.65, 0.66], 3.3),
]
MAX_EPOCHS = 4


# -- helpers -----------------------------------------------------------------------------------------
def _params(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from optuna.distributions import CategoricalDistribution
    from optuna.distributions import FloatDistribution
    from optuna.distributions import IntDistribution

    dists = {
        "n_layers": IntDistribution(0, 2),
        "optimizer": CategoricalDistribution(["adam", "sgd"]),
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "batch_size": IntDistribution(16, 128, log=True),
    }
    params = {
        "n_layers": 0,
        "optimizer": ("adam", "sgd")[i % 2],
        "learning_rate": 10 ** (-1 - i % 3) * 0.9,
        "batch_size": 16 + 8 * (i % 14),
    }
    return params, dists


def fake_trial(i: int, state: str, accs: list[float], seconds: float, **attrs: Any) -> Any:
    """A finished trial as TrialRunner records it: history, epochs_run, best_epoch, seconds."""
    import optuna

    params, dists = _params(i)
    value = {"COMPLETE": max(accs), "PRUNED": accs[-1]}.get(state)
    user_attrs = {
        "history": {"val_accuracy": accs, "loss": [1.0 - a for a in accs]},
        "epochs_run": len(accs),
        "seconds": seconds,
        "best_epoch": accs.index(max(accs)) + 1,
        **attrs,
    }
    return optuna.trial.create_trial(
        state=getattr(optuna.trial.TrialState, state),
        value=value,
        params=params,
        distributions=dists,
        user_attrs=user_attrs,
        intermediate_values=dict(enumerate(accs)),
    )


def make_study(url: str, name: str, specs: list[tuple[str, list[float], float]] = SPECS) -> Any:
    """A study created the way ``hpsearch create`` does it, with synthetic trials."""
    from hpsearch._study import StudySettings
    from hpsearch._study import create_study
    from hpsearch.storage import open_storage

    storage = open_storage(url, create_tables=True)
    settings = StudySettings(task="digits", max_epochs=MAX_EPOCHS, baselines=False, n_trials=len(specs))
    study, _ = create_study(storage, name, settings, url=url)
    for i, (state, accs, secs) in enumerate(specs):
        study.add_trial(fake_trial(i, state, accs, secs, **({"baseline": 0} if i == 0 else {})))
    return study


def env_for(storage: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    if storage:
        env["HPSEARCH_STORAGE"] = storage
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*HPSEARCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``hpsearch ARGS`` in this process (fast: imports are paid once), with a clean environment."""
    from hpsearch.cli import main

    def call(args: list[str], storage: str | None = None, **env: str) -> Result:
        for key in [k for k in os.environ if k.startswith("HPSEARCH_")]:
            monkeypatch.delenv(key)
        if storage:
            monkeypatch.setenv("HPSEARCH_STORAGE", storage)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        rc = main(args)
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return call


def cell(html: str, cell_id: str) -> str:
    m = re.search(rf'id="{cell_id}">([^<]*)<', html)
    assert m, f"no #{cell_id} in the report"
    return m.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def dashboard(cwd: Path, env: dict[str, str], port: int) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``hpsearch dashboard`` as a subprocess; yields (process, log file); stops it afterwards."""
    log = cwd / f"dashboard-{port}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [*HPSEARCH, "dashboard", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/meta", proc)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read().decode("utf-8", "replace")


# -- pure functions ------------------------------------------------------------------------------------
def test_pruning_savings_counts_finished_trials_only() -> None:
    import optuna

    from hpsearch._report import pruning_savings

    trials = [fake_trial(i, st, accs, secs) for i, (st, accs, secs) in enumerate(SPECS)]
    running = fake_trial(99, "RUNNING", [0.5, 0.6], 2.0)
    # a trial written before `epochs_run` existed: its reported steps count
    old = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, value=0.2, intermediate_values={0: 0.1, 1: 0.2}
    )
    from hpsearch._report import _val_accuracy
    from hpsearch._report import epochs_run

    # the same without the attributes, on the steps of settings version 2 (epochs done, from 1)
    newer = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, value=0.2, intermediate_values={1: 0.1, 2: 0.2}
    )
    assert epochs_run(newer) == epochs_run(old) == 2
    assert _val_accuracy(newer) == _val_accuracy(old) == [0.1, 0.2]
    s = pruning_savings([*trials, running, old], MAX_EPOCHS)
    finished = [(st, accs, secs) for st, accs, secs in SPECS if st in ("COMPLETE", "PRUNED")]
    assert s.trials == len(finished) + 1 == 7
    assert s.pruned == 4
    assert s.epochs_run == sum(len(a) for _, a, _ in finished) + 2 == 4 + 2 + 4 + 1 + 4 + 3 + 2
    assert s.epochs_unpruned == MAX_EPOCHS * 7 == 28
    assert s.epochs_saved == 28 - 20
    assert s.saved_percent == pytest.approx(100 * 8 / 28)
    # pruned trials' own seconds per epoch x skipped epochs: 2/2*2 + 1/1*3 + 3.3/3*1 (+ unknown for `old`)
    assert s.seconds_saved == pytest.approx(2.0 + 3.0 + 1.1, abs=0.05)
    assert "pruning saved 8 epochs (28.6%)" in s.sentence()


def test_pruning_savings_of_an_empty_study() -> None:
    from hpsearch._report import pruning_savings

    s = pruning_savings([], 10)
    assert (s.trials, s.epochs_run, s.epochs_unpruned, s.epochs_saved, s.saved_percent) == (0, 0, 0, 0, 0.0)
    assert "no finished trials" in s.sentence()


# -- the command ---------------------------------------------------------------------------------------
def test_report_content(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'r.db'}"
    make_study(url, "rep")
    out = tmp_path / "report.html"
    r = run_cli(["report", "--study", "rep", "-o", str(out)], tmp_path, env_for(url))
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "pruning saved" in r.stdout
    html = out.read_text()

    for title in TITLES:
        assert title in html, f"missing plot {title!r}"
    # plotly.js inlined exactly once, nothing loaded from the network
    assert html.count("plotly.js v") == 1
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", html)
    # every trial's learning curve: one trace per trial with reported epochs, pruned ones dashed
    assert html.count('"legendgroup":"pruned (stopped early)"') == 3
    assert html.count('"dash":"dash"') >= 3

    # the savings, recomputed from the trials as stored
    study = optuna.load_study(study_name="rep", storage=url)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    run_epochs = sum(t.user_attrs["epochs_run"] for t in finished)
    unpruned = MAX_EPOCHS * len(finished)
    assert int(cell(html, "finished-trials")) == len(finished) == 6
    assert int(cell(html, "pruned-trials")) == 3
    assert int(cell(html, "epochs-run")) == run_epochs == 18
    assert int(cell(html, "epochs-unpruned")) == unpruned == 24
    assert int(cell(html, "epochs-saved")) == unpruned - run_epochs
    assert cell(html, "saved-percent") == f"{100 * (unpruned - run_epochs) / unpruned:.1f}%" == "25.0%"

    # the best trial and its params
    best = study.best_trial
    assert best.number == 2
    assert cell(html, "best-value") == f"{best.value:.4f}"
    table = html.split('id="best-params"', 1)[1].split("</table>", 1)[0]
    for k, v in best.params.items():
        assert f"<td>{k}</td>" in table and (f"{v:.6g}" if isinstance(v, float) else str(v)) in table
    assert cell(html, "study-name") == "rep"
    assert cell(html, "storage") == url


def test_report_with_few_trials(tmp_path: Path, cli: Callable[..., Result]) -> None:
    url = f"sqlite:///{tmp_path / 'few.db'}"
    make_study(url, "empty", specs=[])
    make_study(url, "one", specs=[("COMPLETE", [0.5, 0.6], 1.0), ("PRUNED", [0.1], 0.5)])
    for name in ("empty", "one"):
        out = tmp_path / f"{name}.html"
        r = cli(["report", "--study", name, "-o", str(out)], url)
        assert r.returncode == 0, r.stderr
        html = out.read_text()
        assert "Parameter importances" in html
        assert "needs at least 2 COMPLETE trials; this study has" in html
    assert "No COMPLETE trial yet" in (tmp_path / "empty.html").read_text()
    assert "no finished trials yet" in (tmp_path / "empty.html").read_text()
    one = (tmp_path / "one.html").read_text()
    assert one.count("plotly.js v") == 1 and "Optimization History Plot" in one
    assert int(cell(one, "epochs-run")) == 3 and int(cell(one, "epochs-unpruned")) == 8


def test_report_is_read_only_and_errors_are_one_line(tmp_path: Path, cli: Callable[..., Result]) -> None:
    missing = tmp_path / "none.db"
    r = cli(["report", "--study", "x", "-o", str(tmp_path / "r.html")], f"sqlite:///{missing}")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "hpsearch create" in r.stderr
    assert not missing.exists() and not (tmp_path / "r.html").exists()

    url = f"sqlite:///{tmp_path / 'r.db'}"
    make_study(url, "rep", specs=SPECS[:2])
    r = cli(["report", "--study", "nope", "-o", str(tmp_path / "r.html")], url)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no study 'nope'" in r.stderr
    r = cli(["report", "--study", "rep", "-o", str(tmp_path / "no" / "r.html")], url)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr


# -- passwords (the real PostgreSQL; trust auth accepts any password) ----------------------------------
@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (dropped afterwards); its name."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"hpsearch_t_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as e:
        admin.dispose()
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({str(e.orig).strip().splitlines()[0]})")
    try:
        yield name
    finally:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_report_never_shows_the_password(tmp_path: Path, pg_database: str, cli: Callable[..., Result]) -> None:
    url = f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/{pg_database}"
    make_study(url, "pw")
    out = tmp_path / "report.html"
    r = cli(["report", "--study", "pw", "-o", str(out)], url)
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert SECRET not in html and SECRET not in r.stdout + r.stderr
    assert cell(html, "storage") == f"postgresql+psycopg2://postgres:***@127.0.0.1:5432/{pg_database}"
    assert "postgres:***@" in r.stdout
    # the password from $HPSEARCH_STORAGE_PASSWORD (the compose setup) is masked as well
    bare = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{pg_database}"
    r = cli(["report", "--study", "pw", "-o", str(out)], bare, HPSEARCH_STORAGE_PASSWORD=SECRET)
    assert r.returncode == 0, r.stderr
    assert SECRET not in out.read_text() and SECRET not in r.stdout + r.stderr
    # an error names the masked URL only
    r = cli(["report", "--study", "nope", "-o", str(out)], bare, HPSEARCH_STORAGE_PASSWORD=SECRET)
    assert r.returncode == 2 and SECRET not in r.stdout + r.stderr and "***" in r.stderr


def test_dashboard_never_shows_the_password(tmp_path: Path, pg_database: str) -> None:
    """The compose setup: a URL without password, the password in $HPSEARCH_STORAGE_PASSWORD."""
    make_study(f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/{pg_database}", "pw")
    env = env_for(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{pg_database}", HPSEARCH_STORAGE_PASSWORD=SECRET)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with dashboard(tmp_path, env, port) as (proc, log):
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert SECRET not in cmdline
        pages: dict[str, str] = {}
        for path in (
            "/",
            "/dashboard",
            "/dashboard/studies/1",
            "/api/meta",
            "/api/studies",
            "/api/studies/1",
            "/api/studies/1/param_importances",
            "/csv/1",
        ):
            pages[path] = fetch(base + path)
        assert '"study_name": "pw"' in pages["/api/studies"]
        assert len(pages["/api/studies/1"]) > 1000  # trials with their history
        for path, text in pages.items():
            assert SECRET not in text, f"password in {path}"
    output = log.read_text()
    assert f"optuna-dashboard for postgresql+psycopg2://postgres:***@127.0.0.1:5432/{pg_database}" in output
    assert SECRET not in output

"""Storage faults on real databases: a connection lost at a commit, an outage inside an epoch, a
race on a fresh database. The outage tests start and stop their own PostgreSQL instance (initdb +
pg_ctl on a temporary folder and a free port, as user ``postgres``); the shared servers are never
stopped."""

from __future__ import annotations

from collections.abc import Iterator
import glob
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from conftest import MYSQL_SERVER
from conftest import PG_SERVER
from conftest import ROOT
from conftest import _fresh_database
from conftest import cli_env
from conftest import hpsearch
import optuna
import pytest

TESTS = ROOT / "tests"


# -- a connection lost at the commit of create_new_trial and of tell (PostgreSQL) ------------------
def _drop_at_commit_storage(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """hpsearch's storage on ``url`` whose connections can be made to lose the next commit."""
    psycopg2 = pytest.importorskip("psycopg2")
    from sqlalchemy import event
    from sqlalchemy.engine import make_url

    from hpsearch.storage import _engine
    from hpsearch.storage import open_storage

    u = make_url(url)
    admin_dsn = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"

    class DropAtCommit(psycopg2.extensions.connection):  # type: ignore[misc,name-defined]
        """Loses the connection at the commit of the first transaction, once ``mode`` is set,
        that ran a statement containing ``target``."""

        mode: str | None = None  # "before": killed before COMMIT reaches it; "after": after it
        target = ""
        seen = False

        def commit(self) -> None:
            if DropAtCommit.mode is None or not DropAtCommit.seen:
                DropAtCommit.seen = False
                return super().commit()
            mode, DropAtCommit.mode, DropAtCommit.seen = DropAtCommit.mode, None, False
            if mode == "after":
                super().commit()
            pid = self.get_backend_pid()
            with psycopg2.connect(admin_dsn) as admin, admin.cursor() as cur:  # from another connection
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                for _ in range(50):
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                    if cur.fetchone()[0] == 0:
                        break
                    time.sleep(0.05)
            if mode == "before":
                return super().commit()  # the real error of a terminated backend
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

    real = _engine.engine_kwargs_for

    def kwargs(u: str) -> dict[str, Any]:
        k = real(u)
        k["connect_args"] = {**k.get("connect_args", {}), "connection_factory": DropAtCommit}
        return k

    monkeypatch.setattr(_engine, "engine_kwargs_for", kwargs)
    storage = open_storage(url, create_tables=True)

    def watch(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if DropAtCommit.mode is not None and DropAtCommit.target in statement:
            DropAtCommit.seen = True

    event.listen(storage.engine, "before_cursor_execute", watch)
    return storage, DropAtCommit


@pytest.mark.parametrize("when", ["before", "after"])
def test_connection_lost_at_the_commit_of_create_new_trial_makes_one_trial(
    pg_url: str, when: str, monkeypatch: pytest.MonkeyPatch, study_name: str
) -> None:
    from hpsearch.storage._rdb import CREATION_TOKEN_KEY

    storage, conn = _drop_at_commit_storage(pg_url, monkeypatch)
    study = optuna.create_study(storage=storage, study_name=study_name)
    conn.mode, conn.target = when, "INSERT INTO trials "
    trial = study.ask()
    assert conn.mode is None, "the commit was intercepted"
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0], f"one trial, not {len(trials)}"
    assert trials[0]._trial_id == trial._trial_id and trials[0].state.name == "RUNNING"
    assert CREATION_TOKEN_KEY not in storage.get_trial(trial._trial_id).system_attrs


@pytest.mark.parametrize("when", ["before", "after"])
def test_connection_lost_at_the_commit_of_tell_keeps_the_result(
    pg_url: str, when: str, monkeypatch: pytest.MonkeyPatch, study_name: str
) -> None:
    storage, conn = _drop_at_commit_storage(pg_url, monkeypatch)
    study = optuna.create_study(storage=storage, study_name=study_name)
    trial = study.ask()
    conn.mode, conn.target = when, "UPDATE trials SET"
    frozen = study.tell(trial, 0.75)  # a blind repeat would raise "Cannot tell a COMPLETE trial"
    assert conn.mode is None, "the commit was intercepted"
    assert frozen.state.name == "COMPLETE" and frozen.value == 0.75
    fresh = optuna.load_study(study_name=study_name, storage=pg_url).trials
    assert [(t.state.name, t.value) for t in fresh] == [("COMPLETE", 0.75)]


# -- concurrent `create --exist-ok` on a fresh database ------------------------------------------
@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_four_concurrent_creates_on_a_fresh_database_all_succeed(kind: str, tmp_path: Path, study_name: str) -> None:
    server = PG_SERVER if kind == "postgresql" else MYSQL_SERVER
    fresh = _fresh_database(server, kind)
    url = next(fresh)
    try:
        args = ["create", "--task", "digits", "--study", study_name, "--exist-ok", "--max-epochs", "1"]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "hpsearch", *args, "--storage", url],
                cwd=tmp_path,
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, "\n".join(outs)
        assert sum("created" in o and "exists" not in o for o in outs) == 1, outs
        assert [s.study_name for s in optuna.get_all_study_summaries(url)] == [study_name]
    finally:
        next(fresh, None)


# -- an outage inside an epoch, on a PostgreSQL instance of the test's own --------------------------
class OwnPostgres:
    def __init__(self, root: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins or shutil.which("runuser") is None:
            pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (or no runuser)")
        self.bin = Path(bins[-1]).parent
        self.data = root / "pgdata"
        root.chmod(0o777)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.data / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def own_pg() -> Iterator[OwnPostgres]:
    # Not under pytest's tmp_path: that folder is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="hpsearch-own-pg-"))
    try:
        pg = OwnPostgres(root)
        try:
            yield pg
        finally:
            try:
                pg.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _env(url: str, **extra: str) -> dict[str, str]:
    return cli_env(HPSEARCH_STORAGE=url, PYTHONPATH=f"{TESTS}{os.pathsep}{ROOT}", **extra)


def _heartbeat_time(url: str) -> Any:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as c:
            return c.execute(sqlalchemy.text("SELECT max(heartbeat) FROM trial_heartbeats")).scalar()
    finally:
        engine.dispose()


def _training(url: str) -> bool:
    """A heartbeat is written and the trial's three params are suggested: the model is training."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as c:
            beats = c.execute(sqlalchemy.text("SELECT count(*) FROM trial_heartbeats")).scalar()
            params = c.execute(sqlalchemy.text("SELECT count(*) FROM trial_params")).scalar()
            return bool(beats) and params == 3  # fault_task suggests units, learning_rate, batch_size
    finally:
        engine.dispose()


def _wait_for_heartbeat(url: str, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    """Until the trial is inside its (slow) epoch, where only the heartbeat thread uses the database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if _training(url):
                time.sleep(3)  # model built, first batches running
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError("the worker never started training")


def _worker(url: str, cwd: Path, study: str, *flags: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "worker", "--study", study, *flags],
        cwd=cwd,
        env=_env(url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _create(url: str, cwd: Path, study: str) -> None:
    flags = ["--max-epochs", "1", "--pruner", "none", "--n-trials", "1"]
    hpsearch("create", "--task", "fault_task", "--study", study, *flags, cwd=cwd, env=_env(url))


def test_outage_longer_than_the_retry_deadline_inside_an_epoch_loses_nothing(
    own_pg: OwnPostgres, tmp_path: Path, study_name: str
) -> None:
    """The outage (8 s) outlasts HPSEARCH_DB_RETRY_SECONDS (4 s) but not the grace period (30 s):
    the heartbeat thread keeps retrying, resumes when the server is back, and the one trial
    completes once. (Before: the heartbeat thread died after 4 s, with a traceback, and a peer
    would have failed the live trial after the grace period and run it again.)"""
    _create(own_pg.url, tmp_path, study_name)
    slow = {"HPSEARCH_TEST_FAULTS": "0:slow", "HPSEARCH_TEST_SLOW_SECONDS": "3", "HPSEARCH_DB_RETRY_SECONDS": "4"}
    w = _worker(own_pg.url, tmp_path, study_name, "--heartbeat-interval", "1", "--grace-period", "30", **slow)
    _wait_for_heartbeat(own_pg.url, w)
    own_pg.stop()
    time.sleep(8)
    own_pg.start()
    back = _heartbeat_time(own_pg.url)  # the last heartbeat before the outage (or one just after)
    out = w.communicate(timeout=300)[0]
    assert w.returncode == 0, out
    assert "Traceback" not in out, out
    trials = optuna.load_study(study_name=study_name, storage=own_pg.url).trials
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE")], out
    assert _heartbeat_time(own_pg.url) > back, "heartbeats resumed after the outage"


def test_heartbeat_that_truly_gives_up_stops_the_worker_and_the_trial_is_retried_once(
    own_pg: OwnPostgres, tmp_path: Path, study_name: str
) -> None:
    """An outage past the grace period: the heartbeat gives up before peers may take the trial as
    stale, and stops the trial and the worker with one line stating the real time. The trial is
    failed and re-enqueued by the next worker's sweep, and completes once."""
    _create(own_pg.url, tmp_path, study_name)
    slow = {"HPSEARCH_TEST_FAULTS": "0:slow", "HPSEARCH_TEST_SLOW_SECONDS": "4", "HPSEARCH_DB_RETRY_SECONDS": "60"}
    hb = ["--heartbeat-interval", "1", "--grace-period", "6"]
    w = _worker(own_pg.url, tmp_path, study_name, *hb, **slow)
    _wait_for_heartbeat(own_pg.url, w)
    own_pg.stop()
    t0 = time.monotonic()
    try:
        out = w.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        w.kill()
        raise AssertionError("the worker did not stop:\n" + w.communicate()[0][-5000:]) from None
    finally:
        stopped_after = time.monotonic() - t0
        own_pg.start()
    assert w.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if "had no heartbeat" in line]
    assert len(lines) == 1 and "unreachable for" in lines[0], out
    stated = float(lines[0].split("unreachable for ")[1].split(" s")[0])
    assert 3 <= stated <= stopped_after + 1, (stated, stopped_after)
    assert stopped_after < 20, f"stopped {stopped_after:.0f} s into the outage"
    rescuer = _worker(own_pg.url, tmp_path, study_name, *hb)
    out2 = rescuer.communicate(timeout=300)[0]
    assert rescuer.returncode == 0, out2
    trials = optuna.load_study(study_name=study_name, storage=own_pg.url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"], out2
    assert trials[1].system_attrs.get("failed_trial") == 0 and trials[1].params == trials[0].params

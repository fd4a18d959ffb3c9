"""Shared fixtures: real database servers (never mocks), the CLI as a subprocess, shared data."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import uuid

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
MNIST_T10K = SHARED / "mnist-t10k"
PG_SERVER = os.environ.get("HPSEARCH_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MYSQL_SERVER = os.environ.get("HPSEARCH_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _fresh_database(server_url: str, kind: str):  # type: ignore[no-untyped-def]
    """Create an empty database on a real server for this test session; yield its URL; drop it."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name = f"hps_{uuid.uuid4().hex[:10]}"
    try:
        admin = sqlalchemy.create_engine(  # no pool: a test may restart the server meanwhile
            server_url,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 5},
            poolclass=sqlalchemy.pool.NullPool,
        )
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    except Exception as e:  # the server is not there: skip, and say why
        pytest.skip(f"{kind} unreachable at {make_url(server_url).render_as_string()}: {str(e).splitlines()[0]}")
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            if kind == "postgresql":
                c.execute(
                    sqlalchemy.text(
                        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    )
                )
            c.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(autouse=True, scope="session")
def _feature_cache_in_tmp(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Backbone feature caches of the tests go to a temporary folder, never ~/.cache."""
    old = os.environ.get("HPSEARCH_CACHE_DIR")
    os.environ["HPSEARCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("feature-cache"))
    yield
    if old is None:
        os.environ.pop("HPSEARCH_CACHE_DIR", None)
    else:
        os.environ["HPSEARCH_CACHE_DIR"] = old


def _postmaster_start(server_url: str) -> object | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(
            server_url, connect_args={"connect_timeout": 5}, poolclass=sqlalchemy.pool.NullPool
        )
        with engine.connect() as c:
            return c.execute(sqlalchemy.text("SELECT pg_postmaster_start_time()")).scalar()
    except Exception:
        return None


@pytest.fixture(autouse=True, scope="session")
def _shared_postgres_never_restarted():  # type: ignore[no-untyped-def]
    """The suite never stops or restarts the shared PostgreSQL (tests that need to, start their own:
    tests/private_postgres.py): its start time is the same after the suite as before."""
    before = _postmaster_start(PG_SERVER)
    yield
    if before is not None:
        after = _postmaster_start(PG_SERVER)
        assert after == before, f"the shared PostgreSQL was restarted during the tests (started {before}, now {after})"


@pytest.fixture(scope="session")
def pg_url():  # type: ignore[no-untyped-def]
    yield from _fresh_database(PG_SERVER, "postgresql")


@pytest.fixture(scope="session")
def mysql_url():  # type: ignore[no-untyped-def]
    yield from _fresh_database(MYSQL_SERVER, "mysql")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def storage_url(request, tmp_path):  # type: ignore[no-untyped-def]
    """A storage URL per backend: a fresh SQLite file, or a fresh database on the real server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hpsearch.db'}"
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


@pytest.fixture
def study_name() -> str:
    return f"s_{uuid.uuid4().hex[:8]}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env


def hpsearch(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "hpsearch", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"hpsearch {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data set {path} is not here (see ../shared/datasets/README.md)")
    return path

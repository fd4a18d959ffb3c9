"""Storage URLs as users write them, on the real servers; inputs that must fail in one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
import socket

from conftest import hpsearch
import pytest

from hpsearch.storage._url import normalize_url


def _scheme(url: str, scheme: str) -> str:
    return f"{scheme}://{url.partition('://')[2]}"


def _one_line_error(proc, *needles: str) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_url_spellings_are_normalised_to_installed_drivers() -> None:
    assert normalize_url("mysql://root@h:3306/db") == "mysql+pymysql://root@h:3306/db"
    assert normalize_url("MySQL://root@h/db") == "mysql+pymysql://root@h/db"
    assert normalize_url("postgres://u:pw@h/db") == "postgresql://u:pw@h/db"
    for unchanged in (
        "postgresql://u@h/db",
        "postgresql+psycopg2://u@h/db",
        "mysql+pymysql://u@h/db",
        "sqlite:///x.db",
        "grpc://h:1",
    ):
        assert normalize_url(unchanged) == unchanged


# Every form README.md and the error hints name: the plain schemes, the explicit drivers, sqlite.
PG_SCHEMES = ["postgresql", "postgresql+psycopg2", "postgresql+psycopg", "postgres"]
MYSQL_SCHEMES = ["mysql", "mysql+pymysql"]


@pytest.mark.parametrize("scheme", PG_SCHEMES + MYSQL_SCHEMES + ["sqlite"])
def test_documented_url_forms_create_and_read_a_study(
    scheme: str, request: pytest.FixtureRequest, tmp_path: Path, study_name: str
) -> None:
    if scheme == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.db'}"
    else:
        base = request.getfixturevalue("pg_url" if scheme.startswith("postgres") else "mysql_url")
        url = _scheme(base, scheme)
    hpsearch("create", "--task", "digits", "--study", study_name, "--storage", url, cwd=tmp_path)
    out = hpsearch("status", "--study", study_name, "--storage", url, cwd=tmp_path).stdout
    assert f"study {study_name!r} (digits)" in out and "WAITING" in out  # the baselines, enqueued


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_search_runs_on_the_plain_scheme(
    scheme: str, request: pytest.FixtureRequest, tmp_path: Path, study_name: str
) -> None:
    """Heartbeats, the cap queries and the closing attributes on psycopg 3 and the mysql:// alias."""
    url = _scheme(request.getfixturevalue("pg_url" if scheme == "postgresql" else "mysql_url"), scheme)
    common = ["--study", study_name, "--storage", url]
    hpsearch("run", "--task", "digits", "--n-trials", "2", "--max-epochs", "1", *common, cwd=tmp_path)
    out = hpsearch("status", *common, cwd=tmp_path).stdout
    assert "COMPLETE 2" in out, out


@pytest.mark.parametrize("url", ["postgresql+asyncpg://u@127.0.0.1/db", "mysql+mysqldb://u@127.0.0.1/db"])
def test_a_missing_driver_is_one_line_and_exit_2(url: str, tmp_path: Path) -> None:
    proc = hpsearch("studies", "--storage", url, cwd=tmp_path, check=False)
    _one_line_error(proc, "no database driver", "postgresql://", "mysql://")


def test_a_binary_params_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe\x80\x81 not text")  # a zip, as Keras writes
    proc = hpsearch("train", "--params", str(model), cwd=tmp_path, check=False)
    _one_line_error(proc, "model.keras", "is not text", "hpsearch export")
    assert not (tmp_path / "final").exists()


def test_dashboard_on_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    hpsearch("create", "--task", "digits", "--study", study_name, "--storage", url, cwd=tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = hpsearch("dashboard", "--port", str(port), "--storage", url, cwd=tmp_path, check=False, timeout=60)
    _one_line_error(proc, f"127.0.0.1:{port} is already in use", "--port")
    assert "optuna-dashboard for" not in proc.stdout  # it never claimed to serve


def test_params_file_error_names_the_json_problem(tmp_path: Path) -> None:
    bad = tmp_path / "best.json"
    bad.write_text(json.dumps({"format": "hpsearch-params"})[:-1])
    proc = hpsearch("train", "--params", str(bad), cwd=tmp_path, check=False)
    _one_line_error(proc, "not valid JSON")

"""A PostgreSQL instance of the test's own (``initdb`` + ``pg_ctl`` on a temporary folder and a free
port), for tests that stop or restart the server: the shared one on 127.0.0.1:5432 is never touched.

As root, PostgreSQL refuses to run, so the binaries run as the ``postgres`` user (``runuser``) in a
folder that user owns.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import glob
import os
from pathlib import Path
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest


def _bin_dir() -> Path | None:
    found = [Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin") if Path(d, "initdb").is_file()]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """One throw-away cluster: ``url``, ``restart()``, ``stop()``."""

    def __init__(self, bin_dir: Path, root: Path, user: str | None) -> None:
        self.bin_dir, self.root, self.user = bin_dir, root, user
        self.data, self.log = root / "data", root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = [str(self.bin_dir / cmd[0]), *cmd[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}")

    def _pg_ctl(self, action: str) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", "-m", "fast", "-o", opts)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self._pg_ctl("start")

    def start_time(self) -> object:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as c:
            return c.execute(sqlalchemy.text("SELECT pg_postmaster_start_time()")).scalar()

    def restart(self) -> None:
        before = self.start_time()
        self._pg_ctl("restart")
        assert self.start_time() != before, "pg_ctl restart did not restart the private server"

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-w", "-m", "immediate")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin")
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run a private PostgreSQL as")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="hps-pg-"))  # under /tmp: traversable by the postgres user
    if user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    pg = PrivatePostgres(bin_dir, root, user)
    try:
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)

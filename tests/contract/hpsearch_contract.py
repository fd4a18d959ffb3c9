"""pytest plugin: Optuna's own storage tests, run against the storage hpsearch's factory builds.

Loaded with ``-p hpsearch_contract`` by ``tests/contract/optuna_suite.py``. Optuna's tests get
their storages from ``optuna.testing.storages.StorageSupplier``; for its RDB modes (``sqlite``,
``cached_sqlite``, ``grpc_rdb``) this plugin substitutes, in a fresh database of the backend
named by ``HPSEARCH_CONTRACT_BACKEND`` (sqlite, postgresql, mysql):

* ``HPSEARCH_CONTRACT_STORAGE=hpsearch`` (default): ``hpsearch.storage.open_storage(url,
  create_tables=True, ...)``, with the test's heartbeat settings and callback;
* ``HPSEARCH_CONTRACT_STORAGE=plain``: Optuna's own ``RDBStorage(url, ...)``, the baseline.

The other modes (in-memory, journal) do not involve hpsearch and are deselected by the runner.
"""

from __future__ import annotations

import os
from typing import Any
import uuid

import optuna
from optuna.testing import storages as optuna_storages

BACKEND = os.environ.get("HPSEARCH_CONTRACT_BACKEND", "sqlite")
KIND = os.environ.get("HPSEARCH_CONTRACT_STORAGE", "hpsearch")
SERVERS = {
    "postgresql": os.environ.get("HPSEARCH_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("HPSEARCH_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
RDB_MODES = ("sqlite", "cached_sqlite", "grpc_rdb")
HEARTBEAT_ARGS = ("heartbeat_interval", "grace_period", "heartbeat_stale_trial_callback")

_enter = optuna_storages.StorageSupplier.__enter__
_exit = optuna_storages.StorageSupplier.__exit__


def _admin(server: str) -> Any:
    import sqlalchemy

    return sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)


def _fresh_url(supplier: Any) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    if BACKEND == "sqlite":
        supplier.tempfile = optuna_storages.NamedTemporaryFilePool().tempfile()
        return f"sqlite:///{supplier.tempfile.name}"
    name = f"hps_contract_{uuid.uuid4().hex[:10]}"
    engine = _admin(SERVERS[BACKEND])
    with engine.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    supplier._hpsearch_database = name
    _created.append(name)
    return make_url(SERVERS[BACKEND]).set(database=name).render_as_string(hide_password=False)


_created: list[str] = []  # databases of this run: any a test left behind are dropped at the end


def _drop(name: str) -> None:
    from sqlalchemy import text

    engine = _admin(SERVERS[BACKEND])
    with engine.connect() as c:
        if BACKEND == "postgresql":
            c.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )
            )
        c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    engine.dispose()
    if name in _created:
        _created.remove(name)


def _rdb(url: str, extra: dict[str, Any]) -> Any:
    unknown = set(extra) - set(HEARTBEAT_ARGS)
    if unknown:
        raise AssertionError(f"hpsearch_contract: StorageSupplier argument(s) not handled: {sorted(unknown)}")
    if KIND == "plain":
        engine_kwargs = {"connect_args": {"timeout": optuna_storages.SQLITE3_TIMEOUT}} if BACKEND == "sqlite" else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **extra)
    from hpsearch.storage import open_storage

    return open_storage(
        url,
        create_tables=True,
        heartbeat_interval=extra.get("heartbeat_interval"),
        grace_period=extra.get("grace_period"),
        heartbeat_stale_trial_callback=extra.get("heartbeat_stale_trial_callback"),
    )


def _supplier_enter(self: Any) -> Any:
    if self.storage_specifier not in RDB_MODES:
        return _enter(self)
    rdb = _rdb(_fresh_url(self), dict(self.extra_args))
    if self.storage_specifier == "grpc_rdb":
        self.backend_storage = rdb
        self.storage = self._create_proxy(rdb)
    elif self.storage_specifier == "cached_sqlite":
        self.storage = optuna.storages._CachedStorage(rdb)
    else:
        self.storage = rdb
    return self.storage


def _supplier_exit(self: Any, *exc: Any) -> None:
    try:
        _exit(self, *exc)
    finally:
        name = getattr(self, "_hpsearch_database", None)
        if name is not None:
            _drop(name)


optuna_storages.StorageSupplier.__enter__ = _supplier_enter  # type: ignore[method-assign]
optuna_storages.StorageSupplier.__exit__ = _supplier_exit  # type: ignore[method-assign]


def pytest_report_header(config: Any) -> str:
    return f"hpsearch contract: Optuna {optuna.__version__} storage suite on {KIND} storage, backend {BACKEND}"


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    for name in list(_created):  # a supplier some test never exited
        _drop(name)

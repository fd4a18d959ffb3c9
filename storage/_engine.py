"""One factory from a URL to an Optuna storage with the right engine options and failure policy.

What Optuna already does is used as is: ``RDBStorage`` (tables, schema version check, heartbeats),
``RetryHeartbeatStaleTrialCallback``, ``GrpcStorageProxy``. What it lacks is written here:

* per-backend engine options: SQLite busy timeout; PostgreSQL/MySQL ``pool_recycle``, a bounded
  pool and a pre-ping of pooled connections that sat idle (see ``_install_idle_pre_ping``; Optuna
  sets SQLAlchemy's ping-on-every-checkout for MySQL only);
* retries of transient database errors (a server restart, a dropped connection) with bounded
  exponential backoff and one outage clock per process (``storage._retry``), on a written list
  of reads and idempotent writes; non-idempotent writes are checked after an unknown commit
  outcome instead of being repeated blindly (``storage._rdb.RetryingRDBStorage``);
* table creation serialised by a lock (PostgreSQL advisory lock, MySQL ``GET_LOCK``, ``flock``
  on a SQLite file), so that concurrent ``hpsearch create`` on a fresh database cannot race;
* "only ``create`` creates tables": everyone else checks that the tables exist first and gets a
  message naming ``hpsearch create`` (Optuna would silently create them);
* clear, masked messages for an unreachable server and a schema that is too old.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import logging
from pathlib import Path
import time
from typing import Any
from typing import Literal

from ._errors import StorageError
from ._retry import DEFAULT_RETRY_SECONDS  # noqa: F401 (re-exported)
from ._retry import short as _short
from ._retry import transient as _transient
from ._url import check_url
from ._url import mask_text
from ._url import mask_url
from ._url import normalize_url

_logger = logging.getLogger("hpsearch.storage")

DEFAULT_HEARTBEAT_INTERVAL = 30
DEFAULT_GRACE_PERIOD = 120
DEFAULT_MAX_RETRY = 1
# Transient errors are retried for at most DEFAULT_RETRY_SECONDS of one outage
# (env HPSEARCH_DB_RETRY_SECONDS; storage._retry).
SQLITE_BUSY_TIMEOUT = 60.0  # seconds a SQLite writer waits for the lock before "database is locked"
# A pooled PostgreSQL/MySQL connection idle for longer than this is pinged before use.
PRE_PING_IDLE_SECONDS = 1.0


def engine_kwargs_for(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options per backend."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    kwargs: dict[str, Any] = {
        # SQLAlchemy's pre-ping costs a round trip on *every* checkout, and Optuna checks out a
        # connection per storage call (three per `trial.report`). Instead the storage pings only a
        # connection that sat idle for PRE_PING_IDLE_SECONDS (`_install_idle_pre_ping`).
        "pool_pre_ping": False,
        "pool_recycle": 280,  # under MySQL's and most proxies' idle timeouts
        "pool_size": 2,  # a worker uses the main thread and the heartbeat thread
        "max_overflow": 4,
        "pool_timeout": 30,
    }
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    elif url.startswith("mysql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


_LAST_USED = "hpsearch_last_used"


def _install_idle_pre_ping(engine: Any) -> None:
    """Ping a pooled PostgreSQL/MySQL connection at checkout when it sat idle in the pool for more
    than ``PRE_PING_IDLE_SECONDS``; a dead one is replaced as SQLAlchemy's ``pool_pre_ping`` does
    (``InvalidatePoolError``: the pool drops it and every older connection, and reconnects).

    What ``pool_pre_ping`` is for here (a connection dropped by a server restart or an idle timeout
    while it sat in the pool) is the idle case, and is still covered. A connection used within the
    last second is not pinged: were the server restarted in that second, the next statement fails
    with a disconnect, SQLAlchemy invalidates the pool, and ``storage._retry`` repeats the call on a
    new connection, as it does for a restart in the middle of a call (which no ping prevents).
    """
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

    if engine.dialect.name not in ("postgresql", "mysql", "mariadb"):
        return
    dialect = engine.dialect

    def stamp(dbapi_connection: Any, record: Any, *_: Any) -> None:  # connect, checkin
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:  # checkout
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last <= PRE_PING_IDLE_SECONDS:
            return
        if not dialect._do_ping_w_event(dbapi_connection):  # what pool_pre_ping calls
            raise sa_exc.InvalidatePoolError()
        record.info[_LAST_USED] = time.monotonic()

    event.listen(engine, "connect", stamp)  # a new connection is known good: no ping
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", ping_if_idle)


def open_storage(
    url: str,
    *,
    create_tables: bool = False,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = DEFAULT_MAX_RETRY,
    heartbeat_stale_trial_callback: Callable[..., None] | None | Literal["retry"] = "retry",
) -> Any:
    """An Optuna storage for ``url``.

    ``create_tables`` is for ``hpsearch create`` alone; everyone else gets a ``StorageError``
    naming ``hpsearch create`` when the database has no Optuna tables. ``heartbeat_interval``
    turns on Optuna's heartbeats, with ``RetryHeartbeatStaleTrialCallback(max_retry)`` for stale
    trials unless ``heartbeat_stale_trial_callback`` names another callback (or None: none).
    Optuna's own warnings (``heartbeat_interval`` is experimental) are left as Optuna emits them;
    the worker's ``StoragePolicy`` silences them.
    """
    import optuna
    from sqlalchemy.exc import NoSuchModuleError

    from ._rdb import RetryingRDBStorage

    url = normalize_url(url)
    check_url(url)  # a non-numeric or out-of-range port: one line, not a traceback
    if url.startswith("grpc://"):
        return _open_grpc(url)
    if not url.startswith(("sqlite", "postgresql", "mysql")):
        raise StorageError(
            f"unsupported storage URL {mask_url(url)}: use sqlite:///FILE, postgresql://..., "
            "mysql+pymysql://... or grpc://HOST:PORT"
        )
    if not create_tables:
        try:
            check_tables(url)
        except (ImportError, NoSuchModuleError) as e:
            raise _no_driver(url, e) from None
    elif sqlite_path(url) is not None:
        _sqlite_wal(url)
    callback = heartbeat_stale_trial_callback
    if callback == "retry":
        callback = None
        if heartbeat_interval is not None:
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    try:
        with creation_lock(url) if create_tables else contextlib.nullcontext():
            return RetryingRDBStorage(
                url,
                engine_kwargs=engine_kwargs_for(url),
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=callback,
                skip_table_creation=not create_tables,
            )
    except RuntimeError as e:
        if "optuna storage upgrade" in str(e):
            raise StorageError(
                f"the database schema at {mask_url(url)} is too old for this Optuna "
                f"({optuna.__version__}): run `optuna storage upgrade --storage '{mask_url(url)}'` "
                "(with your real password) and retry"
            ) from None
        raise StorageError(mask_text(str(e))) from None
    except (ImportError, NoSuchModuleError) as e:
        raise _no_driver(url, e) from None
    except Exception as e:
        if _transient(e) or _is_connect_error(e):
            raise _unreachable(url, e) from None
        raise


def _no_driver(url: str, e: BaseException) -> StorageError:
    """A URL whose SQLAlchemy dialect or driver is not installed (``postgresql+asyncpg://``...)."""
    scheme = url.partition("://")[0]
    missing = getattr(e, "name", None) or _short(e)
    return StorageError(
        f"no database driver for {scheme}:// ({missing}); install it, or write the URL as "
        "postgresql://..., postgresql+psycopg2://..., mysql://... or mysql+pymysql://... (drivers hpsearch installs)"
    )


CREATION_LOCK = "hpsearch_create_tables"
CREATION_LOCK_SECONDS = 60


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold a database-wide lock while Optuna creates its tables and stamps its schema version.

    Optuna's table creation checks, then creates, then inserts the version rows: two processes on
    a fresh database race between those steps ("relation already exists", a duplicate version
    row). PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK``; SQLite: ``flock`` on
    ``FILE.hpsearch-create-lock`` beside the database. Never on the database file itself: closing
    any descriptor of it drops every POSIX lock this process holds on it, SQLite's included, and a
    connection that then closes last can discard other processes' committed write-ahead log (seen:
    `run --workers 2` lost its workers' trials when the parent exited). Released when the block ends.
    """
    import sqlalchemy

    path = sqlite_path(url)
    if path is not None:
        import fcntl

        with open(path.with_name(path.name + ".hpsearch-create-lock"), "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    if not url.startswith(("postgresql", "mysql")):
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **_connect_args(url))
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                key = sqlalchemy.text("SELECT hashtext(:k)")
                lock_id = conn.execute(key, {"k": CREATION_LOCK}).scalar_one()
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:i)"), {"i": lock_id})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:i)"), {"i": lock_id})
                    conn.commit()
            else:
                got = conn.execute(
                    sqlalchemy.text("SELECT GET_LOCK(:k, :s)"), {"k": CREATION_LOCK, "s": CREATION_LOCK_SECONDS}
                ).scalar()
                if got != 1:
                    raise StorageError(
                        f"another `hpsearch create` held the table-creation lock on {mask_url(url)} for "
                        f"{CREATION_LOCK_SECONDS} s; retry when it is done"
                    )
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": CREATION_LOCK})
    finally:
        engine.dispose()


def _connect_args(url: str) -> dict[str, Any]:
    kwargs = engine_kwargs_for(url)
    return {"connect_args": kwargs["connect_args"]} if "connect_args" in kwargs else {}


def _sqlite_wal(url: str) -> None:
    """Put a SQLite study file in write-ahead-log mode (a setting stored in the file itself).

    Measured with 2 local processes reporting 10 times per trial (benchmarks note in README): WAL
    doubled trials per second (21 -> 43/s) and cut the p95 report latency (13 -> 6 ms), because
    readers no longer block the writer. WAL needs a local file system (not NFS); for a team,
    use PostgreSQL.
    """
    import sqlalchemy

    path = sqlite_path(url)
    assert path is not None
    if not path.parent.is_dir():
        raise StorageError(f"folder {path.parent} does not exist; create it or fix the SQLite URL")
    engine = sqlalchemy.create_engine(url, **engine_kwargs_for(url))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise _unreachable(url, e) from None
    finally:
        engine.dispose()


def _is_connect_error(e: BaseException) -> bool:
    from sqlalchemy import exc as sa_exc

    return isinstance(e, sa_exc.SQLAlchemyError) or isinstance(e.__cause__, sa_exc.SQLAlchemyError)


def _unreachable(url: str, e: BaseException) -> StorageError:
    return StorageError(
        f"cannot connect to {mask_url(url)} ({_short(e)}); start the database or fix the URL "
        "(--storage, $HPSEARCH_STORAGE)"
    )


def sqlite_path(url: str) -> Path | None:
    """The file of a file-backed SQLite URL, else None."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def check_tables(url: str) -> None:
    """Raise ``StorageError`` naming ``hpsearch create`` unless the database has Optuna's tables.

    Never creates anything: not even an empty SQLite file.
    """
    import sqlalchemy

    path = sqlite_path(url)
    hint = "create a study first: `hpsearch create --task TASK --study NAME` (or `hpsearch run`)"
    if path is not None and not path.is_file():
        raise StorageError(f"no study database at {path}: {hint}")
    engine = sqlalchemy.create_engine(url, **engine_kwargs_for(url))
    try:
        with engine.connect() as conn:
            inspector = sqlalchemy.inspect(conn)
            if not inspector.has_table("studies") or not inspector.has_table("version_info"):
                raise StorageError(f"{mask_url(url)} has no Optuna tables: {hint}")
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise _unreachable(url, e) from None
    finally:
        engine.dispose()


def _open_grpc(url: str) -> Any:
    import optuna

    hostport = url[len("grpc://") :].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StorageError(f"bad gRPC storage URL {url!r}: use grpc://HOST:PORT (see `hpsearch proxy`)")
    proxy = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    try:
        proxy.wait_server_ready(timeout=10)
    except Exception:
        raise StorageError(
            f"no hpsearch proxy answers at {host}:{port}; start one with `hpsearch proxy` next to the database"
        ) from None
    return proxy

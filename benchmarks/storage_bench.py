#!/usr/bin/env python
"""Storage benchmark: hpsearch's storage and worker loop beside plain Optuna.

For each backend (PostgreSQL, MySQL/MariaDB, SQLite), each N (worker processes started at once)
and each mode, a fresh database and study are created, N processes run a trivial objective that
reports 10 times per trial for a fixed wall time, and the script records

* trials/s: finished trials of all N processes / the wall time of the run;
* p50 / p95 latency of one ``trial.report`` call (ms), over every report of every process;
* ratio: hpsearch p95 / plain p95 at the same backend and N (the requirement: <= 1.2).

Modes:

``plain``     each process ``optuna.load_study(storage=URL)`` (a URL string: Optuna's own
              defaults) and ``study.optimize(objective, timeout=...)``.
``hpsearch``  each process ``storage.open_storage(URL, heartbeat_interval=30, grace_period=120)``,
              ``search._study.load_study`` and the real ``search._worker.Worker`` loop
              (heartbeat thread per trial, stale-trial sweeps at start-up and between trials).

Diagnostic modes (``--modes``), to attribute a difference, each compared with ``plain`` too:
``loop_only`` (plain URL storage, hpsearch's Worker loop; no heartbeats, so no sweeps),
``storage_only`` (hpsearch's storage without heartbeats under ``optimize``), ``no_sweep``
(hpsearch with the between-trial sweeps stubbed out) and ``full_ping`` (hpsearch with
SQLAlchemy's ``pool_pre_ping`` on every checkout, the engine it had before the idle-only ping).

Both use Optuna's default sampler (TPE) and pruner; the objective suggests one float and reports
10 times, timing each ``trial.report`` with ``time.perf_counter``. Setup (imports, connecting,
loading the study) happens before a barrier; timing starts when all N processes are through it.

The N processes of one (backend, N) are started once and run every segment of it: ``--repeats``
(default 2) segments per mode, the mode order alternating (plain, hpsearch, hpsearch, plain: ABBA),
each segment on a fresh database, since the machine may be shared and its load drifts. Latencies
of the repeats are pooled; trials/s is their total trials over their total wall time.

Usage::

    python benchmarks/storage_bench.py --backends sqlite,postgresql,mysql --workers 1,2,4,8,16 \
        --seconds 6 --repeats 4
    python benchmarks/storage_bench.py --backends postgresql --modes plain,hpsearch,full_ping \
        --out /tmp/pg_ping

Writes ``benchmarks/results/storage_bench.json`` and ``benchmarks/results/storage_bench.md``.
"""

from __future__ import annotations

import argparse
import contextlib
from datetime import datetime
from datetime import timezone
import json
import multiprocessing as mp
import os
from pathlib import Path
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: hpsearch's packages importable
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
SERVERS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306",
}
MODES = ("plain", "hpsearch")
# Diagnostic modes (--modes), to attribute a difference: ``loop_only`` = plain URL storage with
# hpsearch's Worker loop (no heartbeats, so no sweeps); ``storage_only`` = hpsearch's storage
# without heartbeats under Optuna's optimize; ``no_sweep`` = hpsearch with the sweeps stubbed out.
# ``full_ping`` = hpsearch with SQLAlchemy's pre-ping on every checkout (its engine before the idle-only ping).
DIAGNOSTIC_MODES = ("loop_only", "storage_only", "no_sweep", "full_ping")
REPORTS_PER_TRIAL = 10
STUDY = "bench"
LIMIT_RATIO = 1.2


# -- databases ---------------------------------------------------------------------------------
@contextlib.contextmanager
def fresh_database(backend: str, tmp: Path):
    """A URL to a new, empty database; dropped (or deleted) afterwards."""
    if backend == "sqlite":
        path = tmp / f"bench_{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for p in tmp.glob(path.name + "*"):
                p.unlink(missing_ok=True)
        return
    import sqlalchemy as sa

    server = SERVERS[backend]
    name = f"hpsbench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
        try:
            yield f"{server}/{name}"
        finally:
            for attempt in range(5):  # the server may be restarting (someone's restart test)
                try:
                    with admin.connect() as c:
                        force = " WITH (FORCE)" if backend == "postgresql" else ""
                        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
                    break
                except sa.exc.OperationalError as e:
                    if attempt == 4:
                        print(f"  could not drop database {name}: {str(e).splitlines()[0]}", file=sys.stderr)
                    time.sleep(3)
    finally:
        admin.dispose()


def create_study(url: str, mode: str) -> None:
    """The study both modes load: created the way each mode's users create theirs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if mode == "plain":
        optuna.create_study(study_name=STUDY, storage=url, direction="maximize")
    else:
        from hpsearch.storage import open_storage

        storage = open_storage(url, create_tables=True)  # what `hpsearch create` does
        optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
        storage.engine.dispose()


def finished_trials(url: str) -> dict[str, int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        study = optuna.load_study(study_name=STUDY, storage=storage)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        return counts
    finally:
        storage.engine.dispose()


# -- worker processes ---------------------------------------------------------------------------
def _objective_factory(latencies: list[float], done: list[int]):
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(REPORTS_PER_TRIAL):
            t = time.perf_counter()
            trial.report(x * (step + 1) / REPORTS_PER_TRIAL, step)
            latencies.append(time.perf_counter() - t)
        done[0] += 1
        return x

    return objective


def _segment(mode: str, url: str, seconds: float, index: int, barrier: Any) -> dict[str, Any]:
    """One timed run of one process: set up, wait for all N, run for ``seconds``."""
    import optuna

    latencies: list[float] = []
    done = [0]
    objective = _objective_factory(latencies, done)
    error = None
    t0 = t1 = None
    storage = None
    try:
        if mode in ("plain", "loop_only"):
            study = optuna.load_study(study_name=STUDY, storage=url)  # a URL: Optuna's defaults
        else:
            from hpsearch._study import load_study
            from hpsearch.storage import open_storage

            if mode == "storage_only":
                storage = open_storage(url)  # hpsearch's engine and retries, no heartbeats
            elif mode == "full_ping":  # SQLAlchemy's pre-ping on every checkout (hpsearch until now)
                import hpsearch.storage._engine as engine_module

                kwargs_for, install = engine_module.engine_kwargs_for, engine_module._install_idle_pre_ping
                engine_module.engine_kwargs_for = lambda u: {**kwargs_for(u), "pool_pre_ping": True}
                engine_module._install_idle_pre_ping = lambda engine: None
                try:
                    storage = open_storage(url, heartbeat_interval=30, grace_period=120)
                finally:
                    engine_module.engine_kwargs_for, engine_module._install_idle_pre_ping = kwargs_for, install
            else:
                storage = open_storage(url, heartbeat_interval=30, grace_period=120)
            study = load_study(storage, STUDY, url=url)
        barrier.wait(timeout=300)
        t0 = time.monotonic()
        if mode in ("plain", "storage_only"):
            study.optimize(objective, timeout=seconds)
        else:
            from hpsearch._worker import Worker
            from hpsearch._worker import WorkerBudget
            import hpsearch.storage as storage_package

            real_sweep = storage_package.sweep_stale_trials
            if mode == "no_sweep":  # diagnostic only: hpsearch without the between-trial sweeps
                storage_package.sweep_stale_trials = lambda study: []
            # As `hpsearch worker` builds it (search/_runworker.py run_worker), less the Keras runner.
            backend_storage = getattr(study._storage, "_backend", study._storage)
            retry = getattr(backend_storage, "get_heartbeat_stale_trial_callback", lambda: None)()
            with open(os.devnull, "w") as devnull:
                try:
                    Worker(
                        study,
                        objective,
                        cap=None,
                        budget=WorkerBudget(timeout=seconds),
                        out=devnull,
                        worker_id=f"w{index}",
                        retry_callback=retry,
                    ).run()
                finally:
                    storage_package.sweep_stale_trials = real_sweep
        t1 = time.monotonic()
    except BaseException as e:  # reported, not raised: the parent shows it
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        if t0 is None:
            with contextlib.suppress(Exception):
                barrier.abort()
        t1 = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            (storage or study._storage._backend).engine.dispose()
    return {"index": index, "trials": done[0], "latencies": latencies, "t0": t0, "t1": t1, "error": error}


def worker_main(index: int, commands: Any, barrier: Any, results: Any) -> None:
    """A process that lives for one (backend, N) and runs the segments the parent sends it."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hpsearch").setLevel(logging.ERROR)
    from hpsearch import storage  # noqa: F401
    import hpsearch._study  # noqa: F401  (imports done before any timing, as for plain's)
    import hpsearch._worker  # noqa: F401

    results.put({"index": index, "ready": True})
    while True:
        cmd = commands.get()
        if cmd is None:
            return
        mode, url, seconds = cmd
        results.put(_segment(mode, url, seconds, index, barrier))


# -- one segment: (backend, N, mode) -------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


class Pool:
    """N processes started at once and kept for every segment of one (backend, N)."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.n = n
        self.barrier = ctx.Barrier(n + 1)
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(target=worker_main, args=(i, self.commands[i], self.barrier, self.results), daemon=True)
            for i in range(n)
        ]
        for p in self.procs:
            p.start()
        for _ in range(n):
            self.results.get(timeout=600)

    def run(self, mode: str, url: str, seconds: float) -> list[dict[str, Any]]:
        self.barrier.reset()
        for q in self.commands:
            q.put((mode, url, seconds))
        try:
            self.barrier.wait(timeout=300)
        except Exception:
            pass  # a worker failed during setup: its error comes through the queue
        return [self.results.get(timeout=seconds + 600) for _ in range(self.n)]

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()


def run_one(pool: Pool, backend: str, mode: str, seconds: float, tmp: Path) -> dict[str, Any]:
    n = pool.n
    load_before = os.getloadavg()
    with fresh_database(backend, tmp) as url:
        create_study(url, mode)
        outs = pool.run(mode, url, seconds)
        load_after = os.getloadavg()
        counts = finished_trials(url)
    errors = [o["error"] for o in outs if o["error"]]
    starts = [o["t0"] for o in outs if o["t0"] is not None]
    ends = [o["t1"] for o in outs if o["t1"] is not None]
    wall = (max(ends) - min(starts)) if starts and ends else float("nan")
    lat = sorted(x for o in outs for x in o["latencies"])
    trials = sum(o["trials"] for o in outs)
    return {
        "backend": backend,
        "mode": mode,
        "workers": n,
        "seconds": seconds,
        "wall_s": wall,
        "trials": trials,
        "trials_per_s": trials / wall if wall and wall == wall else None,
        "reports": len(lat),
        "p50_ms": None if not lat else percentile(lat, 50) * 1e3,
        "p95_ms": None if not lat else percentile(lat, 95) * 1e3,
        "p99_ms": None if not lat else percentile(lat, 99) * 1e3,
        "max_ms": None if not lat else lat[-1] * 1e3,
        "db_trial_states": counts,
        "errors": errors,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "_latencies": lat,
    }


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeats of one (backend, mode, N): latencies pooled, trials and wall summed."""
    if len(runs) == 1:
        r = dict(runs[0])
    else:
        lat = sorted(x for r in runs for x in r["_latencies"])
        wall = sum(r["wall_s"] for r in runs)
        trials = sum(r["trials"] for r in runs)
        r = dict(runs[0])
        r.update(
            wall_s=wall,
            trials=trials,
            trials_per_s=trials / wall if wall else None,
            reports=len(lat),
            p50_ms=percentile(lat, 50) * 1e3 if lat else None,
            p95_ms=percentile(lat, 95) * 1e3 if lat else None,
            p99_ms=percentile(lat, 99) * 1e3 if lat else None,
            max_ms=lat[-1] * 1e3 if lat else None,
            errors=[e for r in runs for e in r["errors"]],
            repeats=[{k: v for k, v in x.items() if k != "_latencies"} for x in runs],
        )
    loads = [x for run in runs for x in (run["loadavg_before"][0], run["loadavg_after"][0])]
    r["load_1min_range"] = [min(loads), max(loads)]
    r.pop("_latencies", None)
    return r


# -- output ------------------------------------------------------------------------------------
def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | N | mode | trials/s | p50 ms | p95 ms | p95 ratio to plain | per ABBA pair | load (1 min) |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        ratio = r.get("ratio_p95")
        mark = ""
        if ratio is not None:
            mark = f"{ratio:.2f}"
            if r["mode"] == "hpsearch":
                mark += " ✗" if ratio > LIMIT_RATIO else " ✓"
        lines.append(
            f"| {r['backend']} | {r['workers']} | {r['mode']} | {fmt(r['trials_per_s'])} | "
            f"{fmt(r['p50_ms'], 2)} | {fmt(r['p95_ms'], 2)} | {mark} | "
            f"{' '.join(f'{x:.2f}' for x in r.get('pair_ratios_p95', []))} | "
            f"{r['load_1min_range'][0]:.1f}–{r['load_1min_range'][1]:.1f} |"
            + (f" errors: {len(r['errors'])}" if r["errors"] else "")
        )
    return "\n".join(lines)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> dict[str, str]:
    import optuna
    import sqlalchemy

    out = {"python": platform.python_version(), "optuna": optuna.__version__, "sqlalchemy": sqlalchemy.__version__}
    for mod in ("psycopg2", "pymysql"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="sqlite,postgresql,mysql")
    ap.add_argument("--workers", default="1,2,4,8,16")
    ap.add_argument("--seconds", type=float, default=10.0, help="wall time of one run")
    ap.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs per (backend, N, mode), mode order alternating (ABBA); latencies pooled",
    )
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default=str(RESULTS / "storage_bench"), help="path stem of .json and .md")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workers = [int(x) for x in args.workers.split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for b in backends:
        if b not in ("sqlite", *SERVERS):
            ap.error(f"unknown backend {b!r}")
    for m in modes:
        if m not in MODES + DIAGNOSTIC_MODES:
            ap.error(f"unknown mode {m!r}")

    started = time.monotonic()
    up_start = uptime()
    print(f"# storage benchmark — {os.cpu_count()} CPU cores, shared; {up_start}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="hpsbench_"))
    raw: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    k = 0
    try:
        for backend in backends:
            for n in workers:
                t_spawn = time.monotonic()
                pool = Pool(n)
                print(f"  {backend} N={n}: {n} processes ready in {time.monotonic() - t_spawn:.1f} s", flush=True)
                try:
                    for rep in range(args.repeats):
                        order = modes if k % 2 == 0 else list(reversed(modes))
                        k += 1
                        for mode in order:
                            r = run_one(pool, backend, mode, args.seconds, tmp)
                            raw.setdefault((backend, n, mode), []).append(r)
                            print(
                                f"  {backend:10s} N={n:2d} {mode:8s} rep {rep + 1}: "
                                f"{fmt(r['trials_per_s'])} trials/s, p50 {fmt(r['p50_ms'], 2)} ms, "
                                f"p95 {fmt(r['p95_ms'], 2)} ms, load {r['loadavg_before'][0]:.2f}"
                                + (f", errors {r['errors'][:2]}" if r["errors"] else ""),
                                flush=True,
                            )
                finally:
                    pool.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for backend in backends:
        for n in workers:
            merged = {m: merge(raw[(backend, n, m)]) for m in modes if (backend, n, m) in raw}
            plain = merged.get("plain")
            for mode, other in merged.items():
                if mode == "plain" or not plain or not plain["p95_ms"] or other["p95_ms"] is None:
                    continue
                other["ratio_p95"] = other["p95_ms"] / plain["p95_ms"]
                # Each repeat's segments of the two modes ran back to back: their ratio, pair by pair.
                other["pair_ratios_p95"] = [
                    h["p95_ms"] / q["p95_ms"]
                    for h, q in zip(raw[(backend, n, mode)], raw[(backend, n, "plain")])
                    if h["p95_ms"] and q["p95_ms"]
                ]
                other["ratio_p50"] = other["p50_ms"] / plain["p50_ms"]
                other["ratio_trials_per_s"] = (other["trials_per_s"] or 0) / (plain["trials_per_s"] or float("nan"))
            rows += [merged[m] for m in modes if m in merged]

    elapsed = time.monotonic() - started
    up_end = uptime()
    md = table(rows)
    fails = [
        r for r in rows if r["mode"] == "hpsearch" and r.get("ratio_p95") is not None and r["ratio_p95"] > LIMIT_RATIO
    ]
    header = (
        f"Storage benchmark, {datetime.now(timezone.utc).isoformat(timespec='seconds')}: "
        f"{args.seconds:g} s per run, {args.repeats} repeat(s), {REPORTS_PER_TRIAL} reports per trial; "
        f"{os.cpu_count()} CPU cores shared with other users' processes (load: the range of the 1-minute "
        f"load average over that row's segments). uptime at start: `{up_start}`; at end: `{up_end}`. "
        f"Total {elapsed / 60:.1f} min."
    )
    verdict = (
        f"hpsearch p95 within {LIMIT_RATIO}× plain Optuna at every measured (backend, N)."
        if not fails
        else "hpsearch p95 above "
        + f"{LIMIT_RATIO}× plain Optuna at: "
        + ", ".join(f"{r['backend']} N={r['workers']} ({r['ratio_p95']:.2f}×)" for r in fails)
    )
    print()
    print(header)
    print()
    print(md)
    print()
    print(verdict)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "seconds": args.seconds,
                "repeats": args.repeats,
                "reports_per_trial": REPORTS_PER_TRIAL,
                "cpu_count": os.cpu_count(),
                "uptime_start": up_start,
                "uptime_end": up_end,
                "elapsed_s": elapsed,
                "versions": versions(),
                "limit_ratio_p95": LIMIT_RATIO,
                "rows": rows,
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    out.with_suffix(".md").write_text(f"{header}\n\n{md}\n\n{verdict}\n")
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Per-trial fixed cost and service overhead: bare ``model.fit`` vs the same configuration as an hpsearch trial.

    python benchmarks/overhead_bench.py [--epochs 3] [--trials 3] [--repeats 3] [--modes bare,sqlite,...]

One fixed configuration, ``mnist_mlp`` baseline (a) (2 x Dense 128 relu, dropout 0.2, adam 1e-3,
batch 32), ``--epochs`` epochs on the documented MNIST t10k split (8,000 train / 1,000 val, seed 0).
Every (mode, repeat) is a fresh process that imports TensorFlow, loads the data once, runs one
warm-up trial (the process's first graph tracing; not counted) and then ``--trials`` measured
trials. Modes, interleaved (the order rotates with the repeat, since the machine is shared):

``bare``            per trial: ``set_random_seed`` -> ``task.build_model`` -> ``model.fit`` (what a
                    user does by hand; a tiny callback times the epochs).
``sqlite`` / ``postgresql``
                    per trial: the real worker path. A fresh database (PostgreSQL: ``CREATE DATABASE``
                    on ``postgresql+psycopg2://postgres@127.0.0.1:5432``, dropped afterwards), a study
                    created by ``search._study.create_study`` (pruner hyperband, cap = trials + 1, no
                    baselines), the configuration enqueued trials + 1 times, and ``Worker.run`` with
                    ``TrialRunner``, built exactly as ``hpsearch._runworker.run_worker`` builds them (heartbeat
                    30 s, grace 120 s, stale-trial sweeps). The Hyperband pruner is the real one
                    (``HyperbandPruner`` subclass, same arguments, same storage reads) but never
                    answers "prune": identical trials with different seeds would otherwise be cut
                    after an epoch and the trials would not be comparable.
``<backend>-orig``  the same with ``TrialRunner`` from ``git show REF:search/_objective.py``
                    (``--orig-ref``, default eb36671: before ``gc.freeze`` between trials and the
                    batched user-attribute write).
``postgresql-ping60`` the same with ``storage._engine.PRE_PING_IDLE_SECONDS = 60`` (a proposal).
``bare-spe32``      ``bare`` with ``model.steps_per_execution = 32`` (a proposal; same numbers).

Measured per trial, with ``time.perf_counter`` wrappers around the real functions (the worker and
runner code is not changed): the iteration (``study.ask`` to the next ``study.ask``), the runner
call, ``clear_session`` + ``gc.collect``, ``build_model``, ``fit``, every storage call (the
``_CachedStorage`` and ``RDBStorage`` methods and the stale-trial sweep; the heartbeat thread's
separately), ``trial.report`` + ``trial.should_prune`` per epoch, the ``search_space`` suggest calls
and the user-attr writes; per-epoch seconds come from the trial's ``history`` user attr (hpsearch) or
the callback (bare); graph tracing = first epoch minus the median of the later ones.

Overheads, medians over all measured trials of all repeats:

* total: median hpsearch iteration - median bare iteration (s and % of bare); this includes the
  Keras-side cost of hpsearch (``clear_session`` + ``gc`` between trials) and the machine's noise;
* service: the worker loop outside the runner (ask, tell, heartbeat thread, sweeps, cap checks) +
  storage writes inside the runner (suggest, report, should_prune, user attrs), measured directly.
  The goal: service <= 2 % of a trial's time on PostgreSQL.

Writes ``benchmarks/results/overhead/overhead_<epochs>ep.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import threading
import time
from typing import Any
import uuid

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

MODES = ("bare", "sqlite", "postgresql", "sqlite-orig", "postgresql-orig")
EXTRA_MODES = ("postgresql-ping60", "bare-spe32")
DEFAULT_MODES = MODES  # what BENCHMARKS.md reports
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
ORIG_REF = "eb36671"
TASK = "mnist_mlp"


# =================================================================================================
# child
# =================================================================================================
class Timers:
    """Accumulates seconds per (trial, key); nested timed calls count once (outermost only)."""

    def __init__(self) -> None:
        self.trials: list[dict[str, Any]] = []
        self.cur: dict[str, Any] = {}
        self.local = threading.local()
        self.main = threading.get_ident()

    def new_trial(self) -> None:
        self.cur = {"t_start": time.perf_counter(), "in_runner": False}
        self.trials.append(self.cur)

    def add(self, key: str, dt: float, n: int = 1) -> None:
        self.cur[key] = self.cur.get(key, 0.0) + dt
        self.cur[key + "_n"] = self.cur.get(key + "_n", 0) + n

    def add_call(self, where: str, name: str, dt: float) -> None:
        calls = self.cur.setdefault("storage_by_call", {})
        c = calls.setdefault(f"{where}:{name}", [0, 0.0])
        c[0] += 1
        c[1] += dt

    def wrap(self, fn: Any, key: str, *, storage: bool = False, group: str | None = None) -> Any:
        """``fn`` timed into ``key``; calls nested in an outer call of the same ``group`` are not
        counted again (storage: ``_CachedStorage`` -> ``RDBStorage``; ``clear_session`` -> ``gc``)."""
        timers = self
        group = "storage" if storage else group

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(timers.local, group, 0) if group else 0
            if depth:
                return fn(*args, **kwargs)
            if group:
                setattr(timers.local, group, 1)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                if group:
                    setattr(timers.local, group, 0)
                if storage:
                    if threading.get_ident() != timers.main:
                        timers.add("storage_thread", dt)
                    elif timers.cur.get("in_runner"):
                        timers.add("storage_in_runner", dt)
                        timers.add_call("runner", key, dt)
                    else:
                        timers.add("storage_loop", dt)
                        timers.add_call("loop", key, dt)
                else:
                    timers.add(key, dt)

        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapped


def _wrap_instance_methods(timers: Timers, obj: Any) -> None:
    for name in dir(type(obj)):
        if name.startswith("__") or name in ("get_heartbeat_interval",):
            continue
        if not (name.startswith(("get_", "set_", "create_", "record_", "check_", "fail_", "delete_", "_get_stale"))):
            continue
        attr = getattr(obj, name, None)
        if callable(attr):
            setattr(obj, name, timers.wrap(attr, name, storage=True))


def _epoch_timer(out: list[float]) -> Any:
    import keras

    class T(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            out.append(time.perf_counter() - self.t)

    return T()


def child_bare(
    task: Any, data: Any, n: int, epochs: int, params: dict[str, Any], spe: int | None
) -> list[dict[str, Any]]:
    import keras

    (x, y), (xv, yv) = data._splits["train"], data._splits["val"]
    rows = []
    for i in range(n):
        t0 = time.perf_counter()
        keras.utils.set_random_seed(i)
        t1 = time.perf_counter()
        model = task.build_model(params, data.spec)
        if spe:
            model.steps_per_execution = spe
        t2 = time.perf_counter()
        ep: list[float] = []
        hist = model.fit(
            x,
            y,
            batch_size=params["batch_size"],
            epochs=epochs,
            validation_data=(xv, yv),
            verbose=0,
            shuffle=True,
            callbacks=[_epoch_timer(ep)],
        )
        t3 = time.perf_counter()
        rows.append(
            {
                "iteration_s": t3 - t0,
                "build_s": t2 - t1,
                "fit_s": t3 - t2,
                "epoch_s": ep,
                "val_accuracy": hist.history["val_accuracy"],
            }
        )
        del model
    return rows


def _load_runner_class(variant: str, orig_ref: str) -> Any:
    if variant != "orig":
        from hpsearch._objective import TrialRunner

        return TrialRunner
    src = subprocess.run(
        ["git", "show", f"{orig_ref}:search/_objective.py"],
        capture_output=True,
        text=True,
        cwd=_machine.ROOT,
        check=True,
    ).stdout
    path = _machine.TMP / f"objective_{orig_ref}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(src)
    # inside the package, so that the old module's relative imports (``from .storage``) resolve
    name = "hpsearch._objective_orig"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.TrialRunner


@contextlib.contextmanager
def fresh_url(backend: str):
    if backend == "sqlite":
        path = _machine.TMP / f"overhead_{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for p in path.parent.glob(path.name + "*"):
                p.unlink(missing_ok=True)
        return
    import sqlalchemy as sa

    name = f"hpsoverhead_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()


def child_hpsearch(
    task: Any, data: Any, n: int, epochs: int, params: dict[str, Any], backend: str, variant: str, orig_ref: str
) -> list[dict[str, Any]]:
    import gc

    import keras
    import optuna

    from hpsearch._pruners import HyperbandPruner
    import hpsearch._study as study_mod
    from hpsearch._study import StudySettings
    from hpsearch._study import create_study
    from hpsearch._study import load_study
    from hpsearch._study import read_settings
    from hpsearch._worker import Worker
    from hpsearch._worker import WorkerBudget
    import hpsearch.storage as storage_pkg
    from hpsearch.storage import open_storage

    class NeverPrunes(HyperbandPruner):
        """The real Hyperband pruner's work (and storage reads), but the answer is always "go on"."""

        def prune(self, study: Any, trial: Any) -> bool:
            super().prune(study, trial)
            return False

    real_make_pruner = study_mod.make_pruner

    def make_pruner(s: Any) -> Any:
        if s.pruner == "hyperband":
            return NeverPrunes(min_resource=1, max_resource=s.max_epochs, reduction_factor=3)
        return real_make_pruner(s)

    study_mod.make_pruner = make_pruner
    if variant == "ping60":
        import hpsearch.storage._engine as engine_mod

        engine_mod.PRE_PING_IDLE_SECONDS = 60.0
    timers = Timers()
    runner_cls = _load_runner_class(variant, orig_ref)

    # -- timers around the real functions ----------------------------------------------------
    gc.collect = timers.wrap(gc.collect, "gc_s", group="cleanup")  # type: ignore[assignment]
    keras.backend.clear_session = timers.wrap(keras.backend.clear_session, "clear_session_s", group="cleanup")
    task.build_model = timers.wrap(task.build_model, "build_s")
    task.search_space = timers.wrap(task.search_space, "suggest_s")
    keras.Model.fit = timers.wrap(keras.Model.fit, "fit_s")
    optuna.trial.Trial.report = timers.wrap(optuna.trial.Trial.report, "report_s")
    optuna.trial.Trial.should_prune = timers.wrap(optuna.trial.Trial.should_prune, "should_prune_s")
    optuna.trial.Trial.set_user_attr = timers.wrap(optuna.trial.Trial.set_user_attr, "set_user_attr_s")
    keras.utils.set_random_seed = timers.wrap(keras.utils.set_random_seed, "seed_s")
    real_sweep = storage_pkg.sweep_stale_trials
    storage_pkg.sweep_stale_trials = timers.wrap(real_sweep, "sweep", storage=True)
    # hpsearch's own storage calls: the cap's count queries and the batched user-attribute write
    import hpsearch.storage._queries as queries

    queries._count_by_state = timers.wrap(queries._count_by_state, "count_by_state", storage=True)
    queries._count_not_failed_before = timers.wrap(queries._count_not_failed_before, "count_ahead", storage=True)
    if hasattr(storage_pkg, "set_user_attrs"):  # the runner writes its attributes in one call
        storage_pkg.set_user_attrs = timers.wrap(storage_pkg.set_user_attrs, "set_user_attr_s")

    with fresh_url(backend) as url:
        name = f"overhead_{uuid.uuid4().hex[:8]}"
        st = open_storage(url, create_tables=True)
        settings = StudySettings(task=task.name, max_epochs=epochs, seed=0, baselines=False, n_trials=n)
        study, _ = create_study(st, name, settings, url=url)
        for _ in range(n):
            study.enqueue_trial(params)
        st.engine.dispose()
        # as hpsearch._runworker.run_worker
        st = open_storage(url, heartbeat_interval=30, grace_period=120)
        settings = read_settings(load_study(st, name, url=url))
        study = load_study(st, name, url=url, settings=settings)
        _wrap_instance_methods(timers, study._storage)
        backend_storage = getattr(study._storage, "_backend", None)
        if backend_storage is not None:
            _wrap_instance_methods(timers, backend_storage)
        runner = runner_cls(task, data, max_epochs=settings.max_epochs, seed=settings.seed)

        def timed_runner(trial: Any) -> Any:
            timers.cur["in_runner"] = True
            t = time.perf_counter()
            try:
                return runner(trial)
            finally:
                timers.cur["runner_s"] = time.perf_counter() - t
                timers.cur["in_runner"] = False

        real_ask = study.ask

        def ask(*a: Any, **k: Any) -> Any:
            timers.new_trial()
            return real_ask(*a, **k)

        study.ask = ask  # type: ignore[method-assign]
        retry = getattr(study._storage, "_backend", study._storage).get_heartbeat_stale_trial_callback()
        with open(os.devnull, "w") as devnull:
            worker = Worker(
                study,
                timed_runner,
                cap=settings.n_trials,
                budget=WorkerBudget(),
                out=devnull,
                retry_callback=retry,
                poll_seconds=min(5.0, max(0.5, 120 / 10)),
                sweep_seconds=120 / 4,
            )
            worker.run()
        t_end = time.perf_counter()
        frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
        rows = []
        for i, tr in enumerate(timers.trials):
            nxt = timers.trials[i + 1]["t_start"] if i + 1 < len(timers.trials) else t_end
            ft = frozen.get(i)
            hist = (ft.user_attrs.get("history") or {}) if ft else {}
            row = {k: v for k, v in tr.items() if k not in ("t_start", "in_runner")}
            row.update(
                iteration_s=nxt - tr["t_start"],
                epoch_s=hist.get("seconds", []),
                val_accuracy=hist.get("val_accuracy", []),
                state=ft.state.name if ft else None,
                n_user_attrs=len(ft.user_attrs) if ft else None,
            )
            rows.append(row)
        for s in (study._storage, backend_storage):
            with contextlib.suppress(Exception):
                s.engine.dispose()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            backend_storage.engine.dispose()  # type: ignore[union-attr]
    return rows


def child_main(args: argparse.Namespace) -> int:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    _machine.ensure_root_on_path()
    import keras  # noqa: F401
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hpsearch").setLevel(logging.WARNING)
    from hpsearch.objectives import get_task

    task = get_task(TASK)
    data = task.load_data(str(_machine.DATASETS / "mnist-t10k"), seed=0)
    params = dict(task.baselines[0])
    n = args.trials + 1
    mode = args.mode
    if mode.startswith("bare"):
        rows = child_bare(task, data, n, args.epochs, params, 32 if mode == "bare-spe32" else None)
    else:
        backend, _, variant = mode.partition("-")
        rows = child_hpsearch(task, data, n, args.epochs, params, backend, variant, args.orig_ref)
    Path(args.result).write_text(json.dumps({"mode": mode, "rows": rows}))
    return 0


# =================================================================================================
# parent
# =================================================================================================
def derive(row: dict[str, Any]) -> dict[str, Any]:
    ep = row.get("epoch_s") or []
    later = statistics.median(ep[1:]) if len(ep) > 1 else None
    out = dict(row)
    out["tracing_s"] = (ep[0] - later) if later is not None else None
    out["epochs"] = len(ep)
    if "runner_s" in row:
        report = row.get("report_s", 0.0) + row.get("should_prune_s", 0.0)
        out["report_ms_per_epoch"] = 1e3 * report / max(1, len(ep))
        out["loop_s"] = row["iteration_s"] - row["runner_s"]
        out["clear_gc_s"] = row.get("clear_session_s", 0.0) + row.get("gc_s", 0.0)
        # Storage and Optuna work inside the runner happens only in these calls:
        inner = report + row.get("suggest_s", 0.0) + row.get("set_user_attr_s", 0.0)
        out["service_s"] = out["loop_s"] + inner
        out["storage_s"] = row.get("storage_loop", 0.0) + row.get("storage_in_runner", 0.0)
        out["storage_calls"] = row.get("storage_loop_n", 0) + row.get("storage_in_runner_n", 0)
    return out


def med(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def aggregate(mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "iteration_s",
        "runner_s",
        "loop_s",
        "service_s",
        "storage_s",
        "storage_calls",
        "storage_thread",
        "clear_gc_s",
        "gc_s",
        "build_s",
        "fit_s",
        "tracing_s",
        "report_ms_per_epoch",
        "suggest_s",
        "set_user_attr_s",
        "set_user_attr_s_n",
        "seed_s",
    )
    out: dict[str, Any] = {"mode": mode, "n_trials": len(rows)}
    for k in keys:
        out[k] = med([r.get(k) for r in rows])
    out["epoch_first_s"] = med([(r.get("epoch_s") or [None])[0] for r in rows])
    out["epoch_later_s"] = med(
        [statistics.median(r["epoch_s"][1:]) if len(r.get("epoch_s") or []) > 1 else None for r in rows]
    )
    calls: dict[str, list[float]] = {}
    for r in rows:
        for name, (n, dt) in (r.get("storage_by_call") or {}).items():
            c = calls.setdefault(name, [0, 0.0])
            c[0] += n
            c[1] += dt
    if calls:  # per trial: mean calls and milliseconds, biggest first
        out["storage_by_call"] = {
            k: {"calls": round(n / len(rows), 2), "ms": round(1e3 * dt / len(rows), 2)}
            for k, (n, dt) in sorted(calls.items(), key=lambda kv: -kv[1][1])
        }
    out["iteration_min_s"] = min((r["iteration_s"] for r in rows), default=None)
    out["iteration_max_s"] = max((r["iteration_s"] for r in rows), default=None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--trials", type=int, default=3, help="measured trials per process (after 1 warm-up)")
    ap.add_argument("--repeats", type=int, default=3, help="processes per mode")
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES))
    ap.add_argument("--orig-ref", default=ORIG_REF, help="git revision whose search/_objective.py the -orig modes use")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES + EXTRA_MODES:
            ap.error(f"unknown mode {m!r}; choose from {', '.join(MODES + EXTRA_MODES)}")
    out = Path(args.out) if args.out else _machine.RESULTS / "overhead" / f"overhead_{args.epochs}ep.json"
    _machine.TMP.mkdir(parents=True, exist_ok=True)
    print(
        f"# overhead benchmark: {modes}, {args.epochs} epochs, {args.trials} trials x {args.repeats} repeats; "
        f"{_machine.uptime()}",
        flush=True,
    )
    per_mode: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    procs: list[dict[str, Any]] = []
    with _machine.LoadSampler() as load:
        for rep in range(args.repeats):
            order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
            for mode in order:
                res = _machine.TMP / f"overhead_{mode}_{rep}_{uuid.uuid4().hex[:6]}.json"
                cmd = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--child",
                    "--mode",
                    mode,
                    "--epochs",
                    str(args.epochs),
                    "--trials",
                    str(args.trials),
                    "--result",
                    str(res),
                    "--orig-ref",
                    args.orig_ref,
                ]
                l0 = os.getloadavg()[0]
                t = time.monotonic()
                p = subprocess.run(cmd, capture_output=True, text=True, env=_machine.child_env(), cwd=_machine.ROOT)
                wall = time.monotonic() - t
                if p.returncode != 0 or not res.exists():
                    print(f"  {mode} repeat {rep}: FAILED rc={p.returncode}\n{p.stderr[-3000:]}", flush=True)
                    procs.append({"mode": mode, "repeat": rep, "error": p.stderr[-3000:]})
                    continue
                rows = json.loads(res.read_text())["rows"]
                res.unlink()
                measured = [derive(r) for r in rows[1:]]  # rows[0]: warm-up trial
                for r in measured:
                    r["repeat"] = rep
                per_mode[mode].extend(measured)
                procs.append(
                    {
                        "mode": mode,
                        "repeat": rep,
                        "wall_s": round(wall, 1),
                        "load1_before": l0,
                        "load1_after": os.getloadavg()[0],
                        "warmup": derive(rows[0]),
                        "trials": measured,
                    }
                )
                its = ", ".join(f"{r['iteration_s']:.2f}" for r in measured)
                extra = (
                    ""
                    if mode.startswith("bare")
                    else (
                        f" | service {med([r['service_s'] for r in measured]):.3f} s, storage "
                        f"{med([r['storage_s'] for r in measured]):.3f} s, clear+gc {med([r['clear_gc_s'] for r in measured]):.3f} s"
                    )
                )
                print(f"  {mode:<18} repeat {rep}: trial s [{its}]{extra} | load {l0:.2f}", flush=True)
    summary = {m: aggregate(m, rows) for m, rows in per_mode.items() if rows}
    bare = summary.get("bare", {}).get("iteration_s")
    for m, s in summary.items():
        if m.startswith("bare") or bare is None:
            continue
        s["overhead_total_s"] = s["iteration_s"] - bare
        s["overhead_total_pct"] = 100 * s["overhead_total_s"] / bare
        s["service_pct"] = 100 * s["service_s"] / bare
        s["storage_pct"] = 100 * s["storage_s"] / bare
    result = {
        "kind": "overhead",
        "task": TASK,
        "config": "mnist_mlp baseline (a): 2 x Dense 128 relu, dropout 0.2, adam 1e-3, batch 32",
        "epochs": args.epochs,
        "trials_per_process": args.trials,
        "repeats": args.repeats,
        "modes": modes,
        "orig_ref": args.orig_ref,
        "summary": summary,
        "processes": procs,
        "load": load.summary(),
        "machine": _machine.machine(),
        "command": f"python benchmarks/overhead_bench.py --epochs {args.epochs} --trials {args.trials} "
        f"--repeats {args.repeats} --modes {','.join(modes)}",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    for m, s in summary.items():
        line = f"  {m:<18} trial {s['iteration_s']:.3f} s"
        if "overhead_total_s" in s:
            line += (
                f" | total overhead {s['overhead_total_s']:+.3f} s ({s['overhead_total_pct']:+.1f} %)"
                f" | service {s['service_s']:.3f} s ({s['service_pct']:.2f} %) | storage {s['storage_s']:.3f} s"
                f" | clear+gc {s['clear_gc_s']:.3f} s | report {s['report_ms_per_epoch']:.1f} ms/epoch"
            )
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

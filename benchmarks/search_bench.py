#!/usr/bin/env python
"""Search strategies on the same space, the same wall-clock budget and several seeds.

    python benchmarks/search_bench.py --task mnist_mlp --budget 120 --seeds 0,1,2
    python benchmarks/search_bench.py --task cifar10_cnn --budget 180 --seeds 0 --methods hpsearch,tpe

Methods (``--methods``, comma-separated; default: the first five):

``hpsearch``             hpsearch's default, through its own storage and worker: a SQLite study made by
                         ``search._study.create_study`` (TPE multivariate + constant liar and, since
                         2026-12-05, ASHA after epochs 1 and 4 keeping a quarter: ``make_pruner``;
                         the task's baselines enqueued first),
                         run by ``hpsearch._runworker.run_worker`` (the code of ``hpsearch worker --timeout``)
                         in-process, on the data loaded once.
``hpsearch-nobaseline``  the same, ``--no-baseline``.
``tpe``                  plain Optuna: ``optuna.create_study(sampler=TPESampler(seed=seed))``, no
                         pruning, ``study.optimize(objective, timeout=budget)``; the objective is
                         ``task.search_space`` -> ``clear_session`` -> ``set_random_seed`` ->
                         ``task.build_model`` -> plain ``model.fit`` for ``max_epochs``.
``random``               the same with ``RandomSampler(seed=seed)``.
``tpe-hyperband``        plain Optuna as its docs show pruning: the same with ``HyperbandPruner(min 1,
                         max max_epochs, factor 3)`` and optuna-integration's ``KerasPruningCallback``
                         (run only when named in ``--methods``).
``kt-hyperband``         Keras Tuner ``Hyperband(max_epochs, factor=3, seed, hyperband_iterations=1000)``
                         (KT's default of one iteration would end its search before the budget) on the same space written
                         as ``kt.HyperParameters`` (units per layer conditional on ``n_layers``...;
                         every sampled configuration is checked against the Optuna space), the same
                         ``task.build_model``, objective ``val_accuracy``.
``hpsearch:KEY=V,...``   a variant of the default with other ``StudySettings`` (``sampler``, ``pruner``,
                         ``baselines=0``), e.g. ``hpsearch:pruner=median`` or ``hpsearch:pruner=none``.

Protocol. Every (method, seed) runs in a fresh subprocess: it imports TensorFlow, loads the task's
data once (MNIST: the documented seeded t10k split 8,000 / 1,000 / 1,000, seed 0; CIFAR-10: the
``data_batch_1`` subset, 9,000 train / 1,000 val, seed 0), then starts the clock. The budget is a
hard wall-clock stop for every method: at ``budget`` seconds after the clock started, the process
ends (a watchdog thread calls ``os._exit``), whatever trial is running. Every epoch's
``val_accuracy`` is written with its time as it happens (hpsearch: each ``trial.report`` of its
``KerasPruningCallback``; the others: a Keras callback at ``on_epoch_end``), and every finished
trial with its state, so times to a target have epoch resolution. Per run the result file holds:
the time series (elapsed seconds, best val_accuracy so far), the time to each target (``null``
when never reached), the best val_accuracy within the budget, epochs run, trials complete / pruned /
failed within the budget, the load average during the run, the child's CPU seconds, and the pick
(the trial ``study.best_trial`` names at the budget; for hpsearch, what ``_recheck.pick`` names in the
study left at the budget, as ``export`` would: since settings version 5 possibly a re-measured
configuration, read by its mean curve; ``best_trial``'s is kept as ``pick_best_trial``); ``--worth K``
then trains each pick again K times with fresh seeds and records what it is worth (function
``worth_main``).

Runs go seed by seed; the method order rotates with the seed, so a drifting machine load does not
always hit the same method. ``--lanes N`` runs N of them at once, each child pinned
(``os.sched_setaffinity``) to its own 1/N of the CPUs, so that a protocol takes 1/N of the wall time
and every method still gets the same CPUs as the others; its CPU seconds are then its own. Results: ``benchmarks/results/search/<task>/budget<B>/<method>_seed<S>.json``;
``python benchmarks/make_report.py`` aggregates them into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import resource
import signal
import subprocess
import sys
import threading
import time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

TASKS: dict[str, dict[str, Any]] = {
    "mnist_mlp": {"data_dir": _machine.DATASETS / "mnist-t10k", "max_epochs": 10, "targets": (0.95, 0.96, 0.97)},
    "cifar10_cnn": {"data_dir": _machine.DATASETS / "cifar10-subset", "max_epochs": 15, "targets": (0.55, 0.60, 0.65)},
}
DEFAULT_METHODS = ("hpsearch", "hpsearch-nobaseline", "tpe", "random", "kt-hyperband")
EXTRA_METHODS = ("tpe-hyperband",)  # run when named: Optuna's documented TPE + Hyperband
STARTUP_LIMIT = 600.0  # seconds a child may take to import and load data before it is killed


# =================================================================================================
# child: one (method, seed) run
# =================================================================================================
class Events:
    """Line-per-event JSON log, flushed at once (the process may be ended at any moment)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.t0: float | None = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.write({"ev": "start", "wall": time.time()})

    def elapsed(self) -> float:
        return time.monotonic() - (self.t0 or time.monotonic())

    def write(self, row: dict[str, Any]) -> None:
        row.setdefault("t", round(self.elapsed(), 3))
        with self.lock:
            self.f.write(json.dumps(row) + "\n")
            self.f.flush()

    def epoch(self, trial: Any, epoch: int, value: Any) -> None:
        v = float(value) if value is not None else math.nan
        self.write(
            {"ev": "epoch", "trial": trial, "epoch": int(epoch), "val_accuracy": v if math.isfinite(v) else None}
        )

    def trial_end(self, trial: Any, state: str, value: Any = None, params: Any = None, best_epoch: Any = None) -> None:
        row = {"ev": "trial_end", "trial": trial, "state": state, "value": value}
        if params is not None:  # the pick's params and epochs, for --worth
            row.update(params=params, best_epoch=best_epoch)
        self.write(row)


def _watchdog(events: Events, budget: float) -> None:
    def run() -> None:
        left = budget - events.elapsed()
        if left > 0:
            time.sleep(left)
        events.write({"ev": "deadline", "cpu_s": round(time.process_time(), 2)})
        os._exit(0)

    threading.Thread(target=run, daemon=True).start()


def _seed_of(seed: int, number: int) -> int:
    return seed * 100_003 + number  # as TrialRunner.trial_seed


def run_hpsearch(
    task: Any,
    data: Any,
    events: Events,
    *,
    seed: int,
    budget: float,
    max_epochs: int,
    tmp: Path,
    overrides: dict[str, Any],
) -> None:
    import optuna

    from hpsearch._runworker import WorkerConfig
    from hpsearch._runworker import run_worker
    from hpsearch._study import StudySettings
    from hpsearch._study import create_study
    from hpsearch.storage import open_storage

    # Observe, do not change: every trial.report (one per epoch, from KerasPruningCallback) and
    # every study.tell (the worker's end of a trial) also writes an event.
    orig_report = optuna.trial.Trial.report
    orig_tell = optuna.study.Study.tell

    def report(self: Any, value: float, step: int) -> None:
        orig_report(self, value, step)
        events.epoch(self.number, step, value)

    def tell(self: Any, *args: Any, **kwargs: Any) -> Any:
        frozen = orig_tell(self, *args, **kwargs)
        events.trial_end(
            frozen.number, frozen.state.name, frozen.value, frozen.params, frozen.user_attrs.get("best_epoch")
        )
        return frozen

    optuna.trial.Trial.report = report  # type: ignore[method-assign]
    optuna.study.Study.tell = tell  # type: ignore[method-assign]

    overrides = dict(overrides)
    patch = overrides.pop("_patch", None)
    if patch:
        _patch_study_factories(patch)
    url = f"sqlite:///{tmp / 'study.db'}"
    settings = StudySettings(
        task=task.name, max_epochs=max_epochs, seed=seed, data_dir=str(TASKS[task.name]["data_dir"]), **overrides
    )
    events.start()
    _watchdog(events, budget)
    storage = open_storage(url, create_tables=True)
    create_study(storage, "bench", settings, url=url)
    storage.engine.dispose()
    # worker_index=0: the sampler's seed is ``seed * 1009`` (``make_sampler``), so a seed draws the same
    # start-up configurations in every run and method. Until stop 38 it was unset, and a lone worker's
    # index (so its seed) came from a hash of host name and pid (``_index``): not repeatable.
    config = WorkerConfig(study="bench", timeout=budget, heartbeat_interval=30, grace_period=120, worker_index=0)
    run_worker(config, url, data=data)


def _epoch_callback(events: Events, trial_id: Any) -> Any:
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            events.epoch(trial_id() if callable(trial_id) else trial_id, epoch, (logs or {}).get("val_accuracy"))

    return Recorder()


def run_optuna(
    task: Any, data: Any, events: Events, *, seed: int, budget: float, max_epochs: int, sampler_name: str
) -> None:
    import keras
    import optuna

    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler_name.startswith("tpe")
        else optuna.samplers.RandomSampler(seed=seed)
    )
    # tpe-hyperband: Optuna's documented TPE + Hyperband, pruning through optuna-integration's
    # KerasPruningCallback (it raises TrialPruned from inside fit; study.optimize records it).
    hyperband = sampler_name == "tpe-hyperband"
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
        if hyperband
        else optuna.pruners.NopPruner()
    )
    (x, y), (xv, yv) = data._splits["train"], data._splits["val"]

    from optuna_integration import KerasPruningCallback

    def objective(trial: Any) -> float:
        params = task.search_space(trial)
        keras.backend.clear_session()
        keras.utils.set_random_seed(_seed_of(seed, trial.number))
        model = task.build_model(params, data.spec)
        hist = model.fit(
            x,
            y,
            batch_size=int(params["batch_size"]),
            epochs=max_epochs,
            validation_data=(xv, yv),
            verbose=0,
            callbacks=[_epoch_callback(events, trial.number)]
            + ([KerasPruningCallback(trial, "val_accuracy")] if hyperband else []),
        )
        accs = [a for a in hist.history.get("val_accuracy", []) if math.isfinite(a)]
        if not accs:
            raise RuntimeError("no finite val_accuracy")
        # the epoch a user of this script would train the best params to (first of equals), for --worth
        trial.set_user_attr("best_epoch", hist.history["val_accuracy"].index(max(accs)) + 1)
        return max(accs)

    def on_end(study: Any, frozen: Any) -> None:
        events.trial_end(
            frozen.number, frozen.state.name, frozen.value, frozen.params, frozen.user_attrs.get("best_epoch")
        )

    events.start()
    _watchdog(events, budget)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, timeout=budget, callbacks=[on_end], catch=(Exception,))


# -- Keras Tuner: the same spaces as kt.HyperParameters ------------------------------------------
def kt_params_mnist_mlp(hp: Any) -> dict[str, Any]:
    n = hp.Int("n_layers", 0, 3)
    params: dict[str, Any] = {"n_layers": n}
    for i in range(3):
        with hp.conditional_scope("n_layers", list(range(i + 1, 4))):
            units = hp.Int(f"units_{i}", 16, 512, sampling="log")
        if i < n:
            params[f"units_{i}"] = units
    with hp.conditional_scope("n_layers", [1, 2, 3]):
        activation = hp.Choice("activation", ["relu", "sigmoid", "tanh"])
        dropout = hp.Float("dropout", 0.0, 0.6)
    if n:
        params["activation"] = activation
        params["dropout"] = dropout
    params["optimizer"] = hp.Choice("optimizer", ["adam", "sgd", "rmsprop", "adadelta"])
    params["learning_rate"] = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    params["batch_size"] = hp.Int("batch_size", 16, 256, sampling="log")
    params["loss"] = hp.Choice("loss", ["crossentropy", "mse"])
    return params


def kt_params_mnist_cnn(hp: Any) -> dict[str, Any]:
    n = hp.Int("n_blocks", 1, 3)
    params: dict[str, Any] = {"n_blocks": n}
    for i in range(3):
        with hp.conditional_scope("n_blocks", list(range(i + 1, 4))):
            filters = hp.Int(f"filters_{i}", 16, 128, sampling="log")
        if i < n:
            params[f"filters_{i}"] = filters
    params["kernel_size"] = hp.Choice("kernel_size", [3, 5])
    params["dropout"] = hp.Float("dropout", 0.0, 0.6)
    params["dense_units"] = hp.Int("dense_units", 0, 256, step=32)  # 0 = no hidden dense layer
    params["optimizer"] = hp.Choice("optimizer", ["adam", "sgd", "rmsprop"])
    params["learning_rate"] = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    params["batch_size"] = hp.Int("batch_size", 32, 256, sampling="log")
    return params


def kt_params_cifar10_cnn(hp: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    params["n_blocks"] = hp.Int("n_blocks", 2, 4)
    params["base_filters"] = hp.Int("base_filters", 16, 64, sampling="log")
    params["filters_cap"] = hp.Choice("filters_cap", [64, 128, 256, 512])
    params["batch_norm"] = hp.Boolean("batch_norm")
    params["padding"] = hp.Choice("padding", ["same", "valid"])
    params["pool_last"] = hp.Boolean("pool_last")
    params["dropout"] = hp.Float("dropout", 0.0, 0.5)
    params["n_dense"] = hp.Int("n_dense", 0, 2)
    with hp.conditional_scope("n_dense", [1, 2]):
        units = hp.Int("dense_units", 64, 256, sampling="log")
    if params["n_dense"]:
        params["dense_units"] = units
    params["optimizer"] = hp.Choice("optimizer", ["adam", "sgd"])
    params["learning_rate"] = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    params["batch_size"] = hp.Int("batch_size", 32, 256, sampling="log")
    params["augment"] = hp.Boolean("augment")
    return params


KT_SPACES = {
    "mnist_mlp": kt_params_mnist_mlp,
    "mnist_cnn": kt_params_mnist_cnn,
    "cifar10_cnn": kt_params_cifar10_cnn,
}


def run_keras_tuner(
    task: Any, data: Any, events: Events, *, seed: int, budget: float, max_epochs: int, tmp: Path
) -> None:
    import keras_tuner as kt

    from hpsearch.objectives import validate_params

    space = KT_SPACES[task.name]
    spec = data.spec
    (x, y), (xv, yv) = data._splits["train"], data._splits["val"]
    current = {"trial": None}

    class HyperModel(kt.HyperModel):
        def build(self, hp: Any) -> Any:
            params = space(hp)
            validate_params(task, params)  # the same space as the Optuna one, checked per config
            return task.build_model(params, spec)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=hp.get("batch_size"), **kwargs)

    class Tuner(kt.Hyperband):
        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            current["trial"] = int(trial.trial_id)
            return super().run_trial(trial, *args, **kwargs)

        def _configure_tensorboard_dir(self, callbacks: Any, trial: Any, execution: int = 0) -> None:
            # KT imports `tensorboard` here on every trial (to patch TensorBoard callbacks), and
            # TensorFlow 2.21 no longer installs it; with no TensorBoard callback this is a no-op.
            if any(type(c).__name__ == "TensorBoard" for c in callbacks):
                super()._configure_tensorboard_dir(callbacks, trial, execution)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            events.trial_end(int(trial.trial_id), str(trial.status), trial.score)

    events.start()
    _watchdog(events, budget)
    tuner = Tuner(
        HyperModel(),
        objective="val_accuracy",
        max_epochs=max_epochs,
        factor=3,
        seed=seed,
        # KT's default is one Hyperband iteration (~120 epochs for max_epochs 10, factor 3), after
        # which `search` returns; the other methods use the whole budget, so KT keeps iterating too.
        hyperband_iterations=1000,
        directory=str(tmp),
        project_name="kt",
        overwrite=True,
        # KT stops the whole search after 3 failed trials in a row by default; a configuration that
        # cannot be built must not end the run early (the Optuna methods mark it FAIL and go on).
        max_consecutive_failed_trials=10**6,
    )
    tuner.search(
        x,
        y,
        validation_data=(xv, yv),
        epochs=max_epochs,
        verbose=0,
        callbacks=[_epoch_callback(events, lambda: current["trial"])],
    )


def child_main(args: argparse.Namespace) -> int:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _machine.ensure_root_on_path()
    import keras  # noqa: F401  (imported before the clock starts, for every method)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hpsearch").setLevel(logging.WARNING)
    from hpsearch.objectives import get_task

    task = get_task(args.task)
    cfg = TASKS[args.task]
    data = task.load_data(str(cfg["data_dir"]), seed=0)
    events = Events(Path(args.events))
    events.write({"ev": "data", "description": data.description, "sizes": data.sizes, "t": 0.0})
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    kw = {"seed": args.seed, "budget": args.budget, "max_epochs": cfg["max_epochs"]}
    method = args.method
    if method == "hpsearch" or method.startswith("hpsearch:") or method == "hpsearch-nobaseline":
        run_hpsearch(task, data, events, tmp=tmp, overrides=method_overrides(method), **kw)
    elif method in ("tpe", "tpe-hyperband", "random"):
        run_optuna(task, data, events, sampler_name=method, **kw)
    elif method == "kt-hyperband":
        run_keras_tuner(task, data, events, tmp=tmp, **kw)
    else:
        raise SystemExit(f"unknown method {method!r}")
    events.write({"ev": "done", "cpu_s": round(time.process_time(), 2)})
    return 0


WORTH_SEED = 7_000_000  # the retrainings' seeds: WORTH_SEED + k, the same for every run (paired)


def worth_main(args: argparse.Namespace) -> int:
    """``--worth K``, in a child: what each run's pick is worth, as the user would get it. The pick's
    params are trained again K times with fresh seeds, through the product's final-training routine
    (``fit_task``, as ``hpsearch train --epochs best``: ``best_epoch`` epochs), on the same split;
    written into the result file as ``worth``: the last epoch's val accuracy (what the replay scores
    as a pick's worth) and the test accuracy (the held-out 1,000, as ``train`` reports it), per seed.
    The search's own measurement of its pick is the maximum of noisy epochs (the winner's curse), so
    the best value seen overstates what a pick is worth (BENCHMARKS.md, stop 23)."""
    import logging
    import warnings

    import numpy as np

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _machine.ensure_root_on_path()
    import keras

    logging.getLogger("hpsearch").setLevel(logging.WARNING)
    from hpsearch.objectives import get_task
    from hpsearch.objectives._fit import batch_size_of
    from hpsearch.objectives._fit import eval_batch_size
    from hpsearch.objectives._fit import fit_task

    task = get_task(args.task)
    data = task.load_data(str(TASKS[args.task]["data_dir"]), seed=0)
    y_test = data.labels("test")
    for f in args.worth_files.split(","):
        path = Path(f)
        doc = json.loads(path.read_text())
        pick = doc.get("pick")
        if not pick:
            continue
        params = pick["params"]
        epochs = int(pick.get("best_epoch") or doc["max_epochs"])
        rows = []
        for k in range(args.worth):
            t0 = time.perf_counter()
            keras.backend.clear_session()
            run = fit_task(task, data, params, epochs=epochs, seed=WORTH_SEED + k, validate=True)
            test = data.inputs("test", eval_batch_size(batch_size_of(params), data.spec.input_shape))
            probs = run.model.predict(test.x, batch_size=test.batch_size, verbose=0)
            val = run.history.get("val_accuracy", [math.nan])[-1]
            rows.append(
                {
                    "seed": WORTH_SEED + k,
                    "val_accuracy": round(float(val), 6),
                    "test_accuracy": round(float((np.argmax(probs, axis=-1) == y_test).mean()), 6),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
        vals = [r["val_accuracy"] for r in rows]
        tests = [r["test_accuracy"] for r in rows]
        doc["worth"] = {
            "epochs": epochs,
            "val_mean": round(float(np.mean(vals)), 6),
            "test_mean": round(float(np.mean(tests)), 6),
            "runs": rows,
        }
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(
            f"  worth {doc['method']:<20} seed {doc['seed']}: pick trial {pick['trial']} "
            f"(value {pick['value']:.4f}, {epochs} epochs): val {doc['worth']['val_mean']:.4f} "
            f"test {doc['worth']['test_mean']:.4f}",
            flush=True,
        )
    return 0


PATCH_KEYS = ("startup", "hb_min", "hb_rf")  # benchmark-side variants of _study's sampler/pruner


def method_overrides(method: str) -> dict[str, Any]:
    """``StudySettings`` fields of an hpsearch method: ``hpsearch:pruner=median,baselines=0``.

    Besides the settings (``sampler``, ``pruner``, ``baselines``, ``version``, ``live_recheck``), three keys try other sampler and
    pruner arguments without changing ``search/_study.py``: ``startup=N`` (TPE ``n_startup_trials``,
    Optuna's default 10), ``hb_min=N`` / ``hb_rf=N`` (Hyperband ``min_resource`` / ``reduction_factor``,
    hpsearch's 1 / 3). They replace ``search._study.make_sampler`` / ``make_pruner`` in the benchmark's
    child process only and are returned under the key ``_patch``.
    """
    if method == "hpsearch":
        return {}
    if method == "hpsearch-nobaseline":
        return {"baselines": False}
    out: dict[str, Any] = {}
    patch: dict[str, int] = {}
    for item in method.split(":", 1)[1].split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "baselines":
            out[key] = value.strip().lower() not in ("0", "false", "no", "off")
        elif key in ("sampler", "pruner"):
            out[key] = value.strip()
        elif key in ("version", "live_recheck"):  # stop 38: an older settings version's behaviour, paired
            out[key] = int(value) if key == "version" else value.strip().lower() not in ("0", "false", "no", "off")
        elif key in PATCH_KEYS:
            patch[key] = int(value)
        else:
            raise SystemExit(
                f"unsupported hpsearch variant setting {key!r} (sampler, pruner, baselines, version, live_recheck, "
                f"{', '.join(PATCH_KEYS)})"
            )
    if patch:
        out["_patch"] = patch
    return out


def _patch_study_factories(patch: dict[str, int]) -> None:
    import optuna

    import hpsearch._study as st

    real_sampler, real_pruner = st.make_sampler, st.make_pruner

    def make_sampler(s: Any, worker_index: int = 0) -> Any:
        if "startup" in patch and s.sampler == "tpe":
            seed = None if s.seed is None else s.seed * 1009 + worker_index
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, constant_liar=True, n_startup_trials=patch["startup"]
            )
        return real_sampler(s, worker_index)

    def make_pruner(s: Any) -> Any:
        if s.pruner == "hyperband" and ("hb_min" in patch or "hb_rf" in patch):
            from hpsearch._pruners import HyperbandPruner

            return HyperbandPruner(
                min_resource=patch.get("hb_min", 1), max_resource=s.max_epochs, reduction_factor=patch.get("hb_rf", 3)
            )
        return real_pruner(s)

    st.make_sampler = make_sampler
    st.make_pruner = make_pruner


# =================================================================================================
# parent: orchestration and the per-run summary
# =================================================================================================
def summarize(rows: list[dict[str, Any]], budget: float, targets: tuple[float, ...]) -> dict[str, Any]:
    """Per-run figures from the event log (only what happened within ``budget`` seconds counts)."""
    epochs = [r for r in rows if r["ev"] == "epoch" and r["t"] <= budget]
    ends = [r for r in rows if r["ev"] == "trial_end" and r["t"] <= budget]
    series: list[list[float]] = []
    best = -math.inf
    for r in epochs:
        v = r.get("val_accuracy")
        if v is not None and v > best:
            best = v
            series.append([r["t"], round(v, 6)])
    ttt: dict[str, float | None] = {}
    for target in targets:
        hit = next((t for t, v in series if v >= target - 1e-9), None)
        ttt[f"{target:.2f}"] = hit
    states: dict[str, int] = {}
    for r in ends:
        s = r["state"].upper().replace("TRIALSTATUS.", "")
        s = {"COMPLETED": "COMPLETE", "FAILED": "FAIL", "INVALID": "FAIL"}.get(s, s)  # Keras Tuner's names
        states[s] = states.get(s, 0) + 1
    first_epoch_t = epochs[0]["t"] if epochs else None
    # The pick: the trial ``study.best_trial`` names at the budget (complete trials, by the method's own
    # value; the first to complete among equals), with the epochs ``train --epochs best`` would run.
    picks = [r for r in ends if r.get("params") is not None and r.get("value") is not None]
    picks = [r for r in picks if r["state"].upper() == "COMPLETE"]
    pick = max(picks, key=lambda r: r["value"], default=None)  # max() keeps the first of equals
    return {
        "series": series,
        "time_to_target": ttt,
        "best_val_accuracy": None if best == -math.inf else round(best, 6),
        "epochs_run": len(epochs),
        "trials_started": len({r["trial"] for r in epochs}),
        "trials_complete": states.get("COMPLETE", 0),
        "trials_pruned": states.get("PRUNED", 0),
        "trials_failed": states.get("FAIL", 0),
        "trial_states": states,
        "first_epoch_at": first_epoch_t,
        "epochs": [[r["t"], r["trial"], r["epoch"], r.get("val_accuracy")] for r in epochs],
        "pick": None if pick is None else {k: pick[k] for k in ("t", "trial", "value", "params", "best_epoch")},
    }


def product_pick(db: Path, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """hpsearch's own pick (``_recheck.pick``) of the study the child left at the budget (the child is
    over, so the file is quiet; only trials that ended within the budget are COMPLETE in it). ``t``: when
    its last measurement ended (the events' time), ``trials``: the runs its value is the mean of."""
    import optuna

    from hpsearch._recheck import pick
    from hpsearch.storage import open_storage

    storage = open_storage(f"sqlite:///{db}")
    try:
        chosen = pick(optuna.load_study(study_name="bench", storage=storage))
    finally:
        storage.engine.dispose()
    if chosen is None:
        return None
    ends = {r["trial"]: r["t"] for r in rows if r["ev"] == "trial_end"}
    return {
        "t": max((ends[n] for n in chosen.trials if n in ends), default=None),
        "trial": chosen.trial.number,
        "value": round(chosen.value, 6),
        "params": chosen.trial.params,
        "best_epoch": chosen.best_epoch,
        "trials": chosen.trials,
    }


def _settings_version() -> int:
    from hpsearch._study import FORMAT_VERSION

    return FORMAT_VERSION


def result_path(out_dir: Path, task: str, budget: float, method: str, seed: int) -> Path:
    safe = method.replace(":", "_").replace("=", "-").replace(",", "+")
    return out_dir / task / f"budget{budget:g}" / f"{safe}_seed{seed}.json"


def run_one(
    task: str, method: str, seed: int, budget: float, out_dir: Path, grace: float, cpus: set[int] | None = None
) -> dict[str, Any]:
    stamp = _machine.now_stamp()
    work = _machine.TMP / f"search_{task}_{method.replace(':', '_')}_{seed}_{stamp}_{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    events_path = work / "events.jsonl"
    log_path = work / "child.log"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--task",
        task,
        "--method",
        method,
        "--seed",
        str(seed),
        "--budget",
        str(budget),
        "--events",
        str(events_path),
        "--tmp",
        str(work / "scratch"),
    ]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    started_wall = time.time()
    killed = False
    with _machine.LoadSampler() as load, open(log_path, "w") as log:
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None  # TensorFlow sizes its pools to it
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_machine.child_env(),
            start_new_session=True,
            cwd=str(_machine.ROOT),
            preexec_fn=pin,
        )
        t_clock = None
        while proc.poll() is None:
            time.sleep(1.0)
            if t_clock is None and events_path.exists() and '"ev": "start"' in events_path.read_text():
                t_clock = time.monotonic()
            limit = (t_clock + budget + grace) if t_clock else (started + STARTUP_LIMIT)
            if time.monotonic() > limit:
                killed = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    wall = time.monotonic() - started
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    rows = (
        [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
        if events_path.exists()
        else []
    )
    own_cpu = next((r["cpu_s"] for r in rows if r["ev"] in ("deadline", "done") and "cpu_s" in r), None)
    if own_cpu is not None or cpus:  # with lanes, RUSAGE_CHILDREN mixes the lanes' children
        cpu = own_cpu if own_cpu is not None else float("nan")
    start = next((r for r in rows if r["ev"] == "start"), None)
    data = next((r for r in rows if r["ev"] == "data"), {})
    cfg = TASKS[task]
    summary = summarize(rows, budget, cfg["targets"])
    db = work / "scratch" / "study.db"
    if method.startswith("hpsearch") and db.exists():
        # hpsearch's pick is ``_recheck.pick`` (what ``export`` writes), not ``best_trial``: since
        # settings version 5 a live-recheck study may pick a re-measured configuration by its mean curve.
        summary["pick_best_trial"] = summary["pick"]
        summary["pick"] = product_pick(db, rows)
    errors = []
    if start is None:
        errors.append("the child never started its clock; see " + str(log_path))
    if proc.returncode not in (0, None) and not any(r["ev"] == "deadline" for r in rows):
        errors.append(
            f"child exit code {proc.returncode}"
            + (" (killed after the budget)" if killed else "")
            + f"; log tail: {log_path.read_text()[-600:]!r}"
        )
    result = {
        "kind": "search",
        "task": task,
        "method": method,
        "seed": seed,
        "budget_s": budget,
        "max_epochs": cfg["max_epochs"],
        "targets": list(cfg["targets"]),
        "data": data.get("description"),
        "data_sizes": data.get("sizes"),
        **summary,
        "setup_s": round(start["wall"] - started_wall, 2) if start else None,
        "ended_by": "deadline"
        if any(r["ev"] == "deadline" for r in rows)
        else ("done" if any(r["ev"] == "done" for r in rows) else "killed" if killed else "exit"),
        "process_wall_s": round(wall, 2),
        "process_cpu_s": round(cpu, 2),
        "cpu_share": round(cpu / wall, 2) if wall else None,
        "cpus": sorted(cpus) if cpus else None,  # the CPUs the run was pinned to (lanes), else all
        "load": load.summary(),
        "machine": _machine.machine(),
        "settings_version": _settings_version(),  # hpsearch's study format: its steps and ASHA rungs
        "errors": errors,
        "log": str(log_path.relative_to(_machine.ROOT)),
        "command": " ".join(
            [
                "python",
                "benchmarks/search_bench.py",
                "--task",
                task,
                "--methods",
                method,
                "--seeds",
                str(seed),
                "--budget",
                f"{budget:g}",
            ]
        ),
    }
    path = result_path(out_dir, task, budget, method, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--task", choices=sorted(TASKS), default="mnist_mlp")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="wall-clock seconds per run (default: the issue's protocol, 420 MNIST / 900 CIFAR)",
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--out-dir", default=str(_machine.RESULTS / "search"))
    ap.add_argument("--grace", type=float, default=20.0, help="seconds after the budget before a child is killed")
    ap.add_argument("--resume", action="store_true", help="skip runs whose result file exists")
    ap.add_argument(
        "--lanes",
        type=int,
        default=1,
        help="runs at once, each pinned to its own share of the CPUs (default 1: one run, all CPUs)",
    )
    # child mode (internal)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--events", help=argparse.SUPPRESS)
    ap.add_argument(
        "--worth",
        type=int,
        default=0,
        metavar="K",
        help="after the runs, train each run's pick K more times with fresh seeds (function worth_main)",
    )
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    ap.add_argument("--worth-files", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.budget is None:
        args.budget = 420.0 if args.task == "mnist_mlp" else 900.0
    if args.child:
        return child_main(args)
    if args.worth_files:
        return worth_main(args)

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    methods: list[str] = []
    for part in (m.strip() for m in args.methods.split(",")):
        if "=" in part and ":" not in part and methods and methods[-1].startswith("hpsearch:"):
            methods[-1] += "," + part  # a further setting of the hpsearch:K=V,K2=V2 before it
        elif part:
            methods.append(part)
    for m in methods:
        if not (m in DEFAULT_METHODS + EXTRA_METHODS or m.startswith("hpsearch:")):
            ap.error(
                f"unknown method {m!r}; choose from {', '.join(DEFAULT_METHODS + EXTRA_METHODS)} or hpsearch:KEY=V"
            )
        if m.startswith("hpsearch:"):
            method_overrides(m)
    out_dir = Path(args.out_dir)
    print(
        f"# search benchmark {args.task}, budget {args.budget:g} s, seeds {seeds}, methods {methods}; "
        f"{os.cpu_count()} CPUs; {_machine.uptime()}",
        flush=True,
    )
    runs = []
    paths = []
    for k, seed in enumerate(seeds):
        order = methods[k % len(methods) :] + methods[: k % len(methods)]
        for method in order:
            path = result_path(out_dir, args.task, args.budget, method, seed)
            paths.append(path)
            if args.resume and path.exists():
                print(f"  skip {method} seed {seed}: {path} exists", flush=True)
                continue
            runs.append((method, seed))
    all_cpus = sorted(os.sched_getaffinity(0))
    if args.lanes > 1:
        if args.lanes > len(all_cpus):
            ap.error(f"--lanes {args.lanes} exceeds the {len(all_cpus)} CPUs here")
        share = len(all_cpus) // args.lanes
        free = [set(all_cpus[i * share : (i + 1) * share]) for i in range(args.lanes)]
        print(f"# {args.lanes} lanes, CPUs {[sorted(c) for c in free]} (one run per lane at a time)", flush=True)
    else:
        free = [None]  # type: ignore[list-item]

    def one(method: str, seed: int, cpus: set[int] | None) -> None:
        r = run_one(args.task, method, seed, args.budget, out_dir, args.grace, cpus)
        ttt = " ".join(f"{k}:{'-' if v is None else f'{v:.0f}s'}" for k, v in r["time_to_target"].items())
        print(
            f"  {method:<20} seed {seed}: best {r['best_val_accuracy']} | to target {ttt} | "
            f"epochs {r['epochs_run']} trials C{r['trials_complete']}/P{r['trials_pruned']}/F{r['trials_failed']} "
            f"| load {r['load']['load1_mean']} cpu share {r['cpu_share']}"
            + (f" cpus {sorted(cpus)}" if cpus else "")
            + (f" | ERRORS {r['errors']}" if r["errors"] else ""),
            flush=True,
        )

    # Run j goes to lane j % lanes, so with the order rotating per seed each method takes every lane
    # in turn (a lane taken by whichever run ended first let one method keep one core for a whole
    # protocol, 2026-12-03). Each lane runs its own queue in order.
    queues: list[list[tuple[str, int]]] = [runs[i :: len(free)] for i in range(len(free))]
    errors: list[BaseException] = []

    def lane(i: int) -> None:
        try:
            for method, seed in queues[i]:
                one(method, seed, free[i])
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(free))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if args.worth:
        worth(args, paths, free)
    return 0


def worth(args: argparse.Namespace, paths: list[Path], free: list[set[int] | None]) -> None:
    """The ``--worth`` pass: the result files without K retrainings of their pick, split over the
    lanes, one child per lane (TensorFlow and the data loaded once per child)."""
    todo = []
    for p in paths:
        doc = json.loads(p.read_text()) if p.exists() else {}
        if doc.get("pick") and len(doc.get("worth", {}).get("runs", [])) < args.worth:
            todo.append(p)
    print(f"# worth: {len(todo)} picks, {args.worth} trainings each", flush=True)
    procs = []
    logs = []
    for i, cpus in enumerate(free):
        mine = todo[i :: len(free)]
        if not mine:
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "--task", args.task, "--worth", str(args.worth)]
        pin = (lambda c=cpus: os.sched_setaffinity(0, c)) if cpus else None
        log = _machine.TMP / f"worth_{args.task}_{_machine.now_stamp()}_{i}.log"  # TensorFlow's noise
        log.parent.mkdir(parents=True, exist_ok=True)
        logs.append(log)
        with open(log, "w") as err:
            procs.append(
                subprocess.Popen(
                    [*cmd, "--worth-files", ",".join(str(p) for p in mine)],
                    stderr=err,
                    env=_machine.child_env(),
                    cwd=str(_machine.ROOT),
                    preexec_fn=pin,
                )
            )
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a --worth child failed (exit codes {codes}); see {', '.join(map(str, logs))}")


if __name__ == "__main__":
    sys.exit(main())

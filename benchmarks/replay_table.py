"""Record real learning curves once, for the replay benchmark (``replay_bench.py``).

A table is a fixed list of configurations of a task's own search space: the task's baselines first,
then configurations drawn by Optuna's ``RandomSampler`` (seed ``--space-seed``) through the task's
real ``search_space``. Each one is trained once for ``--max-epochs`` epochs through hpsearch's own
trial path (``TrialRunner`` on a ``FixedTrial``: the same build, inputs, ``fit``, clear_session and
garbage collection as a search trial) on the shared data, and one JSON line is appended per
configuration: the params, per-epoch validation accuracy and loss, per-epoch seconds (the first
includes tracing), build seconds and the trial's wall time.

Resumable: configurations already in the file are skipped, so a table grows across sessions::

    python benchmarks/replay_table.py --task mnist_mlp --n-configs 600 --lanes 1

``--lanes N`` runs N processes, each pinned to its own CPU (``os.sched_setaffinity``) and taking
every N-th configuration.

``--repeat-top N`` trains the table's top N rows (and a few at lower quantiles) again with other
training seeds, into ``<task>_repeats.jsonl``: the measured training noise of the surrogate replay.

``--cost-sample N`` measures what a ten-line Optuna script pays per trial, against hpsearch's trial
path, on N rows of the table drawn at random (seed ``--space-seed``): each row is trained for
``--cost-epochs`` epochs both ways, in one process pinned to one core, the order alternating from
row to row. The plain way is ``search_bench.py``'s peer objective: ``clear_session``, seed,
``task.build_model``, ``model.fit(x, y, batch_size, validation_data)`` with Keras' defaults. One line
per row goes to ``<task>_costs.jsonl``; the replay charges the peers (plain Optuna, Keras Tuner) the
plain way's seconds through these ratios (``replay_bench.py --peer-cost plain``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

DATA_DIRS = {
    "mnist_mlp": _machine.DATASETS / "mnist-t10k",
    "mnist_cnn": _machine.DATASETS / "mnist-t10k",
    "cifar10_cnn": _machine.DATASETS / "cifar10-subset",
}


def table_path(task: str) -> Path:
    return _machine.RESULTS / "replay" / f"{task}.jsonl"


def configurations(task: Any, n: int, space_seed: int) -> list[dict[str, Any]]:
    """The baselines, then ``n`` random configurations of the task's own search space (deduplicated)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: list[dict[str, Any]] = [dict(p) for p in task.baselines]
    seen = {json.dumps(p, sort_keys=True) for p in out}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=space_seed))
    while len(out) < n + len(task.baselines):
        trial = study.ask()
        task.search_space(trial)
        params = dict(trial.params)
        study.tell(trial, 0.0)
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


def recorded_on(rows: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    """The (CPU model, precision) pairs a table's rows were trained on (precision None: not recorded,
    rows from before 2026-12-05, stop 25). One table holds one pair: its seconds are the replay's clock,
    and a row trained in bfloat16 on another CPU is a different measurement (NOTES, stop 25)."""
    return {(str(r.get("cpu_model", "?")), r.get("precision")) for r in rows}


def machine_mismatch(rows: list[dict[str, Any]], cpu: str | None, precision: str | None) -> str | None:
    """Why rows recorded here (``cpu``, ``precision``) cannot join ``rows``; None when they can. ``cpu``
    None: the CPU model is not compared (the repeats: only their accuracies are used, and in float32
    another CPU trains the same model; their precision must match)."""
    cpus = {c for c, _ in recorded_on(rows)}
    precisions = {p for _, p in recorded_on(rows) if p is not None}
    if cpu is not None and cpus and cpus != {cpu}:
        return f"its rows were trained on {', '.join(sorted(cpus))}, and this machine is {cpu}"
    if precision is not None and precisions and precisions != {precision}:
        return f"its rows were trained in {', '.join(sorted(precisions))}, and this machine trains in {precision}"
    return None


def done_indices(path: Path) -> set[int]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        if line.strip():
            out.add(int(json.loads(line)["index"]))
    return out


def train_one(
    task: Any, data: Any, index: int, params: dict[str, Any], max_epochs: int, seed: int = 0
) -> dict[str, Any]:
    import optuna

    from hpsearch._objective import TrialRunner

    runner = TrialRunner(task, data, max_epochs=max_epochs, seed=seed)
    trial = optuna.trial.FixedTrial(params, number=index)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    error = None
    try:
        runner(trial)
    except Exception as e:  # a diverged or failed configuration is a row too (replayed as such)
        error = f"{type(e).__name__}: {e}"
    wall = time.perf_counter() - t0
    attrs = trial.user_attrs
    hist = attrs.get("history", {})
    epoch_s = hist.get("seconds", [])
    return {
        "index": index,
        "params": params,
        "val_accuracy": hist.get("val_accuracy", []),
        "val_loss": hist.get("val_loss", []),
        "loss": hist.get("loss", []),
        "epoch_seconds": epoch_s,
        # Everything but the epochs: clear_session + gc, build, compile, inputs, the history write.
        "overhead_seconds": round(max(0.0, wall - sum(epoch_s)), 3),
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(time.process_time() - cpu0, 3),
        "error": error or attrs.get("fail_reason"),
        # The Keras dtype policy the trial trained under (`objectives/_fit.py`): the CNNs train in
        # mixed_bfloat16 on a CPU with AMX-BF16 and in float32 elsewhere, at several times the cost.
        "precision": attrs.get("precision"),
    }


def lane(
    task_name: str, n: int, space_seed: int, max_epochs: int, lanes: int, lane_index: int, cpu: int | None
) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hpsearch.objectives import get_task

    task = get_task(task_name)
    configs = configurations(task, n, space_seed)
    path = table_path(task_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = done_indices(path)
    todo = [i for i in range(len(configs)) if i % lanes == lane_index and i not in done]
    machine = _machine.cpu_model()
    from hpsearch.objectives._fit import precision_policy

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    why = machine_mismatch(rows, machine, precision_policy(task))
    if why is not None:
        sys.exit(
            f"error: cannot add rows to {path}: {why}. Finish the table on that machine, or move its rows "
            "aside and build it here from the start."
        )
    data = task.load_data(str(DATA_DIRS[task_name]), seed=0, options={})
    t_start = time.time()
    for k, i in enumerate(todo):
        if i in done_indices(path):  # another process (a restarted lane) did it meanwhile
            continue
        row = train_one(task, data, i, configs[i], max_epochs)
        row.update(
            task=task_name,
            max_epochs=max_epochs,
            space_seed=space_seed,
            cpu_model=machine,
            lanes=lanes,
            date=time.strftime("%Y-%m-%d"),
        )
        with path.open("a") as f:  # one short write per line: lanes append without interleaving
            f.write(json.dumps(row) + "\n")
        best = max(row["val_accuracy"], default=float("nan"))
        rate = (time.time() - t_start) / (k + 1)
        print(
            f"[lane {lane_index}] config {i} ({k + 1}/{len(todo)}) best {best:.4f} "
            f"{row['wall_seconds']:.1f} s; ~{rate * (len(todo) - k - 1) / 60:.0f} min left",
            flush=True,
        )


def repeats_path(task: str) -> Path:
    return _machine.RESULTS / "replay" / f"{task}_repeats.jsonl"


def repeat_rows(task_name: str, top: int, quantiles: list[float], seeds: list[int], cpu: int | None) -> None:
    """Train chosen rows of the table again with other training seeds: the top ``top`` rows by best
    val accuracy and one row at each quantile. The spread between seeds of one configuration is the
    training noise the surrogate replay adds (``replay_bench.py --surrogate``), measured, not assumed."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hpsearch.objectives import get_task

    task = get_task(task_name)
    rows = [json.loads(x) for x in table_path(task_name).read_text().splitlines() if x.strip()]
    rows = sorted((r for r in rows if r["val_accuracy"]), key=lambda r: -max(r["val_accuracy"]))
    picks = rows[:top] + [rows[min(len(rows) - 1, int((1 - q) * len(rows)))] for q in quantiles]
    path = repeats_path(task_name)
    existing = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    from hpsearch.objectives._fit import precision_policy

    # The repeats are the surrogate's training noise around the table's rows: only their accuracies
    # are used, so another CPU may train them, but in the table's precision (replay_bench.load_table
    # refuses a mix too). mnist_mlp's table is from an AMD EPYC, its repeats from an Intel Xeon, both
    # float32.
    why = machine_mismatch(rows + existing, None, precision_policy(task))
    if why is not None:
        sys.exit(f"error: cannot add repeats to {path}: {why}. Train the repeats in the table's precision.")
    done = {(d["index"], d["seed"]) for d in existing}
    data = task.load_data(str(DATA_DIRS[task_name]), seed=0, options={})
    for seed in seeds:
        for r in picks:
            if (r["index"], seed) in done:
                continue
            row = train_one(task, data, r["index"], r["params"], r["max_epochs"], seed=seed)
            row.update(task=task_name, seed=seed, cpu_model=_machine.cpu_model(), date=time.strftime("%Y-%m-%d"))
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"row {r['index']} seed {seed}: best {max(row['val_accuracy'], default=float('nan')):.4f} "
                f"(table {max(r['val_accuracy']):.4f}) {row['wall_seconds']:.1f} s",
                flush=True,
            )


def costs_path(task: str) -> Path:
    return _machine.RESULTS / "replay" / f"{task}_costs.jsonl"


def plain_fit(task: Any, data: Any, params: dict[str, Any], epochs: int, seed: int = 0) -> dict[str, Any]:
    """A ten-line Optuna script's trial (``search_bench.py``'s ``run_optuna`` objective), timed."""
    import keras

    (x, y), (xv, yv) = data._splits["train"], data._splits["val"]
    epoch_s: list[float] = []
    val: list[float] = []

    class Timer(keras.callbacks.Callback):  # the trial path's own timing (search/_objective.py)
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            epoch_s.append(time.perf_counter() - self.t)
            val.append(float((logs or {}).get("val_accuracy", float("nan"))))

    t0 = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = task.build_model(params, data.spec)
    error = None
    try:
        model.fit(
            x,
            y,
            batch_size=int(params["batch_size"]),
            epochs=epochs,
            validation_data=(xv, yv),
            verbose=0,
            callbacks=[Timer()],
        )
    except Exception as e:  # as the trial path: a failed configuration is a row too
        error = f"{type(e).__name__}: {e}"
    wall = time.perf_counter() - t0
    return {
        "val_accuracy": val,
        "epoch_seconds": epoch_s,
        "overhead_seconds": round(max(0.0, wall - sum(epoch_s)), 4),
        "wall_seconds": round(wall, 4),
        "error": error,
    }


def cost_sample(task_name: str, n: int, epochs: int, sample_seed: int, cpu: int | None) -> None:
    """Both ways of training on ``n`` random rows of the table (the module docstring says how)."""
    import gc
    import random

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hpsearch.objectives import get_task

    task = get_task(task_name)
    rows = [json.loads(x) for x in table_path(task_name).read_text().splitlines() if x.strip()]
    picks = random.Random(sample_seed).sample(rows, min(n, len(rows)))
    path = costs_path(task_name)
    done = {json.loads(x)["index"] for x in path.read_text().splitlines() if x.strip()} if path.exists() else set()
    data = task.load_data(str(DATA_DIRS[task_name]), seed=0, options={})
    # One warm-up of each way, not recorded: the process's first model pays TensorFlow's start-up.
    plain_fit(task, data, rows[0]["params"], 1)
    train_one(task, data, rows[0]["index"], rows[0]["params"], 1)
    for k, r in enumerate(picks):
        if r["index"] in done:
            continue
        order = ("plain", "hpsearch") if k % 2 == 0 else ("hpsearch", "plain")
        out: dict[str, Any] = {}
        for way in order:
            gc.collect()
            if way == "plain":
                out[way] = plain_fit(task, data, r["params"], epochs)
            else:
                one = train_one(task, data, r["index"], r["params"], epochs)
                out[way] = {
                    key: one[key]
                    for key in ("val_accuracy", "epoch_seconds", "overhead_seconds", "wall_seconds", "error")
                }
        row = {
            "index": r["index"],
            "params": r["params"],
            "epochs": epochs,
            "order": list(order),
            **out,
            "task": task_name,
            "cpu_model": _machine.cpu_model(),
            "date": time.strftime("%Y-%m-%d"),
        }
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        p, h = out["plain"], out["hpsearch"]
        print(
            f"[{k + 1}/{len(picks)}] row {r['index']} batch {r['params'].get('batch_size')}: "
            f"plain {p['wall_seconds']:.2f} s, hpsearch {h['wall_seconds']:.2f} s",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="mnist_mlp", choices=sorted(DATA_DIRS))
    ap.add_argument("--n-configs", type=int, default=600, help="random configurations besides the baselines")
    ap.add_argument("--space-seed", type=int, default=2026)
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument("--lanes", type=int, default=1)
    ap.add_argument("--lane-index", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--repeat-top", type=int, help="retrain the table's top N rows (and --repeat-quantiles)")
    ap.add_argument("--repeat-quantiles", default="0.5,0.75,0.9,0.95")
    ap.add_argument("--repeat-seeds", default="1,2,3", help="training seeds of the repeats")
    ap.add_argument("--cost-sample", type=int, help="time N random rows both ways: plain model.fit and the trial path")
    ap.add_argument("--cost-epochs", type=int, default=4, help="epochs of each --cost-sample training")
    a = ap.parse_args()
    if a.cost_sample is not None:
        cost_sample(a.task, a.cost_sample, a.cost_epochs, a.space_seed, a.cpu)
        return
    if a.repeat_top is not None:
        qs = [float(q) for q in a.repeat_quantiles.split(",") if q]
        repeat_rows(a.task, a.repeat_top, qs, [int(x) for x in a.repeat_seeds.split(",")], a.cpu)
        return
    if a.lane_index is not None:
        lane(a.task, a.n_configs, a.space_seed, a.max_epochs, a.lanes, a.lane_index, a.cpu)
        return
    ncpu = os.cpu_count() or 1
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--task",
                a.task,
                "--n-configs",
                str(a.n_configs),
                "--space-seed",
                str(a.space_seed),
                "--max-epochs",
                str(a.max_epochs),
                "--lanes",
                str(a.lanes),
                "--lane-index",
                str(i),
                "--cpu",
                str((ncpu - 1 - i) % ncpu),
            ]
        )
        for i in range(a.lanes)
    ]
    sys.exit(max(p.wait() for p in procs))


if __name__ == "__main__":
    main()

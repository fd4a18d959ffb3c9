#!/usr/bin/env python
"""Training throughput: plain ``model.fit`` as the seed notebooks wrote it vs hpsearch's trial path.

    python benchmarks/throughput_bench.py [--repeats 3] [--sections fit,decode,trial10]

Every measurement is a fresh process pinned to one CPU core (``os.sched_setaffinity``), the modes
of a section interleaved (the order rotates with the repeat: the machine is shared); medians over
the repeats. The load is sampled throughout (``benchmarks/_machine.py``).

``fit``: each task's first baseline, ``EPOCHS[task]`` epochs, same seed in both modes:

- ``plain``: ``keras.utils.set_random_seed(seed)`` -> ``task.build_model`` -> ``model.fit(x, y,
  batch_size, validation_data)``: one batch per call, validation at the training batch size.
- ``hpsearch``: ``TrialRunner`` (search/_objective.py) on an ``optuna.trial.FixedTrial`` of the same
  params and number: ``objectives/_fit.py``'s levers (steps per execution, large validation batch)
  plus the per-epoch history and pruning callbacks.

Per epoch: seconds from epoch begin to epoch end (training + validation) and training images/s
(training images / epoch seconds). First epoch (graph tracing) vs the median of the later ones.
Losses: the largest relative difference of any epoch's training loss between the two modes of the
same repeat (tolerance ``LOSS_RTOL``).
Data: mnist_mlp and mnist_cnn on the MNIST t10k split (8,000 train / 1,000 val); cifar10_cnn on
``cifar10-subset`` cut to its first ``CIFAR_TRAIN`` train / ``CIFAR_VAL`` val images; image_folder
(MobileNetV2, ``weights=none``, 160 px) on ``cats-and-dogs-small`` cut to ``FOLDER_TRAIN`` /
``FOLDER_VAL`` files, to keep the run in ~15 minutes on one loaded core.

``decode``: images/s of hpsearch's image-folder pipeline (``ImageFolderData.inputs``, one pass over
all training files, batch 32) vs a bare eager loop of ``tf.io.read_file`` + ``tf.io.decode_jpeg`` +
``tf.image.resize`` over the same files; cold (first pass of a process) and warm (second pass: the
pipeline's in-memory cache, the page cache for the bare loop).

``trial10``: a whole 10-epoch mnist_mlp baseline trial through the real worker on SQLite
(``benchmarks/overhead_bench.py --modes sqlite,sqlite-orig --orig-ref BASE``): this branch's
runner vs ``search/_objective.py`` at ``BASE`` (the code before these levers), interleaved.

Writes ``benchmarks/results/throughput/throughput.json``; ``--table`` prints the Markdown for
BENCHMARKS.md from it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time
from typing import Any
import uuid

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

TASKS = ("mnist_mlp", "mnist_cnn", "cifar10_cnn", "image_folder")
EPOCHS = {"mnist_mlp": 3, "mnist_cnn": 2, "cifar10_cnn": 2, "image_folder": 2}
DATA = {
    "mnist_mlp": "mnist-t10k",
    "mnist_cnn": "mnist-t10k",
    "cifar10_cnn": "cifar10-subset",
    "image_folder": "cats-and-dogs-small",
}
CIFAR_TRAIN, CIFAR_VAL = 1000, 500
FOLDER_TRAIN, FOLDER_VAL = 64, 32
FOLDER_OPTIONS = {"backbone": "MobileNetV2", "weights": "none", "image_size": 160}
LOSS_RTOL = 1e-4  # per-epoch training losses of the two modes: equal within this relative tolerance
# ... where hpsearch trains under mixed_bfloat16 (objectives/_fit.py: AMX CPUs, convolutional tasks): bfloat16
# products round to 8 bits of mantissa, so the losses follow float32 within a few percent, not to the digit.
BF16_LOSS_RTOL = 0.05
BASE = "28f4a18"  # main when this benchmark was written: the trial path before the levers
OUT = _machine.RESULTS / "throughput" / "throughput.json"


# =================================================================================================
# children
# =================================================================================================
def _pin() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _load(task_name: str) -> tuple[Any, Any]:
    from hpsearch.objectives import get_task

    task = get_task(task_name)
    path = str(_machine.DATASETS / DATA[task_name])
    if task_name == "image_folder":
        data = task.load_data(path, seed=0, options=dict(FOLDER_OPTIONS))
        return task, data.head({"train": FOLDER_TRAIN, "val": FOLDER_VAL, "test": FOLDER_VAL})
    data = task.load_data(path, seed=0)
    if task_name == "cifar10_cnn":
        from hpsearch.objectives import ArrayData

        s = data._splits
        data = ArrayData(
            x_train=s["train"][0][:CIFAR_TRAIN],
            y_train=s["train"][1][:CIFAR_TRAIN],
            x_val=s["val"][0][:CIFAR_VAL],
            y_val=s["val"][1][:CIFAR_VAL],
            x_test=s["test"][0][:CIFAR_VAL],
            y_test=s["test"][1][:CIFAR_VAL],
            class_names=data.spec.class_names,
            description=data.description + f"; first {CIFAR_TRAIN} train / {CIFAR_VAL} val",
        )
    return task, data


def child_fit(task_name: str, mode: str, number: int) -> dict[str, Any]:
    import keras

    task, data = _load(task_name)
    params = dict(task.baselines[0])
    epochs = EPOCHS[task_name]
    rows: list[dict[str, float]] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            rows.append(
                {
                    "seconds": time.perf_counter() - self.t,
                    "loss": float(logs["loss"]),
                    "val_accuracy": float(logs.get("val_accuracy", "nan")),
                }
            )

    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if mode == "plain":
        keras.utils.set_random_seed(number)
        model = task.build_model(params, data.spec)
        bs = int(params["batch_size"])
        train, val = data.inputs("train", bs, shuffle=True, seed=number), data.inputs("val", bs)
        model.fit(
            train.x,
            train.y,
            batch_size=train.batch_size,
            epochs=epochs,
            validation_data=(val.x, val.y) if val.y is not None else val.x,
            verbose=0,
            shuffle=train.y is not None,
            callbacks=[Timer()],
        )
        info = {"steps_per_execution": 1, "validation_batch_size": bs, "precision": "float32"}
    else:
        import optuna

        from hpsearch._objective import TrialRunner
        from hpsearch.objectives import _fit

        real_fit = _fit.fit_task

        def fit_task(*a: Any, **k: Any) -> Any:
            k["callbacks"] = [*k.get("callbacks", ()), Timer()]
            run = real_fit(*a, **k)
            info.update(run.info, validation_batch_size=run.val.batch_size if run.val else None)
            return run

        _fit.fit_task = fit_task
        trial = optuna.trial.FixedTrial(params, number=number)
        TrialRunner(task, data, max_epochs=epochs, seed=0)(trial)
    total = time.perf_counter() - t0
    n_train = data.sizes["train"]
    return {"rows": rows, "total_s": total, "n_train": n_train, "info": info}


def child_decode() -> dict[str, Any]:
    import tensorflow as tf

    from hpsearch.objectives._images import folder_data

    data = folder_data(
        _machine.DATASETS / DATA["image_folder"], seed=0, image_size=160, options=None, what="cats-and-dogs-small"
    )
    paths = data.paths("train")
    out: dict[str, Any] = {"n": len(paths), "cached": data.cached}

    def bare() -> float:
        t = time.perf_counter()
        for p in paths:
            img = tf.io.decode_jpeg(tf.io.read_file(p), channels=3)
            tf.image.resize(img, (160, 160)).numpy()
        return len(paths) / (time.perf_counter() - t)

    def pipeline() -> float:
        t = time.perf_counter()
        for x, _ in data.inputs("train", 32).x:
            x.numpy()
        return len(paths) / (time.perf_counter() - t)

    out["bare_cold"] = bare()
    out["bare_warm"] = bare()
    out["pipeline_cold"] = pipeline()
    out["pipeline_warm"] = pipeline()
    return out


def child_main(args: argparse.Namespace) -> int:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    _pin()
    _machine.ensure_root_on_path()
    logging.getLogger("hpsearch").setLevel(logging.ERROR)
    res = child_decode() if args.task == "decode" else child_fit(args.task, args.mode, args.number)
    Path(args.result).write_text(json.dumps(res))
    return 0


# =================================================================================================
# parent
# =================================================================================================
def _run_child(argv: list[str]) -> dict[str, Any] | None:
    res = _machine.TMP / f"throughput_{uuid.uuid4().hex[:8]}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--result", str(res), *argv]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_machine.child_env(), cwd=_machine.ROOT)
    if p.returncode != 0 or not res.exists():
        print(f"  FAILED {argv}: rc={p.returncode}\n{p.stderr[-3000:]}", flush=True)
        return None
    out = json.loads(res.read_text())
    res.unlink()
    return out


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarise_fit(task: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"task": task, "epochs": EPOCHS[task]}
    for mode, rs in runs.items():
        first = [r["rows"][0]["seconds"] for r in rs]
        later = [statistics.median([e["seconds"] for e in r["rows"][1:]]) for r in rs]
        n = rs[0]["n_train"] if rs else 0
        out[mode] = {
            "first_epoch_s": med(first),
            "later_epoch_s": med(later),
            "tracing_s": med([f - ll for f, ll in zip(first, later)]),
            "images_per_s": med([n / ll for ll in later]),
            "total_s": med([r["total_s"] for r in rs]),
            "n_train": n,
            "info": rs[-1]["info"] if rs else {},
        }
    p, h = runs.get("plain", []), runs.get("hpsearch", [])
    diffs = []
    for a, b in zip(p, h):
        for ea, eb in zip(a["rows"], b["rows"]):
            diffs.append(abs(ea["loss"] - eb["loss"]) / max(abs(ea["loss"]), 1e-12))
    out["loss_max_rel_diff"] = max(diffs) if diffs else None
    bf16 = any((r.get("info") or {}).get("precision") == "mixed_bfloat16" for r in h)
    out["loss_rtol"] = BF16_LOSS_RTOL if bf16 else LOSS_RTOL
    out["losses_equal"] = bool(diffs) and max(diffs) <= out["loss_rtol"]
    # last epoch's validation accuracy, hpsearch minus plain, per repeat (points of accuracy)
    vd = [
        b["rows"][-1].get("val_accuracy", float("nan")) - a["rows"][-1].get("val_accuracy", float("nan"))
        for a, b in zip(p, h)
    ]
    out["val_accuracy_diff"] = vd
    if out.get("plain", {}).get("images_per_s") and out.get("hpsearch", {}).get("images_per_s"):
        out["speedup"] = out["hpsearch"]["images_per_s"] / out["plain"]["images_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sections", default="fit,decode,trial10")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--base", default=BASE, help="git revision of search/_objective.py for trial10's -orig mode")
    ap.add_argument("--table", action="store_true", help="print the Markdown table from the JSON and exit")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--number", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.table:
        print(table(json.loads(OUT.read_text())))
        return 0
    if not args.tasks:
        ap.error("--tasks is empty")
    sections = [s for s in args.sections.split(",") if s]
    tasks = [t for t in args.tasks.split(",") if t]
    _machine.TMP.mkdir(parents=True, exist_ok=True)
    print(f"# throughput benchmark: {sections}, {args.repeats} repeats; {_machine.uptime()}", flush=True)
    result: dict[str, Any] = {}

    def save(key: str, value: Any) -> None:
        """Merge one section into the JSON as it is now (several runs may fill different sections)."""
        result[key] = value
        doc = json.loads(OUT.read_text()) if OUT.exists() else {}
        doc.update(kind="throughput", loss_rtol=LOSS_RTOL, machine=_machine.machine())
        doc.setdefault("commands", {})[key] = command
        doc.setdefault("loads", {})[key] = load.summary()
        doc.setdefault("machines", {})[key] = _machine.machine()  # sections may run on different days
        doc[key] = value
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(doc, indent=1) + "\n")

    command = f"python benchmarks/throughput_bench.py --repeats {args.repeats} --sections {','.join(sections)}"
    if args.tasks != ",".join(TASKS):
        command += f" --tasks {args.tasks}"
    with _machine.LoadSampler() as load:
        if "fit" in sections:
            fit: dict[str, Any] = {}
            for task in tasks:
                runs: dict[str, list[dict[str, Any]]] = {"plain": [], "hpsearch": []}
                for rep in range(args.repeats):
                    order = ["plain", "hpsearch"] if rep % 2 == 0 else ["hpsearch", "plain"]
                    for mode in order:
                        r = _run_child(["--task", task, "--mode", mode, "--number", str(rep)])
                        if r is not None:
                            runs[mode].append(r)
                            eps = ", ".join(f"{e['seconds']:.2f}" for e in r["rows"])
                            print(f"  {task:<13} {mode:<9} rep {rep}: epochs s [{eps}] {r['info']}", flush=True)
                fit[task] = summarise_fit(task, runs)
                fit[task]["repeats"] = args.repeats
                fit[task]["load"] = load.summary()
                doc = json.loads(OUT.read_text()) if OUT.exists() else {}
                save("fit", {**doc.get("fit", {}), task: fit[task]})
                s = fit[task]
                print(f"  {task}: speedup {s.get('speedup')}, loss max rel diff {s['loss_max_rel_diff']}", flush=True)
        if "decode" in sections:
            reps = [r for r in (_run_child(["--task", "decode"]) for _ in range(args.repeats)) if r]
            save(
                "decode",
                {
                    "n_files": reps[0]["n"] if reps else None,
                    "repeats": len(reps),
                    "runs": reps,
                    **{
                        k: med([r[k] for r in reps])
                        for k in ("bare_cold", "bare_warm", "pipeline_cold", "pipeline_warm")
                    },
                },
            )
            print(f"  decode: {result['decode']}", flush=True)
        if "trial10" in sections:
            out = _machine.RESULTS / "throughput" / "trial10_overhead.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve().parent / "overhead_bench.py"),
                "--epochs",
                "10",
                "--trials",
                "1",
                "--repeats",
                str(args.repeats),
                "--modes",
                "sqlite,sqlite-orig",
                "--orig-ref",
                args.base,
                "--out",
                str(out),
            ]
            env = _machine.child_env()
            subprocess.run(
                ["taskset", "-c", str(min(os.sched_getaffinity(0))), *cmd], env=env, cwd=_machine.ROOT, check=False
            )
            if out.exists():
                o = json.loads(out.read_text())["summary"]
                save(
                    "trial10",
                    {
                        "base": args.base,
                        "new_s": o["sqlite"]["iteration_s"],
                        "base_s": o["sqlite-orig"]["iteration_s"],
                        "ratio": o["sqlite"]["iteration_s"] / o["sqlite-orig"]["iteration_s"],
                        "new_later_epoch_s": o["sqlite"]["epoch_later_s"],
                        "base_later_epoch_s": o["sqlite-orig"]["epoch_later_s"],
                        "new_first_epoch_s": o["sqlite"]["epoch_first_s"],
                        "base_first_epoch_s": o["sqlite-orig"]["epoch_first_s"],
                        "file": str(out.relative_to(_machine.ROOT)),
                        "repeats": args.repeats,
                    },
                )
                print(f"  trial10: {result['trial10']}", flush=True)
    print(f"wrote {OUT}\n")
    print(table(json.loads(OUT.read_text())))
    return 0


def _f(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _load_text(load: dict[str, Any] | None) -> str:
    if not load:
        return "load not recorded"
    return f"load mean {load.get('load1_mean')} (min {load.get('load1_min')}, max {load.get('load1_max')})"


def _vdiff(s: dict[str, Any]) -> str:
    vd = [v for v in s.get("val_accuracy_diff") or [] if v == v]  # not NaN
    return f"{statistics.median(vd):+.3f}" if vd else "-"


def table(r: dict[str, Any]) -> str:
    m, commands, loads = r.get("machine", {}), r.get("commands", {}), r.get("loads", {})
    fm = (r.get("machines") or {}).get("fit") or m
    lines = [
        "## Training throughput",
        "",
        "Produced by `benchmarks/throughput_bench.py` (its docstring defines every column; the levers are in "
        "`objectives/_fit.py`). Regenerate: `.venv/bin/python benchmarks/throughput_bench.py --repeats 3 && "
        f".venv/bin/python benchmarks/make_report.py`. Machine (fit rows): {fm.get('cpu_model')}, {fm.get('nproc')} cores, "
        f"AMX-BF16 {'yes' if fm.get('amx_bf16') else 'no or not recorded'}; "
        f"every process pinned to one core; measured {fm.get('date')}. Training losses of the two paths per "
        f"epoch: equal within a relative {r.get('loss_rtol')} in float32, {BF16_LOSS_RTOL} where hpsearch trains in "
        "mixed_bfloat16 (same seed, same shuffle); val acc diff: the last epoch's validation accuracy, hpsearch "
        "minus plain, median of the runs.",
        "",
        "`python benchmarks/throughput_bench.py --sections fit --tasks T`, the two paths interleaved; "
        "medians of the runs; load per task: "
        + "; ".join(f"{t} {_load_text(v.get('load'))}" for t, v in (r.get("fit") or {}).items())
        + ":",
        "",
        "| task (epochs) | runs | path | precision | steps/execution | val batch | first epoch s | later epoch s | "
        "tracing s | training images/s | speed-up | max loss rel. diff | val acc diff |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, s in (r.get("fit") or {}).items():
        for mode in ("plain", "hpsearch"):
            d = s.get(mode)
            if not d:
                continue
            info = d.get("info") or {}
            lines.append(
                f"| {task} ({s['epochs']}) | {s.get('repeats', '-')} | {mode} | {info.get('precision', 'float32')} | "
                f"{info.get('steps_per_execution', '-')} | "
                f"{info.get('validation_batch_size', '-')} | {_f(d['first_epoch_s'])} | {_f(d['later_epoch_s'])} | "
                f"{_f(d['tracing_s'])} | {_f(d['images_per_s'], 0)} | "
                + (
                    f"**{s['speedup']:.2f}x** | {s['loss_max_rel_diff']:.1e} | {_vdiff(s)} |"
                    if mode == "hpsearch"
                    else "- | - | - |"
                )
            )
    d = r.get("decode")
    if d:
        lines += [
            "",
            f"Image-folder input (cats-and-dogs-small train, {d['n_files']} files, 160 px, one core; "
            f"`{commands.get('decode')}`, medians of {d.get('repeats')} processes, {_load_text(loads.get('decode'))}): "
            "images/s",
            "",
            "| | cold | warm |",
            "|---|---:|---:|",
            f"| bare `decode_jpeg` + `resize` loop | {_f(d['bare_cold'], 0)} | {_f(d['bare_warm'], 0)} |",
            f"| hpsearch pipeline (`ImageFolderData.inputs`) | {_f(d['pipeline_cold'], 0)} | "
            f"{_f(d['pipeline_warm'], 0)} |",
            f"| pipeline / bare | {d['pipeline_cold'] / d['bare_cold']:.2f} | "
            f"{d['pipeline_warm'] / d['bare_warm']:.2f} |",
        ]
    t = r.get("trial10")
    if t:
        lines += [
            "",
            f"Whole 10-epoch mnist_mlp baseline trial (build + tracing + epochs + service) through the worker on "
            f"SQLite, {t.get('repeats')} processes per side, interleaved ({_load_text(loads.get('trial10'))}; "
            f"`{t['file']}`): "
            f"{t['new_s']:.2f} s with these levers vs {t['base_s']:.2f} s at {t['base']} = "
            f"**{t['ratio']:.2f}x** (first epoch {t['new_first_epoch_s']:.2f} vs {t['base_first_epoch_s']:.2f} s, "
            f"later epochs {t['new_later_epoch_s']:.2f} vs {t['base_later_epoch_s']:.2f} s).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

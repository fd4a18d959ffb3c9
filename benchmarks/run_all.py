#!/usr/bin/env python
"""Measure everything BENCHMARKS.md reports, then regenerate it: the one command.

    .venv/bin/python benchmarks/run_all.py                      # the issue's full protocol
    .venv/bin/python benchmarks/run_all.py --mnist-budget 120 --cifar-budget 180 --cifar-seeds 0

Steps, sequential (the benchmarks time wall-clock seconds; never run two at once):

1. ``search_bench.py --task mnist_mlp --budget MNIST_BUDGET --seeds SEEDS`` (5 methods);
2. ``search_bench.py --task cifar10_cnn --budget CIFAR_BUDGET --seeds CIFAR_SEEDS`` (5 methods);
3. ``overhead_bench.py --epochs 3`` and ``--epochs 10`` (bare fit vs hpsearch trial on SQLite and
   PostgreSQL);
4. ``feature_cache_bench.py --epochs 3`` and ``--epochs 10`` (cats_vs_dogs trial with and without
   the frozen-backbone cache);
5. ``make_report.py`` -> BENCHMARKS.md.

Full protocol (default): MNIST 420 s and CIFAR-10 900 s per run, seeds 0,1,2 — 5 x 3 x (420 + 900) s
plus start-up, about 6 hours on 2 cores; ``--lanes 2`` runs two search runs at once, each pinned
to one core (about half the wall time; every method then gets one core). ``--skip mnist,cifar,overhead,cache`` leaves steps out (their
existing results stay and are reported); ``--resume`` skips search runs whose result file exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys

HERE = Path(__file__).resolve().parent


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mnist-budget", type=float, default=420.0, help="seconds per MNIST run (protocol: 420)")
    ap.add_argument("--cifar-budget", type=float, default=900.0, help="seconds per CIFAR-10 run (protocol: 900)")
    ap.add_argument("--seeds", default="0,1,2", help="MNIST seeds")
    ap.add_argument("--cifar-seeds", default="0,1,2")
    ap.add_argument("--methods", default=None, help="search methods (default: search_bench.py's five)")
    ap.add_argument("--overhead-repeats", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated: mnist, cifar, overhead, cache")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--lanes", type=int, default=1, help="search runs at once, each on its own share of the CPUs")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    py = sys.executable
    extra = (
        (["--methods", args.methods] if args.methods else [])
        + (["--resume"] if args.resume else [])
        + ["--lanes", str(args.lanes)]
    )
    if "mnist" not in skip:
        run(
            [
                py,
                str(HERE / "search_bench.py"),
                "--task",
                "mnist_mlp",
                "--budget",
                f"{args.mnist_budget:g}",
                "--seeds",
                args.seeds,
                *extra,
            ]
        )
    if "cifar" not in skip:
        run(
            [
                py,
                str(HERE / "search_bench.py"),
                "--task",
                "cifar10_cnn",
                "--budget",
                f"{args.cifar_budget:g}",
                "--seeds",
                args.cifar_seeds,
                *extra,
            ]
        )
    if "overhead" not in skip:
        for epochs in ("3", "10"):
            run([py, str(HERE / "overhead_bench.py"), "--epochs", epochs, "--repeats", str(args.overhead_repeats)])
    if "cache" not in skip:
        for epochs in ("3", "10"):
            run([py, str(HERE / "feature_cache_bench.py"), "--epochs", epochs])
    run([py, str(HERE / "make_report.py")])
    return 0


if __name__ == "__main__":
    sys.exit(main())

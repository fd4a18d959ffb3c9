"""How well a task's early epochs rank its configurations: the evidence behind ``prune_after_epochs``.

A pruner that compares trials after epoch ``e`` keeps the good ones only if validation accuracy
after epoch ``e`` ranks configurations as their best accuracy does. This reads every fully trained
curve already recorded for a task by a method that never prunes (the wall-clock benchmarks'
per-epoch events in ``results/search*/<task>/`` of plain Optuna TPE and random search: a pruned
method's full curves are the ones that looked good early, a biased sample; at CIFAR-10's budget TPE
never leaves its random start-up trials) and the replay table ``results/replay/<task>.jsonl`` where
there is one (random configurations), and prints, per epoch:

- Spearman's rank correlation of accuracy after that epoch with the curve's best;
- of the curves in the top quarter by best (``--top``), how many rank in the top quarter after that
  epoch (what ASHA keeping a quarter would let through) and in the top third (version 1's factor 3).

    python benchmarks/curve_ranks.py --task cifar10_cnn
    python benchmarks/curve_ranks.py --task mnist_mlp --json benchmarks/results/curve_ranks_mnist_mlp.json

No training: it reads result files only (seconds).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
import json
from pathlib import Path
import sys
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

UNPRUNED = ("tpe", "random")  # search_bench.py's methods without a pruner


def full_curves(task: str) -> tuple[list[list[float]], list[str]]:
    """Every fully trained curve of ``task`` that no pruner selected, and where each came from."""
    curves: list[list[float]] = []
    sources: list[str] = []
    # The same method and seed sample the same configurations and train them identically (seeded),
    # so a rerun on another day repeats its curves: each (method, seed, trial number) counts once.
    seen: set[tuple[str, int, Any]] = set()
    for path in sorted(_machine.RESULTS.glob(f"search*/{task}/budget*/*.json")):
        r = json.loads(path.read_text())
        if r.get("kind") != "search" or r.get("method") not in UNPRUNED:
            continue
        by_trial: dict[Any, dict[int, float]] = defaultdict(dict)
        for _t, trial, epoch, value in r["epochs"]:
            if value is not None:
                by_trial[trial][epoch] = value
        n = 0
        for trial, c in by_trial.items():
            key = (r["method"], r["seed"], trial)
            if len(c) == r["max_epochs"] and key not in seen:
                seen.add(key)
                curves.append([c[k] for k in sorted(c)])
                n += 1
        if n:
            sources.append(f"{path.relative_to(_machine.ROOT)} ({n})")
    table = _machine.RESULTS / "replay" / f"{task}.jsonl"
    if table.exists():
        rows = [json.loads(line) for line in table.read_text().splitlines() if line.strip()]
        kept = [r["val_accuracy"] for r in rows if not r.get("error") and len(r["val_accuracy"]) == r["max_epochs"]]
        curves += kept
        sources.append(f"{table.relative_to(_machine.ROOT)} ({len(kept)})")
    return curves, sources


def ranks(curves: list[list[float]], epochs: list[int], top: float = 0.25) -> dict[str, Any]:
    from scipy.stats import spearmanr

    length = min(len(c) for c in curves)
    c = np.array([x[:length] for x in curves])
    best = c.max(axis=1)
    good = np.where(best >= np.quantile(best, 1 - top))[0]
    out: dict[str, Any] = {"curves": len(c), "epochs": length, "top": top, "n_top": len(good), "by_epoch": {}}
    for e in epochs:
        if e > length:
            continue
        col = c[:, e - 1]
        pct = np.array([(col < col[i]).mean() for i in good])  # share of curves below, after epoch e
        out["by_epoch"][e] = {
            "spearman": round(float(spearmanr(col, best).statistic), 3),
            "top_in_top_quarter": int((pct >= 0.75).sum()),
            "top_in_top_third": int((pct >= 2 / 3).sum()),
            "top_percentiles": [round(float(p), 2) for p in sorted(pct)],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="cifar10_cnn")
    ap.add_argument("--epochs", default="1,2,3,4,5,6,8,10")
    ap.add_argument("--top", type=float, default=0.25, help="the good curves: this top fraction by best")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    curves, sources = full_curves(args.task)
    if len(curves) < 10:
        raise SystemExit(f"only {len(curves)} full curves of {args.task} on record; run search_bench.py first")
    out = ranks(curves, [int(e) for e in args.epochs.split(",")], args.top)
    out.update(task=args.task, sources=sources, command=" ".join(["python", *sys.argv]))
    print(
        f"{args.task}: {out['curves']} distinct full {out['epochs']}-epoch curves; top {args.top:.0%} by best: {out['n_top']}"
    )
    print("from " + "; ".join(sources))
    print("epoch  spearman(acc, best)  good ones in top quarter  in top third")
    for e, d in out["by_epoch"].items():
        q, t, n = d["top_in_top_quarter"], d["top_in_top_third"], out["n_top"]
        print(f"{e:>5}  {d['spearman']:>19.2f}  {q:>13}/{n:<11} {t:>5}/{n}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

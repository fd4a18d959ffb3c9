"""Frozen-backbone feature cache: trial time with and without it, and the validation accuracy gap.

    python benchmarks/feature_cache_bench.py [--data-dir ../shared/datasets/cats-and-dogs-small]
        [--image-size 160] [--epochs 3] [--weights none] [--repeats 2]

Runs the same frozen, non-augmented cats_vs_dogs trial (the real TrialRunner) end to end
(option feature_cache=off) and on cached features: cold (features computed in that trial) and
warm (features reused by the next trial). Writes benchmarks/results/feature_cache_<epochs>ep.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PARAMS = {
    "augment": False,
    "pooling": "flatten",
    "dense_units": 64,
    "dropout": 0.0,
    "learning_rate": 1e-3,
    "batch_size": 32,
    "fine_tune": False,
}


def trial(task, data, epochs):  # type: ignore[no-untyped-def]
    import optuna

    from hpsearch._objective import TrialRunner

    t = optuna.trial.FixedTrial(PARAMS)
    t0 = time.perf_counter()
    value = TrialRunner(task, data, max_epochs=epochs, seed=0)(t)
    seconds = time.perf_counter() - t0
    trial.val_loss.append(t.user_attrs["history"]["val_loss"])  # per-epoch, to compare the two paths
    return seconds, value, bool(t.user_attrs.get("feature_cache"))


trial.val_loss = []  # type: ignore[attr-defined]


def pair_diff(val_loss: list[list[float]]) -> float:
    """Largest per-epoch |val_loss| difference between the end-to-end and the cached run of each repeat."""
    pairs = [(val_loss[i], val_loss[i + 1]) for i in range(0, len(val_loss) - 1, 2)]
    return max(abs(a - b) for e2e, cached in pairs for a, b in zip(e2e, cached))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets" / "cats-and-dogs-small"))
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--weights", default="none")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ["HPSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="hpsearch-cache-bench-")
    from hpsearch.objectives import get_task

    task = get_task("cats_vs_dogs")
    opts = {"weights": args.weights, "image_size": args.image_size}
    e2e_data = task.load_data(args.data_dir, seed=0, options={**opts, "feature_cache": "off"})
    cache_data = task.load_data(args.data_dir, seed=0, options=opts)
    rows = {"end_to_end": [], "cached_cold": [], "cached_warm": []}
    vals = {"end_to_end": [], "cached": []}
    for r in range(args.repeats):
        s, v, used = trial(task, e2e_data, args.epochs)
        assert not used
        rows["end_to_end"].append(s)
        vals["end_to_end"].append(v)
        s, v, used = trial(task, cache_data, args.epochs)
        assert used
        rows["cached_cold" if r == 0 else "cached_warm"].append(s)
        vals["cached"].append(v)
    s, v, _ = trial(task, cache_data, args.epochs)
    rows["cached_warm"].append(s)
    vals["cached"].append(v)
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    out = {
        "data": e2e_data.description,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "weights": args.weights,
        "seconds": rows,
        "median_seconds": med,
        "speedup_warm": med["end_to_end"] / med["cached_warm"],
        "speedup_cold": med["end_to_end"] / med["cached_cold"],
        "val_accuracy": vals,
        "val_accuracy_gap_points": 100 * abs(statistics.median(vals["end_to_end"]) - statistics.median(vals["cached"])),
        # Same seed, same head: were the cached features the backbone's, the per-epoch validation
        # losses agree up to float reordering. This is checked even when accuracy sits at chance
        # (weights=none), where equal accuracies alone would prove little.
        # Runs in order: end-to-end, cached, end-to-end, cached, ..., cached (warm): compared by repeat.
        "val_loss_per_epoch": trial.val_loss,
        "val_loss_max_abs_diff": pair_diff(trial.val_loss),
        "load": os.getloadavg(),
    }
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / f"feature_cache_{args.epochs}ep.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""How many distinct table rows each method visits on the nearest-neighbour lookup (a diagnostic).

    python benchmarks/distinct_rows.py --task mnist_cnn --budget 1200 --seeds 10

On a sparse table a model-based sampler's concentrated suggestions collapse onto the same nearest
row, while random suggestions (drawn like the table's own rows) spread over many: the lookup then
favours random search by construction. This counts it, through ``replay_bench.simulate`` itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import replay_bench as rb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="mnist_cnn")
    ap.add_argument("--budget", type=float, default=1200.0)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-offset", type=int, default=100)
    ap.add_argument("--methods", default="random,tpe,tpe-hyperband,hpsearch-nobaseline")
    a = ap.parse_args()
    table = rb.load_table(a.task, 10, surrogate=False)
    seen: list[int] = []
    lookup = table.lookup

    def counting(params: dict[str, Any]) -> int:
        row = lookup(params)
        seen.append(row)
        return row

    table.lookup = counting  # type: ignore[method-assign]
    print(
        f"{a.task}: {len(table.rows)} rows, budget {a.budget:.0f} s, seeds {a.seed_offset}-{a.seed_offset + a.seeds - 1}"
    )
    for m in a.methods.split(","):
        trials, distinct = [], []
        for seed in range(a.seed_offset, a.seed_offset + a.seeds):
            seen.clear()
            rb.simulate(rb.methods()[m], table, seed=seed, budget=a.budget, workers=1)
            trials.append(len(seen))
            distinct.append(len(set(seen)))
        print(
            f"{m:22s} trials (median) {statistics.median(trials):5.1f}   distinct rows {statistics.median(distinct):5.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

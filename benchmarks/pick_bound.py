#!/usr/bin/env python
"""How much the pick rule costs: one search, scored by several picks (stop 32).

    REPLAY_PICK_VARIANTS=1 python benchmarks/replay_bench.py --task mnist_cnn --surrogate --seeds 100 \\
        --seed-offset 100 --budget 1200 --workers 4 --methods hpsearch-nobaseline --lanes 2 --out RUN.json
    python benchmarks/pick_bound.py RUN.json benchmarks/results/replay/mnist_cnn_budget1200_surrogate_w4.json

The pick never steers the search, so one replayed search can be scored by several pick rules, paired
by seed: ``incumbent`` (``study.best_trial``, the product's pick), ``oracle`` (the complete trial whose
configuration is worth most: a bound no rule can pass), and, with ``REPLAY_PICK_VARIANTS=1``, the
model picks of ``search/_model_pick.py`` (``gp-iso``: one length scale, after every completion;
``gp-iso-top``: the same on the better half of the complete trials; ``gp-ard-final``: one length scale
per input, at the budget only, its fit being too slow to run after every completion). Goal 1 and goal 2
are computed as ``replay_bench.summarize`` does, against the peers' runs of the reference file (the same
seeds and simulation).
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

import numpy as np
from scipy.stats import mannwhitneyu
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_bench import time_to  # noqa: E402

KEYS = ("incumbent", "oracle", "gp-iso", "gp-iso-top", "gp-ard-final")


def main() -> None:
    run_path, ref_path = sys.argv[1], sys.argv[2]
    run, ref = json.loads(Path(run_path).read_text()), json.loads(Path(ref_path).read_text())
    for w, methods in run["runs"].items():
        peers = {m: rs for m, rs in ref["runs"][w].items() if not m.startswith(("hpsearch", "c:"))}

        def final(rs: list[dict], key: str) -> np.ndarray:
            return np.array([r[key][-1][1] if r.get(key) else 0.0 for r in rs])

        pf = {m: final(rs, "incumbent") for m, rs in peers.items()}
        best = max(pf, key=lambda m: (np.median(pf[m]), pf[m].mean()))
        target = float(np.median(pf[best]))
        tp = np.array([time_to(r["incumbent"], target) for r in peers[best]])
        print(f"workers {w}: best peer {best}, target {target:.4f}, its median time {np.median(tp):.1f} s")
        for m, rs in methods.items():
            inc = final(rs, "incumbent")
            for key in (k for k in KEYS if k in rs[0]):
                f = final(rs, key)
                th = np.array([time_to(r[key], target) for r in rs])
                g1 = mannwhitneyu(th, 0.5 * tp, alternative="less").pvalue
                share = (th[:, None] < 0.5 * tp[None, :]).mean() + 0.5 * (th[:, None] == 0.5 * tp[None, :]).mean()
                g2 = max(mannwhitneyu(f, v, alternative="greater").pvalue for v in pf.values())
                paired = wilcoxon(f, inc, alternative="greater").pvalue if np.any(f != inc) else float("nan")
                timing = (
                    f"time {np.median(th):.1f} s ({np.median(th) / np.median(tp):.2f}x), reached {np.isfinite(th).mean():.2f}, "
                    f"share {share:.2f}, goal-1 p {g1:.3g}"
                    if key != "gp-ard-final"
                    else "time not measured"
                )
                print(
                    f"  {m:<20} {key:<13} worth median {np.median(f):.4f} mean {f.mean():.4f} "
                    f"(paired mean {np.mean(f - inc):+.4f}, Wilcoxon p {paired:.3g}); {timing}; goal-2 p {g2:.3g}"
                )


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""A candidate's replay runs scored against a reference file's, paired by seed (stop 33).

    python benchmarks/replay_bench.py --task mnist_cnn --surrogate --seeds 100 --seed-offset 100 \\
        --budget 1200 --workers 4 --methods c:v4-live --lanes 2 --out RUN.json
    python benchmarks/compare_candidate.py RUN.json benchmarks/results/replay/mnist_cnn_budget1200_surrogate_w4.json

The reference file holds the peers and the default (``hpsearch-nobaseline``, ``hpsearch``) over the
same seeds and simulation, so a candidate needs no rerun of them. Each candidate is scored by
``replay_bench.summarize`` exactly as the report scores the default (the pick's worth, ``expected``),
with the candidate as the focus, and compared with the default of its kind (``+baselines``:
``hpsearch``) paired by seed (Wilcoxon signed-rank on the worth at the budget). A live-recheck run's
other pick rules (``incumbent_eager``: settings version 5's; ``incumbent_v6``: version 6's) are
scored as methods of their own, ``NAME[eager]`` and ``NAME[v6]``.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

import numpy as np
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_bench import summarize  # noqa: E402


def _rule(r: dict, key: str) -> dict:
    return {**r, "incumbent": r[key], "expected": r[key][-1][1] if r[key] else None}


def main() -> None:
    run, ref = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    for w, methods in run["runs"].items():
        refs = ref["runs"][w]
        summary = ref["summary"][w]
        baseline_worth = summary.get("with_baselines_expected", {}).get("baseline_value")
        peers = {m: rs for m, rs in refs.items() if not m.startswith(("hpsearch", "c:"))}
        for m, rs in sorted(methods.items()):
            for rule in ("eager", "v6"):  # the live recheck's other pick rules, each scored as a method
                if f"incumbent_{rule}" in rs[0]:
                    methods = {**methods, f"{m}[{rule}]": [_rule(r, f"incumbent_{rule}") for r in rs]}
        for m, rs in sorted(methods.items()):
            with_b = m.split("[")[0].endswith("+baselines")
            default = "hpsearch" if with_b else "hpsearch-nobaseline"
            by_seed = {r["seed"]: r for r in refs[default]}
            rs = sorted(rs, key=lambda r: r["seed"])
            pairs = [(r["expected"] or 0.0, by_seed[r["seed"]]["expected"] or 0.0) for r in rs if r["seed"] in by_seed]
            a, b = np.array(pairs).T
            paired = wilcoxon(a, b).pvalue if np.any(a != b) else float("nan")
            for focus, runs in ((m, rs), (default, refs[default])):
                s = summarize(
                    {**peers, focus: runs},
                    budget=run["budget"],
                    baseline_value=baseline_worth if with_b else None,
                    focus=focus,
                    score="expected",
                )
                f = s["methods"][focus]
                beats = f", beats baseline worth {s['beats_baseline_fraction']:.2f}" if with_b else ""
                rechecks = np.median([r.get("rechecks", 0) for r in runs])
                print(
                    f"w{w} {focus:<26} worth {f['best_median']:.4f} (mean {f['best_mean']:.4f}); "
                    f"goal 1: {s['time_ratio'] if s['time_ratio'] is None else round(s['time_ratio'], 2)}x, "
                    f"share {s['goal1_share']:.2f}, reached {f['reached']:.2f}, p {s['goal1_p']:.3g}; "
                    f"goal 2 p {max(s['goal2_p'].values()):.3g} ({'met' if s['goal2_met'] else 'not met'})"
                    f"{beats}; rechecks {rechecks:.0f}"
                )
            print(f"   paired vs {default}: mean {np.mean(a - b):+.4f}, two-sided Wilcoxon p {paired:.3g}, n {len(a)}")


if __name__ == "__main__":
    main()

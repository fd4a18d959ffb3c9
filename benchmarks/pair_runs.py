#!/usr/bin/env python
"""Two replay runs' picks paired by seed (stop 38): what settings version 6's pick is worth in each.

    python benchmarks/pair_runs.py A.json:METHOD B.json:METHOD [...more pairs]

A run that recorded ``incumbent_v6`` is read by it; an older live-recheck run (stop 34, before
version 6) by ``pick_rules.baseline_or_lead`` over its recorded leads (the same rule); a run without
live recheck (``hpsearch``, ``hpsearch-nobaseline``: version 4) by its ``incumbent``. Prints the mean
and median worth at the budget of each, their paired difference (B - A) and a two-sided Wilcoxon
signed-rank p, over the seeds both hold. Pairs made on one CPU id (``machine.cpu_id``) are the same
searches up to where the methods differ; across CPU ids they are the same seeds only (NOTES stop 34).
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pick_rules import baseline_or_lead  # noqa: E402
from pick_rules import trajectory  # noqa: E402

from hpsearch.objectives import get_task  # noqa: E402


def worths(spec: str) -> tuple[dict[int, float], str]:
    path, method = spec.split(".json:", 1)  # a method's name may hold ':' (c:v4-live)
    path += ".json"
    doc = json.loads(Path(path).read_text())
    (w, methods), *_ = doc["runs"].items()
    rs: list[dict[str, Any]] = methods[method]
    window = int((doc.get("hpsearch_settings") or {}).get("value_window") or 1)
    nb = len(get_task(doc["task"]).baselines) if method.endswith("+baselines") else 0
    out: dict[int, float] = {}
    for r in rs:
        if "incumbent_v6" in r:
            traj = r["incumbent_v6"]
        elif "leads" in r:
            traj = trajectory(r, baseline_or_lead, window, nb)
        else:
            traj = r["incumbent"]
        out[int(r["seed"])] = float(traj[-1][1]) if traj else 0.0
    cpu = (doc.get("machine") or {}).get("cpu_id", "?")
    return out, f"{Path(path).name}:{method} (w{w}, cpu {cpu})"


def main() -> None:
    specs = sys.argv[1:]
    if len(specs) < 2 or len(specs) % 2:
        raise SystemExit("usage: pair_runs.py A.json:METHOD B.json:METHOD [A2:M B2:M ...]")
    for i in range(0, len(specs), 2):
        (a, la), (b, lb) = worths(specs[i]), worths(specs[i + 1])
        seeds = sorted(set(a) & set(b))
        x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
        d = y - x
        p = wilcoxon(y, x).pvalue if np.any(d != 0) else float("nan")
        print(f"A {la}: mean {x.mean():.4f}, median {np.median(x):.4f}")
        print(f"B {lb}: mean {y.mean():.4f}, median {np.median(y):.4f}")
        print(
            f"  B - A {d.mean():+.4f} (two-sided Wilcoxon p {p:.3g}); B better in {int((d > 0).sum())}, "
            f"worse in {int((d < 0).sum())}, equal in {int((d == 0).sum())} of {len(seeds)} seeds"
        )


if __name__ == "__main__":
    main()

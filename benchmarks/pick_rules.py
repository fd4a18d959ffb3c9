#!/usr/bin/env python
"""Pick rules over a live-recheck replay's leads, scored offline (stop 34).

    python benchmarks/pick_rules.py RUN.json [REF.json]

A live-recheck run (``Method.live_recheck``) records every lead: when it led, what its configuration
is worth at each epoch (the table's mean curve), its measured curves (its own first) and when each
re-measurement ended. The pick never steers the search, so any rule that picks among the leads can
be scored over the very searches the run made, paired by seed with the rules the run recorded itself:

- ``plain``: the last lead (version 4's pick, ``best_trial``);
- ``eager``: the product's rule from settings version 5 (checked against the run's ``incumbent_eager``);
- ``eager-last2``: ``eager`` among the last two re-measured leads only;
- ``min``: ``eager`` with each re-measured configuration read by its worse measurement, not their mean
  (a lower bound of two; it ranks down a configuration whose two runs disagree);
- ``recheck-only``: ``eager`` with each configuration read by its re-measurement alone (unselected);
- ``baseline-or-lead``: ``eager`` between the last lead and the re-measured baselines only (suggested
  by the figures of ``margin``'s first scoring, after they were seen);
- ``margin``: the last lead unless an earlier re-measured one beats it by more than the noise the runs'
  own pairs show (``margin``'s doc; written before it was scored, on mnist_mlp at 1 worker, then
  scored at 4 workers as a test).

Each rule's trajectory is scored with ``replay_bench.summarize`` against REF's peers (goal 1, goal
2), as ``compare_candidate.py`` scores a method, and against ``plain`` paired by seed (Wilcoxon).
"""

from __future__ import annotations

from collections.abc import Callable
import json
from pathlib import Path
import sys
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_bench import smoothed_best  # noqa: E402
from replay_bench import summarize  # noqa: E402

from hpsearch.objectives import get_task  # noqa: E402

Group = tuple[int, dict[str, Any], list[list[float]]]  # origin, lead record, curves ended by now


def _mean(curves: list[list[float]]) -> list[float]:
    n = min(len(c) for c in curves)
    return [float(np.mean([c[i] for c in curves])) for i in range(n)]


def _read(curves: list[list[float]], how: str, window: int) -> tuple[float, int]:
    if how == "mean":
        return smoothed_best(_mean(curves), window)
    if how == "min":
        v = min(smoothed_best(c, window)[0] for c in curves)
        return v, smoothed_best(_mean(curves), window)[1]
    return smoothed_best(curves[1], window)[0], smoothed_best(_mean(curves), window)[1]  # recheck-only


def rule(how: str, last: int | None = None) -> Callable[[list[Group], int, int], tuple[int, int]]:
    """The eager rule's shape: the last lead until its own re-measurement ends, then the best of the
    re-measured leads (the last ``last`` of them) read ``how``. Returns (origin, epoch index)."""

    def pick(groups: list[Group], window: int, baselines: int) -> tuple[int, int]:
        origin, _, curves = groups[-1]
        if len(curves) < 2:
            return origin, smoothed_best(curves[0], window)[1]
        done = [g for g in groups if len(g[2]) >= 2][-last if last else 0 :]
        scored = [(*_read(c, how, window), -o, o) for o, _, c in done]
        v, e, _, o = max(scored, key=lambda x: (x[0], x[2]))
        return o, e

    return pick


def margin(groups: list[Group], window: int, baselines: int) -> tuple[int, int]:
    """``eager``, but an earlier re-measured lead replaces the last one only where its mean beats the
    last lead's by more than one sd of a difference of two such means, estimated from the runs'
    own disagreement: a pair's two measurements differ with variance 2 s^2 (plus the first run's
    selection bias, which inflates the estimate: a cautious threshold), and two means of two differ
    with variance s^2. Before three pairs there is no estimate: the last lead stands."""
    origin, _, curves = groups[-1]
    if len(curves) < 2:
        return origin, smoothed_best(curves[0], window)[1]
    done = [g for g in groups if len(g[2]) >= 2]
    own = _read(curves, "mean", window)
    if len(done) < 3:
        return origin, own[1]
    d = [smoothed_best(c[0], window)[0] - smoothed_best(c[1], window)[0] for _, _, c in done]
    s = float(np.sqrt(np.mean(np.square(d)) / 2))
    best = max(((*_read(c, "mean", window), o) for o, _, c in done), key=lambda x: x[0])
    if best[0] - own[0] > s:
        return best[2], best[1]
    return origin, own[1]


def baseline_or_lead(groups: list[Group], window: int, baselines: int) -> tuple[int, int]:
    """``eager`` between the last lead and the re-measured baselines only (trials 0 .. baselines - 1,
    enqueued first): a baseline is prior knowledge, the search's earlier leads are near-equal draws.
    Suggested by the mnist_mlp 1-worker figures after they were seen (stop 34)."""
    origin, _, curves = groups[-1]
    if len(curves) < 2:
        return origin, smoothed_best(curves[0], window)[1]
    pool = [g for g in groups if len(g[2]) >= 2 and (g[0] < baselines or g[0] == origin)]
    v, e, _, o = max(((*_read(c, "mean", window), -o, o) for o, _, c in pool), key=lambda x: (x[0], x[2]))
    return o, e


def plain(groups: list[Group], window: int, baselines: int) -> tuple[int, int]:
    origin, _, curves = groups[-1]
    return origin, smoothed_best(curves[0], window)[1]


RULES: dict[str, Callable[[list[Group], int, int], tuple[int, int]]] = {
    "plain": plain,
    "eager": rule("mean"),
    "eager-last2": rule("mean", last=2),
    "min": rule("min"),
    "recheck-only": rule("recheck-only"),
    "margin": margin,
    "baseline-or-lead": baseline_or_lead,
}


def trajectory(
    run: dict[str, Any], pick: Callable[[list[Group], int, int], tuple[int, int]], window: int, baselines: int = 0
) -> list:
    leads = {int(n): v for n, v in run["leads"].items()}
    times = sorted({t for v in leads.values() for t in v["ends"]})
    traj: list[tuple[float, float]] = []
    last: tuple[int, int] | None = None
    for t in times:
        groups = [
            (n, v, [c for c, end in zip(v["curves"], v["ends"]) if end <= t])
            for n, v in sorted(leads.items(), key=lambda kv: kv[1]["t"])
            if v["t"] <= t
        ]
        choice = pick(groups, window, baselines)
        if choice != last:
            last = choice
            traj.append((t, leads[choice[0]]["worth"][choice[1]]))
    return traj


def main() -> None:
    run = json.loads(Path(sys.argv[1]).read_text())
    ref = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else None
    window = int((run.get("hpsearch_settings") or {}).get("value_window") or 1)
    for w, methods in run["runs"].items():
        for m, rs in sorted(methods.items()):
            if "leads" not in rs[0]:
                continue
            # The replay enqueues the task's baselines as its first trials (``simulate``).
            nb = len(get_task(run["task"]).baselines) if m.endswith("+baselines") else 0
            scored: dict[str, list[dict[str, Any]]] = {}
            for name, pick in RULES.items():
                scored[name] = []
                for r in rs:
                    traj = trajectory(r, pick, window, nb)
                    scored[name].append({**r, "incumbent": traj, "expected": traj[-1][1] if traj else None})
            check = [a["expected"] == r["incumbent_eager"][-1][1] for a, r in zip(scored["eager"], rs)]
            print(f"w{w} {m}: eager rule reproduces the run's own in {sum(check)} of {len(rs)} runs")
            base = np.array([r["expected"] or 0.0 for r in scored["plain"]])
            for name, runs in scored.items():
                a = np.array([r["expected"] or 0.0 for r in runs])
                p = wilcoxon(a, base).pvalue if np.any(a != base) else float("nan")
                line = f"  {name:<13} worth {np.median(a):.4f} (mean {a.mean():.4f}); vs plain {np.mean(a - base):+.4f} (p {p:.3g})"
                if ref is not None:
                    peers = {k: v for k, v in ref["runs"][w].items() if not k.startswith(("hpsearch", "c:"))}
                    with_b = m.endswith("+baselines")
                    bv = ref["summary"][w].get("with_baselines_expected", {}).get("baseline_value") if with_b else None
                    s = summarize(
                        {**peers, name: runs}, budget=run["budget"], baseline_value=bv, focus=name, score="expected"
                    )
                    ratio = s["time_ratio"]
                    line += (
                        f"; goal 1 {'-' if ratio is None else f'{ratio:.2f}'}x p {s['goal1_p']:.3g}, "
                        f"goal 2 p {max(s['goal2_p'].values()):.3g}"
                    )
                    if with_b:
                        line += f", beats baseline {s['beats_baseline_fraction']:.2f}"
                print(line)


if __name__ == "__main__":
    main()

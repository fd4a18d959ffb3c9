#!/usr/bin/env python
"""Search strategies replayed on recorded learning curves: hundreds of seeds in minutes.

    python benchmarks/replay_bench.py --all --lanes 2     # every run BENCHMARKS.md reports
    python benchmarks/replay_bench.py --surrogate --seeds 100 --budget 420 --workers 1,4 --methods tpe,random

The table (``benchmarks/results/replay/<task>.jsonl``, built by ``replay_table.py``) holds real
learning curves: configurations of the task's own search space, each trained once on the shared
data through hpsearch's trial path, with per-epoch validation accuracy and per-epoch seconds.

Every strategy runs through the real Optuna machinery (its samplers, pruners, ``study.ask`` /
``trial.report`` / ``trial.should_prune`` / ``study.tell`` on an in-memory storage) and the task's
real ``search_space``; only training is replaced:

- **Lookup.** The suggested params map to the nearest configuration of the table (each numeric
  parameter scaled to [0, 1] on its own scale, log where the space is log; each categorical one-hot;
  an inactive conditional parameter is its own value). The curve replayed is that configuration's.
  This is the tabular benchmark's usual nearest-neighbour surrogate: coarse where the table is
  sparse, exact on recorded points, and the same landscape for every strategy.
- **Surrogate** (``--surrogate``, the default of the report): a continuous landscape fitted to the
  table plus measured training noise per trial (class ``Surrogate`` says how and why); it needs
  ``<task>_repeats.jsonl`` (``replay_table.py --repeat-top 8``).
- **Clock.** A simulated clock advances by the recorded seconds: the trial's overhead (clear_session,
  build, compile, inputs) when it starts, then each epoch's own seconds (the first includes tracing),
  each scaled by the row's CPU share (CPU seconds / wall seconds of a lane pinned to one core), so
  that time other processes took from the lane on a loaded machine is not charged to the trial.
  hpsearch's strategies pay its storage cost on top (0.2 s per trial and 0.013 s per epoch:
  BENCHMARKS.md, service overhead on PostgreSQL), plain Optuna on its in-memory storage none.
- **Training path** (``--peer-cost``). The table's seconds are those of hpsearch's trial path. With
  ``trial-path`` (the default) every strategy pays them: the comparison of the search alone. With
  ``plain`` the strategies that do not run through hpsearch (plain Optuna, Keras Tuner) pay what a
  ten-line script's plain ``model.fit`` costs instead, as they do in ``search_bench.py``: the table's
  seconds times the plain/trial-path ratios measured on a sample of its rows (``replay_table.py
  --cost-sample``, class ``PeerCost``): the product against that script.
- **Workers.** ``W`` workers run as a discrete-event simulation in time order: a worker asks for its
  next trial the moment its last one ends, so a sampler sees exactly the reports made before then
  (constant liar sees the others' running trials as Optuna would).
- **Scores** (``SCORES``, ``summarize``). ``observed``, as in ``search_bench.py``: the best
  validation accuracy of any epoch seen so far. ``expected``: what the run's pick is worth, the
  noise-free accuracy of the configuration ``study.best_trial`` names, at its best epoch (on the
  surrogate, its mean curve): what ``export`` + ``train`` give. Each run also records ``oracle``: the
  most any complete trial so far is worth, a bound no pick rule can pass (stop 32, ``pick_bound.py``).

Results: ``benchmarks/results/replay/<task>_budget<B>.json`` (every run's best-at-budget and
trajectory summary); ``make_report.py`` renders the tables in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
import functools
import heapq
import json
import math
import multiprocessing as mp
import os
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

_machine.ensure_root_on_path()

# hpsearch's own service cost per trial and per epoch, from BENCHMARKS.md (PostgreSQL, 2026-12-01).
HPSEARCH_TRIAL_S = 0.2
HPSEARCH_EPOCH_S = 0.013


# -- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """What one trial replays: per-epoch val accuracy and seconds, and the seconds before epoch 1."""

    val: list[float]
    epoch_s: list[float]
    overhead_s: float


class Table:
    """Recorded curves with a nearest-neighbour lookup over the task's search space."""

    peer_cost: PeerCost | None = None  # --peer-cost plain: what the peers' plain model.fit pays

    def __init__(self, task: Any, rows: list[dict[str, Any]], max_epochs: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.task = task
        self.max_epochs = max_epochs
        by_index = {r.get("index", i): r for i, r in enumerate(rows) if r.get("max_epochs", max_epochs) == max_epochs}
        self.rows = [by_index[i] for i in sorted(by_index)]
        # Every distribution the space can produce (conditional ones included), from the rows' params.
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        dists: dict[str, Any] = {}
        for r in self.rows:
            t = optuna.trial.FixedTrial(r["params"])
            task.search_space(t)
            dists.update(t.distributions)
        del study
        self.dists = dict(sorted(dists.items()))
        self.matrix = np.stack([self.encode(r["params"]) for r in self.rows])
        self.val = [[(v if v is not None and math.isfinite(v) else 0.0) for v in r["val_accuracy"]] for r in self.rows]
        # The clock: each row's wall seconds scaled by its CPU share. A table lane is pinned to one core,
        # so its CPU seconds are what the trial costs alone on that core; its wall seconds also hold the
        # time other processes took the core from it (the table was built on a shared, loaded machine).
        share = [min(1.0, r["cpu_seconds"] / r["wall_seconds"]) if r.get("wall_seconds") else 1.0 for r in self.rows]
        self.epoch_s = [[s * f for s in r["epoch_seconds"]] for r, f in zip(self.rows, share)]
        self.overhead_s = [float(r["overhead_seconds"]) * f for r, f in zip(self.rows, share)]

    def encode(self, params: dict[str, Any]) -> np.ndarray:
        import optuna

        out: list[float] = []
        for name, d in self.dists.items():
            v = params.get(name)
            if isinstance(d, optuna.distributions.CategoricalDistribution):
                out += [(1.0 if v == c else 0.0) / math.sqrt(2) for c in d.choices]
                continue
            if v is None:
                out.append(-0.5)  # inactive: far from every active value
                continue
            lo, hi = float(d.low), float(d.high)
            if d.log:
                x = (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
            else:
                x = (float(v) - lo) / (hi - lo) if hi > lo else 0.0
            out.append(x)
        return np.asarray(out, dtype="float64")

    def lookup(self, params: dict[str, Any]) -> int:
        d = ((self.matrix - self.encode(params)) ** 2).sum(axis=1)
        return int(np.argmin(d))

    def curve(self, params: dict[str, Any], key: tuple[int, ...]) -> Curve:
        """The nearest recorded configuration's curve (the same for every trial that lands there)."""
        row = self.lookup(params)
        return Curve(self.val[row], self.epoch_s[row], self.overhead_s[row])

    def best(self) -> float:
        return max(max(v, default=0.0) for v in self.val)

    def expected(self, params: dict[str, Any], epoch_index: int, c: Curve) -> float:
        """The accuracy a user can expect from this configuration trained for ``epoch_index + 1``
        epochs. The lookup has no noise: a configuration's curve is the same every time."""
        return float(c.val[epoch_index])

    def best_expected(self, params: dict[str, Any], epochs: int, c: Curve) -> float:
        """The most this configuration is worth trained for its best number of epochs up to ``epochs``."""
        return float(max(c.val[:epochs]))

    def baseline_value(self) -> float | None:
        """The first baseline's own best val accuracy, the bar of the "beats the baseline" goal."""
        if not self.task.baselines:
            return None
        return max(self.val[self.lookup(self.task.baselines[0])])

    def baseline_expected(self) -> float | None:
        """The bar of the expected score: the first baseline's worth at its best epoch."""
        return self.baseline_value()


def _forest_predict(trees: list[Any], x: np.ndarray) -> np.ndarray:
    """A fitted forest's prediction for one sample, from its trees. Each tree's predict is one C
    call; looping in Python over 100 trees is ~0.3 ms, where the forest's own predict (joblib
    dispatch for one sample) is ~10 ms and dominates a run."""
    x32 = np.asarray(x, dtype="float32").reshape(1, -1)
    return np.mean([t.predict(x32)[0, :, 0] for t in trees], axis=0)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(q / (1 - q))


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class Surrogate(Table):
    """A continuous landscape fitted to the table, with measured training noise.

    The nearest-neighbour lookup has two faults that real training does not (BENCHMARKS.md, the
    2026-12-03 wall-clock rerun): a whole region replays one curve, so a sampler that searches finely
    near a good point gains nothing; and a configuration replays the same curve every time, so the
    luck of a lucky row is everyone's and a second run of a good region draws no fresh noise. On real
    training the top rows of the table are partly luck: trained again with other seeds, the best row
    (0.957) gave 0.940-0.943 (``<task>_repeats.jsonl``).

    So, as surrogate benchmarks do (HPOBench's surrogates, YAHPO Gym), the mean is a regression
    model fitted to the table and the noise is added per trial:

    - **Mean curve:** scikit-learn's random forest (the surrogate of SMAC's and HPOBench's
      surrogate benchmarks; it keeps the landscape's cliffs, where a smooth kernel would blur them)
      from the encoded params to the 10 per-epoch val accuracies; a second forest to the log of the
      per-epoch and set-up seconds. Fidelity (out-of-bag R^2) is reported with every run.
    - **Noise:** a whole residual curve drawn from the repeats (configurations trained with 4 seeds:
      each seed's curve minus their mean, scaled by sqrt(n / (n - 1)) and by the binomial
      sqrt(p (1 - p)) of its epoch, then rescaled to the predicted mean), among the repeated
      configurations whose mean curves are nearest the predicted one (``NOISE_NEIGHBOURS``): how
      much seeds disagree depends on where a curve is (steep early epochs disagree far more than a
      plateau), which the binomial rescaling alone does not carry. Whole curves keep the
      noise's correlation across epochs. Drawn from ``key`` (seed, trial number), so every method's
      trial k draws the same noise: common random numbers, less variance between methods.
    """

    def __init__(self, task: Any, rows: list[dict[str, Any]], max_epochs: int, repeats: list[dict[str, Any]]) -> None:
        from sklearn.ensemble import ExtraTreesRegressor
        from sklearn.model_selection import KFold

        super().__init__(task, rows, max_epochs)
        # The repeats: every curve of a configuration trained with several seeds (the table's own too).
        by_index: dict[int, list[list[float]]] = {}
        repeated = {int(q["index"]) for q in repeats}
        for r in [*self.rows, *repeats]:
            if int(r["index"]) in repeated and len(r["val_accuracy"]) == max_epochs:
                by_index.setdefault(int(r["index"]), []).append(list(r["val_accuracy"]))
        if not any(len(c) > 1 for c in by_index.values()):
            raise SystemExit(f"no repeats for {task.name}: run replay_table.py --task {task.name} --repeat-top 8 first")
        self.noise: list[np.ndarray] = []
        self.noise_source: list[int] = []  # the position in noise_means of each residual's configuration
        self.noise_means: list[np.ndarray] = []  # each repeated configuration's mean curve
        self.repeat_means: dict[int, float] = {}
        mean_curves: dict[int, np.ndarray] = {}
        for i, curves in by_index.items():
            if len(curves) < 2:
                continue
            c = np.array(curves)
            m = c.mean(axis=0)
            scale = np.sqrt(np.clip(m * (1 - m), 0.01, None))
            for one in c:
                self.noise.append((one - m) * math.sqrt(len(c) / (len(c) - 1)) / scale)
                self.noise_source.append(len(self.noise_means))
            self.noise_means.append(m)
            self.repeat_means[i] = float(c.max(axis=1).mean())
            mean_curves[i] = m
        self.noise_sd_at_095 = float(np.std(np.concatenate(self.noise)) * math.sqrt(0.95 * 0.05))
        # The mean: a repeated configuration's mean curve, every other one's single curve.
        acc = np.array(
            [
                mean_curves.get(int(r["index"]), np.array(v + [v[-1]] * (max_epochs - len(v))))
                for r, v in zip(self.rows, self.val)
            ],
            dtype="float64",
        )
        secs = np.array([[o, *e] for o, e in zip(self.overhead_s, self.epoch_s)], dtype="float64")
        x, y, ys = self.matrix, _logit(acc), np.log(np.maximum(1e-3, secs))

        def forest() -> Any:
            # Extremely randomised trees without bootstrap, leaves of one: exact on every recorded
            # configuration (as the lookup is) and, between them, an average over random axis-aligned
            # cuts: continuous where the lookup is a step, and it keeps cliffs (a diverging learning
            # rate) that a smooth kernel would blur. In logit space, so that averaging near 1 is sane.
            return ExtraTreesRegressor(n_estimators=100, min_samples_leaf=1, max_features=1.0, random_state=0)

        self.acc_rf = forest().fit(x, y)
        self.time_rf = forest().fit(x, ys)
        # Fidelity: 5-fold cross-validated R^2 of the best-of-curve and of the log seconds.
        best, pred_best = acc.max(axis=1), np.zeros(len(acc))
        pred_s = np.zeros_like(ys)
        for tr, te in KFold(5, shuffle=True, random_state=0).split(x):
            pred_best[te] = _expit(forest().fit(x[tr], y[tr]).predict(x[te])).max(axis=1)
            pred_s[te] = forest().fit(x[tr], ys[tr]).predict(x[te])
        self.fidelity = {
            "cv_r2_best": round(float(1 - ((best - pred_best) ** 2).sum() / ((best - best.mean()) ** 2).sum()), 4),
            "cv_r2_log_seconds": round(float(1 - ((ys - pred_s) ** 2).sum() / ((ys - ys.mean()) ** 2).sum()), 4),
        }
        self._acc_trees = [e.tree_ for e in self.acc_rf.estimators_]
        self._time_trees = [e.tree_ for e in self.time_rf.estimators_]

    def mean_curve(self, params: dict[str, Any]) -> np.ndarray:
        return _expit(_forest_predict(self._acc_trees, self.encode(params)))

    def curve(self, params: dict[str, Any], key: tuple[int, ...]) -> Curve:
        x = self.encode(params)
        m = _expit(_forest_predict(self._acc_trees, x))
        secs = np.exp(_forest_predict(self._time_trees, x))
        rng = np.random.default_rng(list(key))
        z = self.noise[self._noise_for(m, rng)]
        val = np.clip(m + z * np.sqrt(np.clip(m * (1 - m), 0.01, None)), 0.0, 1.0)
        return Curve([round(float(v), 3) for v in val], [float(s) for s in secs[1:]], float(secs[0]))

    def expected(self, params: dict[str, Any], epoch_index: int, c: Curve) -> float:
        """The mean curve at that epoch: what training this configuration again (``hpsearch export``,
        then ``train``) gives on average, without the trial's own noise."""
        return float(self.mean_curve(params)[epoch_index])

    def best_expected(self, params: dict[str, Any], epochs: int, c: Curve) -> float:
        return float(self.mean_curve(params)[:epochs].max())

    # Residual curves are drawn from the repeated configurations whose mean curves lie nearest this
    # one's (mean absolute difference over the epochs). Until 2026-12-05 (stop 23) they were drawn
    # from all of them, and the seed-to-seed spread of a configuration still on the steep part of
    # its curve (row 287: epoch 1 at 0.19-0.36 over 4 seeds) became, rescaled, an epoch-1 spike of
    # +0.08 on a configuration at 0.89: curves that peak at epoch 1 (0.971, then 0.95 and falling)
    # as no recorded configuration does. Those spikes made most of the "best value seen".
    NOISE_NEIGHBOURS = 3

    def _noise_for(self, m: np.ndarray, rng: np.random.Generator) -> int:
        d = np.array([np.abs(q - m).mean() for q in self.noise_means])
        near = set(np.argsort(d, kind="stable")[: self.NOISE_NEIGHBOURS].tolist())
        pool = [j for j, src in enumerate(self.noise_source) if src in near]
        return pool[int(rng.integers(len(pool)))]

    def baseline_expected(self) -> float | None:
        """The bar of the expected score: the first baseline's mean curve at its best epoch (the
        highest the baseline's own configuration is worth, trained again)."""
        if not self.task.baselines:
            return None
        return round(float(self.mean_curve(self.task.baselines[0]).max()), 5)

    def baseline_value(self) -> float | None:
        """The first baseline's mean best val accuracy over its recorded seeds (one seed's is luck)."""
        if not self.task.baselines:
            return None
        row = self.lookup(self.task.baselines[0])
        return self.repeat_means.get(int(self.rows[row]["index"]), max(self.val[row]))


class PeerCost:
    """What a plain ``model.fit`` costs against hpsearch's trial path, per configuration.

    From ``<task>_costs.jsonl`` (``replay_table.py --cost-sample``): rows of the table trained both
    ways, interleaved in one pinned process. Two ratios per row, plain over trial path: the start
    (set-up and the first epoch, which traces) and a later epoch (the median of epochs 2 on). The
    ratio depends on the configuration (steps per execution and the large validation batch save most
    for small batches of small models), so each is a forest over the encoded params, in log space,
    with leaves of ``MIN_LEAF`` rows to average the timer's noise; its 5-fold CV R^2 is reported.
    """

    MIN_LEAF = 8

    def __init__(self, table: Table, rows: list[dict[str, Any]]) -> None:
        from sklearn.ensemble import ExtraTreesRegressor
        from sklearn.model_selection import KFold

        keep = [
            r
            for r in rows
            if not r["plain"]["error"]
            and not r["hpsearch"]["error"]
            and min(len(r["plain"]["epoch_seconds"]), len(r["hpsearch"]["epoch_seconds"])) >= 2
        ]
        if len(keep) < 2 * self.MIN_LEAF:
            raise SystemExit(
                f"{len(keep)} usable rows of measured costs; run replay_table.py --task {table.task.name} "
                "--cost-sample 60 first"
            )

        def start(d: dict[str, Any]) -> float:
            return float(d["overhead_seconds"] + d["epoch_seconds"][0])

        def later(d: dict[str, Any]) -> float:
            return float(np.median(d["epoch_seconds"][1:]))

        x = np.stack([table.encode(r["params"]) for r in keep])
        y = np.log(
            np.array(
                [[start(r["plain"]) / start(r["hpsearch"]), later(r["plain"]) / later(r["hpsearch"])] for r in keep]
            )
        )

        def forest() -> Any:
            return ExtraTreesRegressor(n_estimators=200, min_samples_leaf=self.MIN_LEAF, random_state=0)

        self.model = forest().fit(x, y)
        pred = np.zeros_like(y)
        for tr, te in KFold(5, shuffle=True, random_state=0).split(x):
            pred[te] = forest().fit(x[tr], y[tr]).predict(x[te])
        r2 = 1 - ((y - pred) ** 2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        self.table = table
        self.summary = {
            "rows": len(keep),
            "recorded_on": sorted({r.get("cpu_model", "?") for r in keep}),
            "geomean_ratio_start": round(float(np.exp(y[:, 0].mean())), 3),
            "geomean_ratio_epoch": round(float(np.exp(y[:, 1].mean())), 3),
            "cv_r2_start": round(float(r2[0]), 3),
            "cv_r2_epoch": round(float(r2[1]), 3),
        }
        self._trees = [e.tree_ for e in self.model.estimators_]

    def ratios(self, params: dict[str, Any]) -> tuple[float, float]:
        z = _forest_predict(self._trees, self.table.encode(params))
        return float(np.exp(z[0])), float(np.exp(z[1]))

    def scale(self, c: Curve, params: dict[str, Any]) -> Curve:
        """The curve as a plain ``model.fit`` would take it: same accuracies, its own seconds."""
        r_start, r_epoch = self.ratios(params)
        return Curve(
            c.val,
            [s * (r_start if k == 0 else r_epoch) for k, s in enumerate(c.epoch_s)],
            c.overhead_s * r_start,
        )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _one_machine(rows: list[dict[str, Any]], what: str, *, cpu: bool = True) -> None:
    """Refuse rows from two CPU models (``cpu``) or two precisions: the table's seconds are the
    replay's clock, and rows from two machines make a clock of neither; the repeats' accuracies are
    its noise, and a precision changes them."""
    from replay_table import recorded_on

    on = recorded_on(rows)
    if (cpu and len({c for c, _ in on}) > 1) or len({p for _, p in on if p is not None}) > 1:
        raise SystemExit(
            f"error: {what} mixes rows trained on {sorted(on, key=str)}; replay a table recorded on one "
            "machine in one precision (benchmarks/NOTES.md, stop 25)"
        )


def load_table(
    task_name: str,
    max_epochs: int = 10,
    path: Path | None = None,
    *,
    surrogate: bool = False,
    peer_cost: str = "trial-path",
) -> Table:
    from hpsearch.objectives import get_task

    path = path or _machine.RESULTS / "replay" / f"{task_name}.jsonl"
    rows = _jsonl(path)
    _one_machine(rows, str(path))
    table: Table
    if surrogate:
        rpath = path.with_name(f"{path.stem}_repeats.jsonl")
        repeats = _jsonl(rpath) if rpath.exists() else []
        # The repeats are the surrogate's training noise: only their accuracies are used, so they may
        # come from another CPU, but not from another precision.
        _one_machine(rows + repeats, f"{path} with {rpath.name}", cpu=False)
        table = Surrogate(get_task(task_name), rows, max_epochs, repeats)
    else:
        table = Table(get_task(task_name), rows, max_epochs)
    if peer_cost == "plain":
        cpath = path.with_name(f"{path.stem}_costs.jsonl")
        table.peer_cost = PeerCost(table, _jsonl(cpath) if cpath.exists() else [])
    return table


# -- strategies -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """A strategy: sampler and pruner factories, whether the task's baselines are enqueued or used as
    a prior, and whether it pays hpsearch's service cost."""

    name: str
    sampler: Callable[[int, int], Any]  # (seed, worker_index) -> sampler
    pruner: Callable[[int], Any]  # max_epochs -> pruner
    baselines: bool = False
    prior: bool = False
    prior_weight: float = 0.5  # BaselinePriorSampler's default
    hpsearch: bool = False
    prune_last_epoch: bool = True  # Optuna's KerasPruningCallback asks after every epoch
    first_step: int = 0  # the step reported after the first epoch (Keras' epoch index: 0)
    kind: str = "optuna"
    smooth: int = 1  # a complete trial's value: the best mean of this many consecutive epochs
    # Re-measure before picking (2026-12-05, stop 24): the search stops at (1 - recheck_reserve) x the
    # budget; then the ``recheck`` best complete configurations are trained again ``recheck_seeds``
    # times each with fresh noise, on the same workers and clock, and the pick is the one whose mean
    # curve over its measurements is best (``_recheck``). 0: no recheck, the pick is best_trial.
    recheck: int = 0
    recheck_seeds: int = 1
    recheck_reserve: float = 0.1
    # Re-measure while the search runs (stop 33; settings version 5's ``live_recheck``): each complete
    # trial that becomes the best by value (after the first ``live_after`` complete trials) is trained
    # once more, unpruned, by the next free worker, within the same budget. Two pick rules are recorded
    # (``simulate``): ``incumbent`` (strict) and ``incumbent_eager``, the product's pick from version 5.
    live_recheck: bool = False
    live_after: int = 0
    # Stop 34: the re-measurement is not a trial while it trains (TPE's constant liar counts a running
    # trial among the bad ones, so a running re-measurement of the lead steers the other workers away
    # from the lead); it is added to the study as a finished trial when it ends (``Study.add_trial``).
    live_hidden: bool = False
    # Stop 38 (settings version 7's budget-aware live recheck): a new lead is re-measured only while the
    # time left in the budget is at least this many times the lead's own training time (its start to
    # its end); 0: always (versions 5 and 6).
    live_headroom: float = 0.0
    # ... except for a baseline that leads (its recheck is what lets version 6's pick go back to it).
    live_spare_baselines: bool = False
    # Stop 39 (a candidate): a trial whose best val accuracy after ``floor_after`` epochs (or any later
    # one) is no better than always answering the validation split's most common class is pruned,
    # whatever the pruner says (``constant_answer``): ASHA keeps a search's first trial at every rung,
    # so a first trial that never learns (28 % of mnist_mlp's table, 13 % of mnist_cnn's) trains in
    # full. 0: off.
    floor_after: int = 0


def _tpe(**kw: Any) -> Callable[[int, int], Any]:
    import optuna

    return lambda seed, w: optuna.samplers.TPESampler(seed=seed * 1009 + w, **kw)


def _gamma(fraction: float) -> Callable[[int], int]:
    """TPE's split of the trials into good and bad: Optuna's default is fraction 0.1, at most 25."""
    return lambda n: min(int(math.ceil(fraction * n)), 25)


def _random(seed: int, w: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed * 1009 + w)


def _nop(max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


def _optuna_hyperband(max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)


def _hpsearch_settings(**settings: Any) -> tuple[Callable[[int, int], Any], Callable[[int], Any]]:
    """The sampler and pruner that ``hpsearch create`` makes for these settings (its own code)."""
    from hpsearch._study import StudySettings
    from hpsearch._study import make_pruner
    from hpsearch._study import make_sampler

    def sampler(seed: int, w: int) -> Any:
        # baselines=False: the replay adds the prior itself (Method.prior), over the table's task
        return make_sampler(StudySettings(task="replay", seed=seed, baselines=False, **settings), w)

    def pruner(max_epochs: int) -> Any:
        return make_pruner(StudySettings(task="replay", max_epochs=max_epochs, baselines=False, **settings))

    return sampler, pruner


def methods() -> dict[str, Method]:
    import optuna

    from hpsearch._study import DEFAULT_VALUE_WINDOW
    from hpsearch._study import StudySettings

    hs, hp = _hpsearch_settings()
    fs = StudySettings(task="replay").first_step  # the step hpsearch's new studies report after epoch 1
    vw = DEFAULT_VALUE_WINDOW  # a complete trial's value in hpsearch's new studies (settings version 4)
    out = {
        # Settings version 4's search, the default until stop 33 and what BENCHMARKS.md's replay tables
        # (ALL_RUNS) ran. Version 5's default adds the live recheck: ``c:v4-live`` (+baselines), whose
        # product pick is that run's ``incumbent_eager``; version 6's is its ``incumbent_v6``
        # (compare_candidate.py scores both).
        # The default: baselines enqueued first, no prior (the prior is opt-in: --baseline-prior).
        "hpsearch": Method(
            "hpsearch", hs, hp, baselines=True, hpsearch=True, prune_last_epoch=False, first_step=fs, smooth=vw
        ),
        "hpsearch-prior": Method(
            "hpsearch-prior",
            hs,
            hp,
            baselines=True,
            prior=True,
            hpsearch=True,
            prune_last_epoch=False,
            first_step=fs,
            smooth=vw,
        ),
        "hpsearch-nobaseline": Method(
            "hpsearch-nobaseline", hs, hp, hpsearch=True, prune_last_epoch=False, first_step=fs, smooth=vw
        ),
        # Settings version 3, the default until stop 26: a complete trial's value is its best epoch.
        "hpsearch-v3": Method(
            "hpsearch-v3", hs, hp, baselines=True, hpsearch=True, prune_last_epoch=False, first_step=fs
        ),
        "hpsearch-v3-nobaseline": Method(
            "hpsearch-v3-nobaseline", hs, hp, hpsearch=True, prune_last_epoch=False, first_step=fs
        ),
        # Ablations of the baselines' use: enqueued only (no prior), and a lighter prior.
        "hpsearch-prior0.2": Method(
            "hpsearch-prior0.2",
            hs,
            hp,
            baselines=True,
            prior=True,
            prior_weight=0.2,
            hpsearch=True,
            prune_last_epoch=False,
            first_step=fs,
            smooth=vw,
        ),
        "tpe": Method("tpe", _tpe(), _nop),
        "tpe-hyperband": Method("tpe-hyperband", _tpe(), _optuna_hyperband),
        "random": Method("random", _random, _nop),
        # Optuna's GPSampler (needs PyTorch), unpruned as its docs show it; --sampler gp in hpsearch.
        "gp": Method("gp", lambda seed, w: optuna.samplers.GPSampler(seed=seed * 1009 + w), _nop),
        "kt-hyperband": Method("kt-hyperband", _random, _nop, kind="kt"),
    }

    # Candidates for the default, all without baselines (the search on its own).
    def asha(rf: int = 3, min_r: int = 1) -> Callable[[int], Any]:
        return lambda m: optuna.pruners.SuccessiveHalvingPruner(min_resource=min_r, reduction_factor=rf)

    def asha_boot(n: int) -> Callable[[int], Any]:
        return lambda m: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3, bootstrap_count=n)

    def median(startup: int = 5, warmup: int = 1) -> Callable[[int], Any]:
        return lambda m: optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)

    def hb(rf: int = 3, min_r: int = 1) -> Callable[[int], Any]:
        return lambda m: optuna.pruners.HyperbandPruner(min_resource=min_r, max_resource=m, reduction_factor=rf)

    mv = {"multivariate": True, "group": True, "constant_liar": True}
    cands = {
        "mv+hyperband": (_tpe(multivariate=True, constant_liar=True), hb()),
        "mvg+hyperband": (_tpe(**mv), hb()),
        "mvg+hyperband-rf2": (_tpe(**mv), hb(2)),
        "mvg+asha": (_tpe(**mv), asha()),
        "mvg+asha-rf2": (_tpe(**mv), asha(2)),
        "mvg+asha-min2": (_tpe(**mv), asha(3, 2)),
        "mvg+median": (_tpe(**mv), median()),
        "mvg+median-w2": (_tpe(**mv), median(5, 2)),
        "mvg+nop": (_tpe(**mv), _nop),
        "tpe+asha": (_tpe(), asha()),
        "tpe+median": (_tpe(), median()),
        "mvg5+asha": (_tpe(n_startup_trials=5, **mv), asha()),
        "mvg5+median": (_tpe(n_startup_trials=5, **mv), median()),
        "tpe5+asha": (_tpe(n_startup_trials=5), asha()),
        "tpe3+asha": (_tpe(n_startup_trials=3), asha()),
        "tpe5+asha-rf2": (_tpe(n_startup_trials=5), asha(2)),
        "tpe5+asha-rf4": (_tpe(n_startup_trials=5), asha(4)),
        "tpe5+median": (_tpe(n_startup_trials=5), median()),
        "tpe5cl+asha": (_tpe(n_startup_trials=5, constant_liar=True), asha()),
        "tpe+hyperband": (_tpe(), hb()),
        # 2026-12-04, on the surrogate: the default's own sampler with other pruners and start-ups.
        "mv+asha": (_tpe(multivariate=True, constant_liar=True), asha()),
        "mv3+asha": (_tpe(n_startup_trials=3, multivariate=True, constant_liar=True), asha()),
        "mv5+asha": (_tpe(n_startup_trials=5, multivariate=True, constant_liar=True), asha()),
        "mvg3+asha": (_tpe(n_startup_trials=3, **mv), asha()),
        "mvg3+asha-rf4": (_tpe(n_startup_trials=3, **mv), asha(4)),
        "tpe3+asha-rf4": (_tpe(n_startup_trials=3), asha(4)),
        "tpe3cl+asha": (_tpe(n_startup_trials=3, constant_liar=True), asha()),
        # 2026-12-05, on the surrogate: TPE's own knobs under the default's ASHA.
        "mv+asha-ei100": (_tpe(n_ei_candidates=100, multivariate=True, constant_liar=True), asha()),
        "mv+asha-endpoints": (_tpe(consider_endpoints=True, multivariate=True, constant_liar=True), asha()),
        "mv+asha-gamma05": (_tpe(gamma=_gamma(0.05), multivariate=True, constant_liar=True), asha()),
        "mv+asha-gamma20": (_tpe(gamma=_gamma(0.20), multivariate=True, constant_liar=True), asha()),
        "mv+asha-prior2": (_tpe(prior_weight=2.0, multivariate=True, constant_liar=True), asha()),
        "mv+asha-boot3": (_tpe(multivariate=True, constant_liar=True), asha_boot(3)),
        "mv+asha-rf4": (_tpe(multivariate=True, constant_liar=True), asha(4)),
        "mv+asha-rf2": (_tpe(multivariate=True, constant_liar=True), asha(2)),
    }
    for name, (s, p) in cands.items():
        out[f"c:{name}"] = Method(f"c:{name}", s, p, hpsearch=True, prune_last_epoch=False)
    # Steps counted from 1 (epochs done): ASHA's rungs come after epochs 1, 3 and 9 instead of 2, 4 and 10.
    for name, (s, p) in {
        "mv+asha-e1": (_tpe(multivariate=True, constant_liar=True), asha()),
        "mv+asha-e1-rf4": (_tpe(multivariate=True, constant_liar=True), asha(4)),
        "mv+asha-e1-boot3": (_tpe(multivariate=True, constant_liar=True), asha_boot(3)),
    }.items():
        out[f"c:{name}"] = Method(f"c:{name}", s, p, hpsearch=True, prune_last_epoch=False, first_step=1)
    # 2026-12-05, scored by the incumbent's expected accuracy: the default with later first rungs, the
    # default's sampler unpruned, and the median pruner, each on hpsearch's own settings and steps.
    for name, settings in {
        "pa2": {"prune_after": 2},
        "pa4": {"prune_after": 4},
        "median": {"pruner": "median"},
        "nop": {"pruner": "none"},
    }.items():
        ss, sp = _hpsearch_settings(**settings)
        out[f"c:hpsearch-{name}"] = Method(
            f"c:hpsearch-{name}", ss, sp, hpsearch=True, prune_last_epoch=False, first_step=fs
        )
    # 2026-12-05: a complete trial's value as the best mean of 2 or 3 consecutive epochs (less of one
    # lucky epoch in TPE's ranking and in the choice of the best trial).
    for k in (2, 3):
        out[f"c:hpsearch-smooth{k}"] = Method(
            f"c:hpsearch-smooth{k}", hs, hp, hpsearch=True, prune_last_epoch=False, first_step=fs, smooth=k
        )
    out["c:hpsearch-smooth3+baselines"] = Method(
        "c:hpsearch-smooth3+baselines",
        hs,
        hp,
        baselines=True,
        hpsearch=True,
        prune_last_epoch=False,
        first_step=fs,
        smooth=3,
    )

    # 2026-12-05 (stop 24): re-measure the top configurations before picking (Method.recheck), against
    # the winner's curse of picking the luckiest single measurement. 2026-12-06 (stop 27): the same on
    # settings version 4 (``c:v4-recheck5x2``: its pick reads the 3-epoch window of the mean curve, as
    # the product's now does).
    def with_and_without_baselines(label: str, window: int, **kw: Any) -> None:
        """The default's sampler, pruner and steps with ``kw``, as ``label`` and ``label+baselines``."""
        for b in (False, True):
            name = label + ("+baselines" if b else "")
            out[name] = Method(
                name, hs, hp, baselines=b, hpsearch=True, prune_last_epoch=False, first_step=fs, smooth=window, **kw
            )

    for prefix, name, (k, n, reserve), window in (
        ("c:hpsearch-", "recheck3", (3, 1, 0.1), 1),
        ("c:hpsearch-", "recheck5x2", (5, 2, 0.2), 1),
        ("c:v4-", "recheck5x2", (5, 2, 0.2), vw),
    ):
        with_and_without_baselines(f"{prefix}{name}", window, recheck=k, recheck_seeds=n, recheck_reserve=reserve)
    # 2026-12-06 (stop 33): re-measure each new best while the search runs (Method.live_recheck), from
    # the first complete trial or from the 10th (the early leads are far apart, noise decides little).
    for name, after in (("live", 0), ("live-a10", 10)):
        with_and_without_baselines(f"c:v4-{name}", vw, live_recheck=True, live_after=after)
    with_and_without_baselines("c:v4-live-hidden", vw, live_recheck=True, live_hidden=True)
    # 2026-12-07 (stop 38): the live recheck only with time for it (Method.live_headroom).
    for k in (2, 3, 5, 10):
        with_and_without_baselines(f"c:v4-live-h{k}", vw, live_recheck=True, live_headroom=float(k))
    with_and_without_baselines("c:v4-live-h5b", vw, live_recheck=True, live_headroom=5.0, live_spare_baselines=True)
    # 2026-12-07 (stop 39): ... and no re-measurement of a lead among the first ``a`` complete trials
    # (the baselines count; a baseline that leads is still re-measured): it is compared with little yet.
    for a in (1, 2, 3):
        with_and_without_baselines(
            f"c:v4-live-h5b-a{a}", vw, live_recheck=True, live_headroom=5.0, live_spare_baselines=True, live_after=a
        )
    # ... and version 7 with Method.floor_after (prune a trial no better than a constant answer).
    for f in (2, 4):
        with_and_without_baselines(
            f"c:v4-live-h5b-f{f}", vw, live_recheck=True, live_headroom=5.0, live_spare_baselines=True, floor_after=f
        )
    # Settings version 8: both (the floor after max(2, prune_after) epochs: 2 on the MNIST tables).
    with_and_without_baselines(
        "c:v8", vw, live_recheck=True, live_headroom=5.0, live_spare_baselines=True, live_after=1, floor_after=2
    )
    # 2026-12-06 (stop 27): two knobs aimed at goal 1's time on mnist_mlp: 5 random start-up trials
    # instead of TPE's 10, and ASHA keeping a third at each rung, not a quarter.
    for name, (s, p) in {
        "v4-startup5": (_tpe(n_startup_trials=5, multivariate=True, constant_liar=True), hp),
        "v4-rf3": (hs, asha(3)),
    }.items():
        out[f"c:{name}"] = Method(f"c:{name}", s, p, hpsearch=True, prune_last_epoch=False, first_step=fs, smooth=vw)
    # 2026-12-05, the screen's best, with the task's baselines enqueued as hpsearch does by default.
    e1s, e1p = _tpe(multivariate=True, constant_liar=True), asha(4)
    out["c:mv+asha-e1-rf4+baselines"] = Method(
        "c:mv+asha-e1-rf4+baselines", e1s, e1p, baselines=True, hpsearch=True, prune_last_epoch=False, first_step=1
    )
    return out


# -- the simulation -------------------------------------------------------------------------------
PICK_VARIANTS = os.environ.get("REPLAY_PICK_VARIANTS") == "1"


@functools.cache
def constant_answer(task_name: str) -> float:
    """``_objective.constant_answer_floor`` of the MNIST t10k split the tables were trained on: the
    most common class's share of the validation split, plus half an image (what a configuration that
    never learns scores at most)."""
    from hpsearch.objectives._mnist import load_arrays

    if not task_name.startswith("mnist"):
        raise SystemExit(f"floor_after: no constant-answer accuracy for task {task_name!r}")
    splits, _ = load_arrays(str(_machine.DATASETS / "mnist-t10k"), seed=0)
    counts = np.bincount(splits["val"][1])
    return float((counts.max() + 0.5) / counts.sum())


def simulate(method: Method, table: Table, *, seed: int, budget: float, workers: int = 1) -> dict[str, Any]:
    """One run: returns the incumbent trajectory [(t, best)], best-at-budget and trial counts."""
    if method.kind == "kt":
        return _simulate_kt(table, seed=seed, budget=budget)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    max_epochs = table.max_epochs
    storage = optuna.storages.InMemoryStorage()
    # One study object per worker over one storage, each with its own sampler (as hpsearch workers).
    name = "replay"
    studies = []
    for w in range(workers):
        sampler = method.sampler(seed, w)
        if method.prior:
            from hpsearch._prior import BaselinePriorSampler

            sampler = BaselinePriorSampler(
                sampler, table.task.baselines, seed=seed * 1009 + w, weight=method.prior_weight
            )
        if w == 0:
            s = optuna.create_study(
                storage=storage,
                study_name=name,
                direction="maximize",
                sampler=sampler,
                pruner=method.pruner(max_epochs),
            )
            if method.baselines:
                for i, params in enumerate(table.task.baselines):
                    s.enqueue_trial(params, user_attrs={"baseline": i})
        else:
            s = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=method.pruner(max_epochs))
        studies.append(s)
    trial_cost = HPSEARCH_TRIAL_S if method.hpsearch else 0.0
    epoch_cost = HPSEARCH_EPOCH_S if method.hpsearch else 0.0
    events: list[tuple[float, int, int]] = []  # (time, seq, worker)
    running: dict[int, tuple[Any, int, int]] = {}  # worker -> (trial, row, next epoch index)
    seq = 0
    best = -math.inf
    traj: list[tuple[float, float]] = []
    counts = {"complete": 0, "pruned": 0, "failed": 0, "epochs": 0}
    floor = constant_answer(table.task.name) if method.floor_after else 0.0
    # The incumbent: the trial ``study.best_trial`` names (complete trials only, first of equals), and
    # what its params are worth, ``expected``: what `export` + `train` (its best epoch) would give.
    inc_value = -math.inf
    incumbent: list[tuple[float, float]] = []
    # A bound, not a method: the best worth among the complete trials so far, as if the pick knew
    # every complete trial's worth (how much time and worth the pick rule loses to measurement noise).
    oracle: list[tuple[float, float]] = []
    # With REPLAY_PICK_VARIANTS=1, other pick rules over the same search (the pick never steers it): the
    # model picks of model_pick.py, a candidate measured and not adopted (stop 32; pick_bound.py).
    alt: dict[str, list[tuple[float, float]]] = {"gp-iso": [], "gp-iso-top": []}
    alt_pick: dict[str, int] = {}
    seen_trials: list[tuple[dict[str, Any], Any, float, int, Curve, int]] = []
    done: list[tuple[float, int, dict[str, Any], list[float]]] = []  # (value, number, params, curve)
    search_budget = budget * (1.0 - method.recheck_reserve) if method.recheck else budget
    # Method.live_recheck: the queue of configurations to re-measure (params, origin trial number), the
    # origin of each running re-measurement, and every re-measured origin's curves (its own first).
    live_queue: list[tuple[dict[str, Any], int]] = []
    live_dists: dict[int, Any] = {}  # Method.live_hidden: each origin's distributions
    hidden: dict[int, tuple[dict[str, Any], int]] = {}  # Method.live_hidden: worker -> (params, origin)
    live_of: dict[int, int] = {}
    live_runs: dict[int, tuple[dict[str, Any], list[list[float]]]] = {}
    search_complete = [0]
    started: dict[int, float] = {}  # trial number -> when it started (Method.live_headroom)
    # Two pick rules over one live-rechecking search (the pick never steers it): ``incumbent``, strict
    # (``_recheck.pick`` of a study without live recheck: once any configuration is re-measured, only
    # re-measured ones, by their mean curve), and ``incumbent_eager``, the pick of a live-recheck study
    # (settings version 5): ``best_trial`` until its own re-measurement ends, then the re-measured
    # configuration whose mean curve is best.
    eager: list[tuple[float, float]] = []
    # ... and ``incumbent_plain`` (stop 34): version 4's pick, best_trial of the search's own trials,
    # over the same live-rechecking search (what the search found, apart from how the pick reads it).
    plain: list[tuple[float, float]] = []
    # ... and every lead, so that any pick rule over the leads can be scored offline (the pick never
    # steers the search): when it led, what its configuration is worth at each epoch (the mean curve),
    # its measured curves (its own first) and when each re-measurement ended.
    leads: dict[int, dict[str, Any]] = {}
    picked: dict[str, Any] = {}
    inc_trial: list[Any] = [None]  # (number, params, epoch, curve) of best_trial

    # ... and ``incumbent_v6`` (stop 35): the pick of settings version 6, the eager rule between the lead
    # and the re-measured baselines only (the task's baselines are trials 0 .. nb - 1, enqueued first).
    v6: list[tuple[float, float]] = []
    nb = len(table.task.baselines) if method.baselines else 0

    def confirmed(keep: Any = None) -> tuple[Any, ...] | None:
        """(origin, epoch, params, curve) of the re-measured configuration whose mean curve is best
        (of those ``keep`` admits)."""
        scored = []
        for o, (params, curves) in live_runs.items():
            if len(curves) >= 2 and (keep is None or keep(o)):
                n = min(len(v) for v in curves)
                mean = [float(np.mean([v[i] for v in curves])) for i in range(n)]
                v_, e_ = smoothed_best(mean, method.smooth)
                scored.append((v_, -o, o, e_, params, Curve(curves[0], [], 0.0)))
        return max(scored, key=lambda x: x[:2])[2:] if scored else None

    def repick(t: float) -> None:
        conf = confirmed()
        rules: dict[str, Any] = {"strict": conf}
        n, params, epoch, curve = inc_trial[0]
        pending = n not in live_runs or len(live_runs[n][1]) < 2
        rules["eager"] = (n, epoch, params, curve) if pending or conf is None else conf
        rules["v6"] = (n, epoch, params, curve) if pending else confirmed(lambda o: o == n or o < nb)
        for rule, traj_ in (("strict", incumbent), ("eager", eager), ("v6", v6)):
            choice = rules[rule]
            if choice is None:  # strict, before any re-measurement ends: best_trial
                choice = (n, epoch, params, curve)
            if picked.get(rule) != choice[:2]:
                picked[rule] = choice[:2]
                traj_.append((round(t, 3), round(table.expected(choice[2], choice[1], choice[3]), 5)))

    def complete(w: int, trial: Any, c: Curve, k: int, t: float) -> None:
        nonlocal inc_value
        value, epoch = smoothed_best(c.val[: k + 1], method.smooth)
        studies[w].tell(trial, value)
        if trial.number in live_of:  # a re-measurement
            counts["rechecks"] = counts.get("rechecks", 0) + 1
            origin = live_of.pop(trial.number)
            live_runs[origin][1].append(c.val[: k + 1])
            leads[origin]["curves"].append(c.val[: k + 1])
            leads[origin]["ends"].append(round(t, 3))
            repick(t)
            return
        counts["complete"] += 1
        search_complete[0] += 1
        done.append((value, trial.number, trial.params, c.val[: k + 1]))
        worth = round(table.best_expected(trial.params, k + 1, c), 5)
        if not oracle or worth > oracle[-1][1]:
            oracle.append((round(t, 3), worth))
        if PICK_VARIANTS:
            from model_pick import model_pick_index

            seen_trials.append((trial.params, trial.distributions, value, epoch, c, trial.number))
            for label in alt:
                pool = seen_trials
                if label.endswith("-top"):  # the better half only: the model of the region a pick comes from
                    pool = sorted(seen_trials, key=lambda x: -x[2])[: max(5, (len(seen_trials) + 1) // 2)]
                i = model_pick_index(
                    [x[0] for x in pool],
                    [x[1] for x in pool],
                    [x[2] for x in pool],
                    ard=label.startswith("gp-ard"),
                )
                i = seen_trials.index(pool[i])
                if alt_pick.get(label) != seen_trials[i][5]:
                    alt_pick[label] = seen_trials[i][5]
                    p_, _, _, e_, c_, _ = seen_trials[i]
                    alt[label].append((round(t, 3), round(table.expected(p_, e_, c_), 5)))
        if value > inc_value:
            inc_value = value
            if not method.live_recheck:
                incumbent.append((round(t, 3), round(table.expected(trial.params, epoch, c), 5)))
                return
            inc_trial[0] = (trial.number, trial.params, epoch, c)
            plain.append((round(t, 3), round(table.expected(trial.params, epoch, c), 5)))
            leads[trial.number] = {
                "t": round(t, 3),
                "worth": [round(table.expected(trial.params, e, c), 5) for e in range(k + 1)],
                "curves": [c.val[: k + 1]],
                "ends": [round(t, 3)],
            }
            took = t - started.get(trial.number, t)
            spared = method.live_spare_baselines and trial.number < nb
            if method.live_headroom and not spared and search_budget - t < method.live_headroom * took:
                counts["live_skipped"] = counts.get("live_skipped", 0) + 1
            elif search_complete[0] > method.live_after or spared:
                live_runs[trial.number] = (trial.params, [c.val[: k + 1]])
                live_queue.append((trial.params, trial.number))
                live_dists[trial.number] = trial.distributions
            repick(t)

    def start(w: int, t: float) -> None:
        nonlocal seq
        if t >= search_budget:
            return
        if live_queue and method.live_hidden:  # a re-measurement, not a trial until it ends
            params, origin = live_queue.pop(0)
            c = table.curve(params, key=(seed, 10_000_000 + origin))
            hidden[w] = (params, origin)
            running[w] = (None, c, 0)
            seq += 1
            heapq.heappush(events, (t + c.overhead_s + trial_cost + c.epoch_s[0] + epoch_cost, seq, w))
            return
        if live_queue:  # a re-measurement first, enqueued as ``_recheck.enqueue_rechecks`` does
            params, origin = live_queue.pop(0)
            studies[w].enqueue_trial(params, user_attrs={"recheck_of": origin})
        trial = studies[w].ask()
        started[trial.number] = t
        table.task.search_space(trial)
        if trial.user_attrs.get("recheck_of") is not None:
            live_of[trial.number] = int(trial.user_attrs["recheck_of"])
        c = table.curve(trial.params, key=(seed, trial.number))
        if table.peer_cost is not None and not method.hpsearch:
            c = table.peer_cost.scale(c, trial.params)
        if not c.val:  # the configuration failed before its first epoch
            studies[w].tell(trial, state=optuna.trial.TrialState.FAIL)
            counts["failed"] += 1
            start(w, t + c.overhead_s + trial_cost)
            return
        running[w] = (trial, c, 0)
        seq += 1
        heapq.heappush(events, (t + c.overhead_s + trial_cost + c.epoch_s[0] + epoch_cost, seq, w))

    for w in range(workers):
        start(w, 0.0)
    while events:
        t, _, w = heapq.heappop(events)
        if t > search_budget:
            break
        trial, c, k = running[w]
        if trial is None:  # Method.live_hidden's re-measurement
            counts["epochs"] += 1
            if k + 1 < min(max_epochs, len(c.val)):
                running[w] = (None, c, k + 1)
                seq += 1
                heapq.heappush(events, (t + c.epoch_s[k + 1] + epoch_cost, seq, w))
                continue
            params, origin = hidden.pop(w)
            del running[w]
            if len(c.val) >= max_epochs:  # a diverged re-measurement adds nothing
                value, _ = smoothed_best(c.val[: k + 1], method.smooth)
                studies[w].add_trial(
                    optuna.trial.create_trial(
                        params=params,
                        distributions=live_dists[origin],
                        value=value,
                        intermediate_values={i + method.first_step: v for i, v in enumerate(c.val[: k + 1])},
                        user_attrs={"recheck_of": origin},
                    )
                )
                counts["rechecks"] = counts.get("rechecks", 0) + 1
                live_runs[origin][1].append(c.val[: k + 1])
                leads[origin]["curves"].append(c.val[: k + 1])
                leads[origin]["ends"].append(round(t, 3))
                repick(t)
            start(w, t)
            continue
        acc = c.val[k]
        counts["epochs"] += 1
        if acc > best:
            best = acc
            traj.append((round(t, 3), acc))
        trial.report(acc, step=k + method.first_step)
        last = k + 1 >= min(max_epochs, len(c.val))
        if last and len(c.val) < max_epochs:  # diverged: hpsearch prunes such a trial
            live_of.pop(trial.number, None)
            studies[w].tell(trial, state=optuna.trial.TrialState.PRUNED)
            counts["pruned"] += 1
        elif last and not method.prune_last_epoch:
            complete(w, trial, c, k, t)
        elif last and trial.number in live_of:
            complete(w, trial, c, k, t)
        elif (
            method.floor_after
            and trial.number not in live_of
            and k + 1 >= method.floor_after
            and max(c.val[: k + 1]) <= floor
        ):
            studies[w].tell(trial, state=optuna.trial.TrialState.PRUNED)
            counts["pruned"] += 1
            counts["floored"] = counts.get("floored", 0) + 1
            last = True
        elif trial.number not in live_of and trial.should_prune():
            studies[w].tell(trial, state=optuna.trial.TrialState.PRUNED)
            counts["pruned"] += 1
            last = True
        elif last:
            complete(w, trial, c, k, t)
        if last:
            del running[w]
            start(w, t)
        else:
            running[w] = (trial, c, k + 1)
            seq += 1
            heapq.heappush(events, (t + c.epoch_s[k + 1] + epoch_cost, seq, w))
    if method.recheck:
        best = _recheck(method, table, done, incumbent, traj, best, counts, seed=seed, budget=budget, workers=workers)
    res = _result(best, traj, incumbent, counts)
    res["oracle"] = oracle
    if method.live_recheck:
        res["incumbent_eager"] = eager
        res["incumbent_v6"] = v6
        res["incumbent_plain"] = plain
        res["leads"] = {str(n): v for n, v in leads.items()}
    res.update(alt if PICK_VARIANTS else {})
    if PICK_VARIANTS and seen_trials:  # the ARD model's pick at the budget only (its fit is slow)
        from model_pick import model_pick_index

        i = model_pick_index([x[0] for x in seen_trials], [x[1] for x in seen_trials], [x[2] for x in seen_trials])
        p_, _, _, e_, c_, _ = seen_trials[i]
        res["gp-ard-final"] = [(budget, round(table.expected(p_, e_, c_), 5))]
    return res


def _recheck(
    method: Method,
    table: Table,
    done: list[tuple[float, int, dict[str, Any], list[float]]],
    incumbent: list[tuple[float, float]],
    traj: list[tuple[float, float]],
    best: float,
    counts: dict[str, int],
    *,
    seed: int,
    budget: float,
    workers: int,
) -> float:
    """The recheck phase of ``Method.recheck``: from the search's end, the top configurations by value
    (distinct params) are trained again for all epochs with fresh noise, ``recheck_seeds`` each, each
    on the first free worker (trials still running at the search's end are abandoned). A retraining
    counts if it ends within the budget. The pick: among configurations with at least one retraining,
    the best ``method.smooth``-epoch window of the mean curve over all their measurements (the search's
    own included; from stop 27, as the product's pick reads the study's value window); with
    none, the search's incumbent stands. Retrained epochs count as seen values, as their trials would."""
    trial_cost = HPSEARCH_TRIAL_S if method.hpsearch else 0.0
    epoch_cost = HPSEARCH_EPOCH_S if method.hpsearch else 0.0
    top: list[tuple[float, int, dict[str, Any], list[float]]] = []
    seen: set[str] = set()
    for d in sorted(done, key=lambda d: (-d[0], d[1])):
        key = json.dumps(d[2], sort_keys=True)
        if key not in seen:
            seen.add(key)
            top.append(d)
        if len(top) == method.recheck:
            break
    free = [budget * (1.0 - method.recheck_reserve)] * workers
    measured: dict[int, list[list[float]]] = {}
    known = 0.0  # when the last retraining that counts ends: the pick is known then
    for j in range(method.recheck_seeds):
        for _, number, params, val in top:
            w = int(np.argmin(free))
            c = table.curve(params, key=(seed, 1_000_000 + j * 10_000 + number))
            end = free[w] + trial_cost + c.overhead_s + sum(c.epoch_s[: len(c.val)]) + epoch_cost * len(c.val)
            free[w] = end
            if end > budget or not c.val:
                continue
            counts["epochs"] += len(c.val)
            counts["rechecks"] = counts.get("rechecks", 0) + 1
            known = max(known, end)
            measured.setdefault(number, [val]).append(c.val)
            if max(c.val) > best:
                best = max(c.val)
                traj.append((round(end, 3), best))
    if not measured:
        return best
    picks = []
    for _, number, params, _val in top:
        if number in measured:
            n = min(len(v) for v in measured[number])
            mean = [float(np.mean([v[i] for v in measured[number]])) for i in range(n)]
            value, epoch = smoothed_best(mean, method.smooth)  # as the product's pick (search/_recheck.py)
            picks.append((value, -number, params, epoch, mean))
    _, _, params, epoch, mean = max(picks, key=lambda p: (p[0], p[1]))
    incumbent.append((round(known, 3), round(table.expected(params, epoch, Curve(mean, [], 0.0)), 5)))
    return best


def smoothed_best(val: list[float], window: int) -> tuple[float, int]:
    """The best mean of ``window`` consecutive epochs and the index of the window's last epoch (the
    first of equals); ``window`` 1 is the best epoch itself."""
    w = max(1, min(window, len(val)))
    means = [sum(val[i - w + 1 : i + 1]) / w for i in range(w - 1, len(val))]
    best = max(means)
    return round(best, 6), w - 1 + means.index(best)


def _result(
    best: float, traj: list[tuple[float, float]], incumbent: list[tuple[float, float]], counts: dict[str, int]
) -> dict[str, Any]:
    """A run: the best value seen (any epoch of any trial, as ``search_bench.py`` scores real runs)
    with its trajectory, and the incumbent's expected accuracy with its own (see ``summarize``)."""
    return {
        "best": None if best == -math.inf else best,
        "trajectory": traj,
        "expected": incumbent[-1][1] if incumbent else None,
        "incumbent": incumbent,
        **counts,
    }


def _simulate_kt(table: Table, *, seed: int, budget: float) -> dict[str, Any]:
    """Keras Tuner's Hyperband oracle (its own brackets and sampling), one worker, trials resumed
    from their checkpoint epoch as KT does (``tuner/initial_epoch``)."""
    import contextlib
    import io
    import tempfile

    import keras_tuner as kt
    from search_bench import KT_SPACES

    space_fn = KT_SPACES[table.task.name]
    hps = kt.HyperParameters()
    space_fn(hps)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):  # KT prints per trial
        oracle = kt.oracles.HyperbandOracle(
            objective=kt.Objective("val_accuracy", "max"),
            max_epochs=table.max_epochs,
            factor=3,
            hyperband_iterations=1000,
            seed=seed,
            hyperparameters=hps,
        )
        oracle._set_project_dir(tmp, "replay")
        t, best, inc_value = 0.0, -math.inf, -math.inf
        traj: list[tuple[float, float]] = []
        incumbent: list[tuple[float, float]] = []  # KT's best trial: the best score (its best step)
        counts = {"complete": 0, "pruned": 0, "failed": 0, "epochs": 0}
        curves: dict[str, Curve] = {}
        while t < budget:
            trial = oracle.create_trial("tuner0")
            if trial.status != "RUNNING":
                break
            values = trial.hyperparameters.values
            params = space_fn(_Fixed(values))
            # KT resumes a trial from its parent's checkpoint: the parent's curve continues.
            parent = values.get("tuner/trial_id")
            c = curves.get(parent) if parent else None
            if c is None:
                c = table.curve(params, key=(seed, len(curves)))
                if table.peer_cost is not None:  # Keras Tuner trains with a plain model.fit
                    c = table.peer_cost.scale(c, params)
            curves[trial.trial_id] = c
            first = int(values.get("tuner/initial_epoch", 0))
            last = min(int(values.get("tuner/epochs", table.max_epochs)), len(c.val))
            t += c.overhead_s
            metric = 0.0
            done = -1
            for k in range(first, last):
                t += c.epoch_s[k]
                if t > budget:
                    break
                counts["epochs"] += 1
                done = k
                metric = c.val[k]
                if metric > best:
                    best = metric
                    traj.append((round(t, 3), metric))
                oracle.update_trial(trial.trial_id, {"val_accuracy": metric}, step=k)
            oracle.end_trial(trial)
            counts["complete"] += 1
            if done >= first:
                value = max(c.val[first : done + 1])
                if value > inc_value:
                    inc_value = value
                    k_best = first + c.val[first : done + 1].index(value)
                    incumbent.append((round(t, 3), round(table.expected(params, k_best, c), 5)))
    return _result(best, traj, incumbent, counts)


class _Fixed:
    """Reads a KT trial's values back through the same ``kt_params_*`` function."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def Int(self, name: str, *a: Any, **k: Any) -> Any:  # noqa: N802 (Keras Tuner's names)
        return self.values.get(name)

    Float = Choice = Boolean = Int  # noqa: N815

    def conditional_scope(self, *a: Any, **k: Any) -> Any:
        import contextlib

        return contextlib.nullcontext()


# -- statistics -----------------------------------------------------------------------------------
def time_to(traj: list[tuple[float, float]], target: float) -> float:
    for t, v in traj:
        if v >= target - 1e-12:
            return t
    return math.inf


def bootstrap_ci(
    x: np.ndarray, stat: Callable[[np.ndarray], float] = np.median, n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n, len(x)))
    vals = np.sort([stat(x[i]) for i in idx])  # may hold inf ("never"): quantiles by rank, not interpolation
    return float(vals[int(0.025 * (n - 1))]), float(vals[int(np.ceil(0.975 * (n - 1)))])


SCORES = {
    # score: (a run's value at the budget, its trajectory)
    "observed": ("best", "trajectory"),
    "expected": ("expected", "incumbent"),
}


def summarize(
    runs: dict[str, list[dict[str, Any]]],
    *,
    budget: float,
    baseline_value: float | None,
    focus: str,
    score: str = "observed",
) -> dict[str, Any]:
    """Per method: best-at-budget and time-to-target with 95 % bootstrap CIs; Mann-Whitney tests of
    ``focus`` against the best peer.

    Two scores (``SCORES``). ``observed``: the best val accuracy seen at any epoch of any trial, pruned
    ones included (``search_bench.py`` scores real runs so). With training noise that rewards the
    number of noisy draws: on the mnist_mlp surrogate a run's best observed value sits ~0.013 above
    what its own best configuration is worth (0.08 with the noise of before 2026-12-05, stop 23).
    ``expected`` (result files from 2026-12-05, stop 23, on): what the user gets, the mean accuracy of the configuration ``study.best_trial`` names at
    that moment, trained for its best epoch: the noise-free accuracy of the model ``export`` +
    ``train`` give. Its trajectory need not rise (a luckier trial can take the lead with a worse
    configuration); time to target is the first time it reaches it."""
    from scipy.stats import mannwhitneyu

    value_key, traj_key = SCORES[score]
    finals = {m: np.array([r[value_key] or 0.0 for r in rs]) for m, rs in runs.items()}
    out: dict[str, Any] = {"score": score, "methods": {}}
    for m, x in finals.items():
        out["methods"][m] = {
            "seeds": len(x),
            "best_median": float(np.median(x)),
            "best_ci": bootstrap_ci(x),
            "best_mean": float(x.mean()),
            "trials": float(np.median([r["complete"] + r["pruned"] for r in runs[m]])),
            "epochs": float(np.median([r["epochs"] for r in runs[m]])),
        }
    peers = [m for m in finals if m != focus and not m.startswith(("c:", "hpsearch"))]
    if focus not in finals or not peers:
        return out
    best_peer = max(peers, key=lambda m: (np.median(finals[m]), finals[m].mean()))
    target = float(np.median(finals[best_peer]))

    # A run that never reaches the target takes forever, and half of forever is still forever: the
    # goal-1 test compares the focus's times with half the peer's, "never" tied with "never". (Up to
    # 2026-12-04 "never" was a sentinel of 10 x the budget, and halving it ranked a peer's failures
    # ahead of the focus's: a bias against the focus, large where many runs never get there.)
    def ttt(m: str) -> np.ndarray:
        return np.array([time_to(r[traj_key], target) for r in runs[m]])

    def finite(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    for m in finals:
        t = ttt(m)
        out["methods"][m]["ttt_median"] = finite(np.median(t))
        out["methods"][m]["ttt_ci"] = [finite(v) for v in bootstrap_ci(t)]
        out["methods"][m]["reached"] = float(np.isfinite(t).mean())
    th, tp = ttt(focus), ttt(best_peer)
    goal1 = mannwhitneyu(th, 0.5 * tp, alternative="less")
    # How much of goal 1 is decided early (stop 31): the share of runs whose pick had reached the target
    # by goal 1's line, half the peer's median time. Random search's share there is what first draws give
    # with no model; with 16 workers that line falls within the first full trainings. And the test's
    # effect size: the share of (focus run, peer run) pairs with the focus under half the peer's time,
    # "never" tied with "never" (0.5 is no difference; the test needs it well above).
    half = 0.5 * float(np.median(tp))
    if math.isfinite(half):
        for m in finals:
            out["methods"][m]["reached_by_half_peer"] = float((ttt(m) <= half).mean())
    goal1_share = float((th[:, None] < 0.5 * tp[None, :]).mean() + 0.5 * (th[:, None] == 0.5 * tp[None, :]).mean())
    tests = {}
    for p in peers:
        tests[p] = float(mannwhitneyu(finals[focus], finals[p], alternative="greater").pvalue)
    out.update(
        focus=focus,
        best_peer=best_peer,
        target=target,
        time_ratio=finite(float(np.median(th)) / float(np.median(tp))) if math.isfinite(np.median(tp)) else None,
        goal1_p=float(goal1.pvalue),
        goal1_share=goal1_share,
        goal1_line=finite(half),
        goal1_met=bool(goal1.pvalue < 0.05 and np.median(th) <= 0.5 * np.median(tp)),
        goal2_p=tests,
        goal2_met=bool(
            all(v < 0.05 for v in tests.values())
            and all(np.median(finals[focus]) >= np.median(finals[p]) for p in peers)
        ),
    )
    if baseline_value is not None:
        out["beats_baseline_fraction"] = float((finals[focus] > baseline_value).mean())
        out["baseline_value"] = baseline_value
    return out


def summaries(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    *,
    budget: float,
    baseline_value: float | None,
    baseline_expected: float | None = None,
) -> dict[str, dict[str, Any]]:
    """``summarize`` per worker count, without baselines (focus: hpsearch's search alone) and with."""
    out = {}
    for w, runs in results.items():
        for m in runs:
            runs[m].sort(key=lambda r: r["seed"])
        without = {m: rs for m, rs in runs.items() if m == "hpsearch-nobaseline" or not methods()[m].baselines}
        with_ = {m: rs for m, rs in runs.items() if m != "hpsearch-nobaseline"}
        out[w] = {
            "without_baselines": summarize(without, budget=budget, baseline_value=None, focus="hpsearch-nobaseline"),
            "with_baselines": summarize(with_, budget=budget, baseline_value=baseline_value, focus="hpsearch"),
        }
        # The expected score where every run has it (runs replayed before 2026-12-05 10:40 do not).
        if all("incumbent" in r for rs in runs.values() for r in rs):
            out[w]["without_baselines_expected"] = summarize(
                without, budget=budget, baseline_value=None, focus="hpsearch-nobaseline", score="expected"
            )
            out[w]["with_baselines_expected"] = summarize(
                with_, budget=budget, baseline_value=baseline_expected, focus="hpsearch", score="expected"
            )
    return out


def _recorded_baseline_value(doc: dict[str, Any]) -> float | None:
    """A result file's baseline accuracy: the surrogate's, else the one its summary used."""
    summary = next(iter(doc["summary"].values()), {}).get("with_baselines", {})
    return doc["table"].get("baseline_value", summary.get("baseline_value"))


def resummarize(path: Path) -> None:
    """The statistics of a result file again, from its recorded runs (no run is replayed)."""
    doc = json.loads(path.read_text())
    doc["summary"] = summaries(
        doc["runs"],
        budget=doc["budget"],
        baseline_value=_recorded_baseline_value(doc),
        baseline_expected=doc["table"].get("baseline_expected"),
    )
    path.write_text(json.dumps(doc) + "\n")
    print(f"resummarized {path}")


def hpsearch_settings_record() -> dict[str, int]:
    from hpsearch._study import DEFAULT_VALUE_WINDOW
    from hpsearch._study import FORMAT_VERSION

    return {"version": FORMAT_VERSION, "value_window": DEFAULT_VALUE_WINDOW}


def merge(
    paths: list[Path], out: Path, replace: list[Path] | None = None, rename: dict[str, str] | None = None
) -> None:
    """One result file from the runs of several: each method's runs from the first file that has
    them, except that a method in a ``replace`` file takes its runs from there (the first such file).
    ``rename`` (old -> new, new "" drops it) renames methods of the ``paths`` files, not of the
    replacements: how an earlier default's runs stay beside a new default's (``hpsearch-v3*``).
    The files must replay the same task, budget, seeds and landscape. Runs of hpsearch's
    strategies do not depend on ``--peer-cost`` (only the peers' clock does), so they may come from
    a file with the other setting; a peer's runs may not."""
    replace = replace or []
    paths = [*replace, *paths]  # the replacements first: a method's runs come from the first file
    docs = [json.loads(p.read_text()) for p in paths]
    for doc in docs[len(replace) :]:
        for w, by_method in doc["runs"].items():
            renamed = {(rename or {}).get(m, m): rs for m, rs in by_method.items()}
            doc["runs"][w] = {m: rs for m, rs in renamed.items() if m}
    first = docs[len(replace)]  # the first file of ``paths`` gives the clock and the table's record
    same = ("task", "budget", "seeds", "seed_offset", "max_epochs")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path, doc in zip(paths, docs):
        for k in same:
            if doc.get(k) != first.get(k):
                raise SystemExit(f"{path}: {k} is {doc.get(k)!r}, not {first.get(k)!r} as in {paths[len(replace)]}")
        if doc["table"].get("lookup") != first["table"].get("lookup"):
            raise SystemExit(f"{path}: another landscape than {paths[len(replace)]}")
        other_clock = doc["table"].get("peer_cost", "trial-path") != first["table"].get("peer_cost", "trial-path")
        for w, by_method in doc["runs"].items():
            for m, rs in by_method.items():
                if m in runs.get(w, {}):
                    continue
                if other_clock and not methods()[m].hpsearch:
                    continue  # a peer's runs depend on the clock
                runs.setdefault(w, {})[m] = rs
    first = dict(first)
    first.update(
        runs=runs,
        summary=summaries(
            runs,
            budget=first["budget"],
            baseline_value=_recorded_baseline_value(first),
            baseline_expected=first["table"].get("baseline_expected"),
        ),
        # The settings of the file the hpsearch* runs came from (the first that has them); none recorded
        # before stop 26: settings version 3, a trial's value its best epoch.
        hpsearch_settings=next(
            (
                d.get("hpsearch_settings")
                for d in docs
                if any(m.startswith("hpsearch") for by_method in d["runs"].values() for m in by_method)
            ),
            None,
        ),
        command=" ; ".join(f"[{p.name}] {d.get('command')}" for p, d in zip(paths, docs)),
        seconds=round(sum(d.get("seconds", 0.0) for d in docs), 1),
        merged_from=[p.name for p in paths],
        **({"renamed": rename} if rename else {}),
    )
    if replace:
        first["replaced"] = [
            {
                "file": p.name,
                "methods": sorted({m for by_method in d["runs"].values() for m in by_method}),
                "date": d.get("machine", {}).get("date"),
                "command": d.get("command"),
            }
            for p, d in zip(paths[: len(replace)], docs)
        ]
    out.write_text(json.dumps(first) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{w} workers: {sorted(r)}" for w, r in runs.items()))


# -- driver ---------------------------------------------------------------------------------------
# What BENCHMARKS.md reports, each run's arguments (``--all`` runs them in order).
REPORT_METHODS = "hpsearch,hpsearch-nobaseline,hpsearch-prior,tpe,tpe-hyperband,random,kt-hyperband"
# The defaults were chosen on seeds 0-99 (the candidates' screen); the report runs seeds 100-199.
_REPORT = ["--seeds", "100", "--seed-offset", "100", "--budget", "420"]
_CNN = ["--seeds", "100", "--seed-offset", "100", "--budget", "1200"]
_W4_METHODS = "hpsearch,hpsearch-nobaseline,tpe,tpe-hyperband,random"  # Keras Tuner's oracle: one worker
# (also the 16-worker run's methods)
_W16 = ["--seeds", "100", "--seed-offset", "100", "--workers", "16", "--methods", _W4_METHODS]
ALL_RUNS: list[list[str]] = [
    ["--surrogate", *_REPORT, "--methods", REPORT_METHODS],
    ["--surrogate", *_REPORT, "--workers", "4", "--methods", _W4_METHODS],
    [*_REPORT, "--methods", REPORT_METHODS],
    # The product against a ten-line script: the peers pay a plain model.fit (class PeerCost).
    ["--surrogate", "--peer-cost", "plain", *_REPORT, "--methods", REPORT_METHODS],
    [
        "--surrogate",
        "--peer-cost",
        "plain",
        *_REPORT,
        "--workers",
        "4",
        "--methods",
        _W4_METHODS,
    ],
    # 16 workers at a quarter of the budget: the same 1,680 worker-seconds as 4 workers x 420 s (a team
    # with 16 GPUs wants its answer sooner, not 4x the search). 16 x 420 s would run ~2,500 trials a
    # run and cost ~100 s of one core per seed of hpsearch (TPE's cost grows with the trials it has
    # seen), ~4.5 h for these methods; at 105 s ~60 s per seed for all five.
    ["--surrogate", *_W16, "--budget", "105"],
    # A second landscape: mnist_cnn's table, recorded on one machine in one precision (an Intel Xeon with
    # AMX-BF16, mixed_bfloat16: NOTES, stops 25 and 26). 1200 s holds about as many full trials there
    # (mean 18 s) as 420 s does on mnist_mlp's table (mean 6.2 s).
    ["--task", "mnist_cnn", "--surrogate", *_CNN, "--methods", REPORT_METHODS],
    ["--task", "mnist_cnn", *_CNN, "--methods", REPORT_METHODS],
    ["--task", "mnist_cnn", "--surrogate", *_CNN, "--workers", "4", "--methods", _W4_METHODS],
    # mnist_cnn at 16 workers, at a quarter of the budget as on mnist_mlp: the same 4,800 worker-seconds
    # as 4 x 1200 s. Stops 30 and 31 ran it one method per file (results/replay-2026-12-06b/, 7,912 s on
    # 2 lanes in all, most of it hpsearch's two methods) and merged them with --merge into results/replay/.
    ["--task", "mnist_cnn", "--surrogate", *_W16, "--budget", "300"],
]
_TABLE: Table | None = None


def _init(task: str, max_epochs: int, cpu: int | None, surrogate: bool = False, peer_cost: str = "trial-path") -> None:
    global _TABLE
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    _TABLE = load_table(task, max_epochs, surrogate=surrogate, peer_cost=peer_cost)


def _one(job: tuple[str, int, float, int]) -> tuple[str, int, int, dict[str, Any]]:
    name, seed, budget, workers = job
    assert _TABLE is not None
    r = simulate(methods()[name], _TABLE, seed=seed, budget=budget, workers=workers)
    return name, seed, workers, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="mnist_mlp")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--budget", type=float, default=300.0, help="simulated seconds per run")
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument("--methods", default="hpsearch,hpsearch-nobaseline,tpe,tpe-hyperband,random,kt-hyperband")
    ap.add_argument("--workers", default="1", help="comma-separated worker counts, e.g. 1,4,16")
    ap.add_argument("--lanes", type=int, default=1, help="processes, each pinned to its own CPU")
    ap.add_argument(
        "--surrogate",
        action="store_true",
        help="replay a random-forest surrogate of the table with measured training noise (class Surrogate)",
    )
    ap.add_argument(
        "--peer-cost",
        choices=("trial-path", "plain"),
        default="trial-path",
        help="what plain Optuna and Keras Tuner pay per epoch: hpsearch's trial path (the search alone) "
        "or a plain model.fit, measured (class PeerCost)",
    )
    ap.add_argument("--out", help="default benchmarks/results/replay/<task>_budget<B>[_surrogate][_w<W>].json")
    ap.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="first seed: the defaults were chosen on seeds 0-99, so the report runs on fresh ones",
    )
    ap.add_argument("--out-dir", help="where the default file names go (default benchmarks/results/replay)")
    ap.add_argument("--all", action="store_true", help="every run BENCHMARKS.md reports (ALL_RUNS), one by one")
    ap.add_argument("--resummarize", nargs="+", metavar="FILE", help="recompute the statistics of result files")
    ap.add_argument(
        "--merge", nargs="+", metavar="FILE", help="one result file (--out) from the runs of several (function merge)"
    )
    ap.add_argument(
        "--replace",
        nargs="+",
        metavar="FILE",
        help="with --merge: the methods in these files take their runs from them",
    )
    ap.add_argument(
        "--rename",
        nargs="+",
        metavar="OLD=NEW",
        help="with --merge: rename methods of the --merge files (NEW empty: drop them), e.g. hpsearch=hpsearch-v3",
    )
    a = ap.parse_args()
    if a.merge:
        if not a.out:
            ap.error("--merge needs --out FILE")
        rename = dict(r.split("=", 1) for r in a.rename or [])
        merge([Path(f) for f in a.merge], Path(a.out), [Path(f) for f in a.replace or []], rename)
        return
    if a.resummarize:
        for f in a.resummarize:
            resummarize(Path(f))
        return
    if a.all:
        extra = [f"--lanes={a.lanes}"] + ([f"--out-dir={a.out_dir}"] if a.out_dir else [])
        for argv in ALL_RUNS:
            print(f"\n### replay_bench.py {' '.join(argv)}", flush=True)
            run(ap, ap.parse_args(argv + extra), argv)
        return
    run(ap, a, sys.argv[1:])


def run(ap: argparse.ArgumentParser, a: argparse.Namespace, argv: list[str]) -> None:
    names = [m for m in a.methods.split(",") if m]
    unknown = sorted(set(names) - set(methods()))
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {sorted(methods())}")
    table = load_table(a.task, a.max_epochs, surrogate=a.surrogate, peer_cost=a.peer_cost)
    jobs = [
        (m, s, a.budget, int(w))
        for w in a.workers.split(",")
        for s in range(a.seed_offset, a.seed_offset + a.seeds)
        for m in names
        if not (methods()[m].kind == "kt" and int(w) > 1)
    ]
    t0 = time.time()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pools = None
    it: Iterator[tuple[str, int, int, dict[str, Any]]]
    if a.lanes > 1:
        ctx = mp.get_context("fork")
        pools = ctx.Pool(a.lanes, initializer=_init, initargs=(a.task, a.max_epochs, None, a.surrogate, a.peer_cost))
        it = pools.imap_unordered(_one, jobs, chunksize=1)
    else:
        _init(a.task, a.max_epochs, None, a.surrogate, a.peer_cost)
        it = map(_one, jobs)
    for k, (name, seed, workers, r) in enumerate(it):
        results.setdefault(str(workers), {}).setdefault(name, []).append({"seed": seed, **r})
        if (k + 1) % 50 == 0 or k + 1 == len(jobs):
            el = time.time() - t0
            print(f"{k + 1}/{len(jobs)} runs, {el:.0f} s, ~{el / (k + 1) * (len(jobs) - k - 1):.0f} s left", flush=True)
    if pools is not None:  # closed here, not by the interpreter's exit (its noise on stderr)
        pools.close()
        pools.join()
    summary = summaries(
        results, budget=a.budget, baseline_value=table.baseline_value(), baseline_expected=table.baseline_expected()
    )
    suffix = (
        ("_surrogate" if a.surrogate else "")
        + ("_plaincost" if a.peer_cost == "plain" else "")
        + ("" if a.workers == "1" else f"_w{a.workers.replace(',', '-')}")
    )
    out_dir = Path(a.out_dir) if a.out_dir else _machine.RESULTS / "replay"
    out = Path(a.out) if a.out else out_dir / f"{a.task}_budget{int(a.budget)}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "kind": "replay",
        "task": a.task,
        "budget": a.budget,
        "seeds": a.seeds,
        "seed_offset": a.seed_offset,
        "max_epochs": a.max_epochs,
        "table": {
            "configs": len(table.rows),
            "best": table.best(),
            "recorded_on": sorted({r.get("cpu_model", "?") for r in table.rows}),
            "lookup": "surrogate" if isinstance(table, Surrogate) else "nearest",
            "peer_cost": a.peer_cost,
            **({"peer_cost_model": table.peer_cost.summary} if table.peer_cost is not None else {}),
            **(
                {
                    "fidelity": table.fidelity,
                    "noise_curves": len(table.noise),
                    "noise_neighbours": table.NOISE_NEIGHBOURS,
                    "noise_sd_at_0.95": round(table.noise_sd_at_095, 4),
                    "baseline_value": table.baseline_value(),
                    "baseline_expected": table.baseline_expected(),
                }
                if isinstance(table, Surrogate)
                else {}
            ),
        },
        # What the methods named hpsearch* (not c:*) ran: the settings of hpsearch's new studies then.
        "hpsearch_settings": hpsearch_settings_record(),
        "machine": _machine.machine(),
        "command": "python benchmarks/replay_bench.py " + " ".join(argv),
        "seconds": round(time.time() - t0, 1),
        "summary": summary,
        "runs": results,
    }
    out.write_text(json.dumps(doc) + "\n")
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    for w, s in summary.items():
        for kind, d in s.items():
            print(
                f"\n== workers {w}, {kind}: focus {d.get('focus')} vs best peer {d.get('best_peer')} "
                f"(target {d.get('target')})"
            )
            for m, x in d["methods"].items():
                print(
                    f"  {m:<22} best {x['best_median']:.4f} [{x['best_ci'][0]:.4f}, {x['best_ci'][1]:.4f}] "
                    f"ttt {x.get('ttt_median')} reached {x.get('reached', 0):.2f} trials {x['trials']:.0f}"
                )
            print(
                f"  time ratio {d.get('time_ratio')} p={d.get('goal1_p')} met={d.get('goal1_met')}; "
                f"best-at-budget p={d.get('goal2_p')} met={d.get('goal2_met')}; "
                f"beats baseline {d.get('beats_baseline_fraction')}"
            )


if __name__ == "__main__":
    main()

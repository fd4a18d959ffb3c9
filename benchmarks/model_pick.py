"""A candidate pick rule, measured on the replay and not adopted (stop 32, ``pick_bound.py``): the
complete trial whose params a Gaussian process, fitted to every complete trial, rates best.

Why it was tried: a trial's value is one noisy training run, so the trial ``study.best_trial`` names
is the luckiest measurement (the winner's curse; ``search/_recheck.py``). On the replay a pick that
knew every complete trial's worth would be worth +0.0025 more on mnist_cnn at 4 workers (and meet
goal 1 there), +0.0023 on mnist_mlp at 1 worker. Noisy Bayesian optimisation recommends the best
posterior mean among the evaluated points; a configuration's neighbours are measurements of nearly
the same thing. What it gave: less than ``study.best_trial`` on both tasks (BENCHMARKS.md, notes of
stop 32), so the product keeps ``best_trial`` and ``recheck``.

How: each complete trial's params are encoded in [0, 1] per numeric parameter (log scale where the
distribution is log), one-hot per categorical one, an inactive conditional parameter as -0.5; its
value on the logit scale; scikit-learn's ``GaussianProcessRegressor`` (constant x RBF, one length
scale per input or one for all, plus white noise; hyperparameters by maximum marginal likelihood);
the pick is the trial with the highest posterior mean at its own params. Below ``MIN_TRIALS``
complete trials the pick is the best value, as Optuna's.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import Any

import numpy as np

MIN_TRIALS = 5


def encode(params: Sequence[Mapping[str, Any]], distributions: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """One row per trial: numeric parameters scaled to [0, 1] (log where the distribution is log),
    categorical ones one-hot, an inactive (absent) parameter as -0.5 or all zeros."""
    import optuna

    dists: dict[str, Any] = {}
    for d in distributions:
        for name, dist in d.items():
            dists.setdefault(name, dist)
    rows = []
    for p in params:
        out: list[float] = []
        for name in sorted(dists):
            d, v = dists[name], p.get(name)
            if isinstance(d, optuna.distributions.CategoricalDistribution):
                out += [1.0 if v is not None and v == c else 0.0 for c in d.choices]
            elif v is None:
                out.append(-0.5)
            else:
                lo, hi = float(d.low), float(d.high)
                if getattr(d, "log", False):
                    x = (math.log(float(v)) - math.log(lo)) / (math.log(hi) - math.log(lo))
                else:
                    x = (float(v) - lo) / (hi - lo) if hi > lo else 0.0
                out.append(x)
        rows.append(out)
    return np.asarray(rows, dtype="float64")


def posterior_means(
    params: Sequence[Mapping[str, Any]],
    distributions: Sequence[Mapping[str, Any]],
    values: Sequence[float],
    *,
    ard: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """The fitted model's mean value (back on the accuracy scale) at each trial's own params."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF
    from sklearn.gaussian_process.kernels import ConstantKernel
    from sklearn.gaussian_process.kernels import WhiteKernel

    x = encode(params, distributions)
    v = np.clip(np.asarray(values, dtype="float64"), 1e-3, 1 - 1e-3)
    y = np.log(v / (1 - v))
    dims = x.shape[1] if ard else 1
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(np.full(dims, 0.5), (1e-2, 1e2)) + WhiteKernel(0.1, (1e-4, 1e1))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    with warnings.catch_warnings():  # hyperparameters at a bound: still a usable fit
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(x, y)
    m = np.asarray(gp.predict(x), dtype="float64")
    return 1.0 / (1.0 + np.exp(-m))


def model_pick_index(
    params: Sequence[Mapping[str, Any]],
    distributions: Sequence[Mapping[str, Any]],
    values: Sequence[float],
    *,
    ard: bool = True,
    min_trials: int = MIN_TRIALS,
) -> int:
    """The index of the pick among the given complete trials (see the module doc)."""
    if not values:
        raise ValueError("no complete trial to pick from")
    if len(values) < min_trials:
        return int(np.argmax(values))
    return int(np.argmax(posterior_means(params, distributions, values, ard=ard)))

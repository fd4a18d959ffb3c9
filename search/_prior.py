"""The seed baselines as a prior: start-up trials sampled around known-good configurations.

Optuna has no user-prior sampler (πBO, PriorBand): ``TPESampler(prior_weight=...)`` weights its
flat prior over the whole space, not a user's configuration, and OptunaHub's prior samplers are not a
maintained dependency. This small wrapper is therefore written here. It delegates to the study's
sampler (TPE), except that with probability ``weight * horizon / (horizon + n)`` (``n`` = the trial's
number; the prior decays as evidence grows, as in πBO) a trial is drawn around one baseline instead:

- numeric parameters: a normal step of ``scale`` times the parameter's range (on its log scale where
  the space is log), reflected into the bounds;
- categorical parameters: the baseline's value with probability ``keep``, else uniform;
- parameters the baseline does not set (a conditional layer it lacks): the wrapped sampler.

The centre is the best baseline evaluated so far in the study (user attribute ``baseline``), or a
random one before any is evaluated. Enqueued trials (the baselines themselves) are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


class BaselinePriorSampler(BaseSampler):
    def __init__(
        self,
        base: BaseSampler,
        baselines: Sequence[dict[str, Any]],
        *,
        seed: int | None = None,
        weight: float = 0.5,
        horizon: float = 10.0,
        scale: float = 0.15,
        keep: float = 0.75,
    ) -> None:
        self._base = base
        self._baselines = [dict(b) for b in baselines]
        self._rng = np.random.RandomState(seed)
        self._weight = weight
        self._horizon = horizon
        self._scale = scale
        self._keep = keep
        self._centres: dict[int, dict[str, Any]] = {}  # trial number -> the baseline it is drawn around

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._rng.seed()

    def prior_probability(self, number: int) -> float:
        return self._weight * self._horizon / (self._horizon + number)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        if not self._baselines or "fixed_params" in trial.system_attrs:
            return
        if self._rng.rand() < self.prior_probability(trial.number):
            self._centres[trial.number] = self._centre(study)

    def _centre(self, study: Study) -> dict[str, Any]:
        scored: list[tuple[float, int]] = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            i = t.user_attrs.get("baseline")
            if isinstance(i, int) and 0 <= i < len(self._baselines) and t.value is not None:
                scored.append((t.value if study.direction.name == "MAXIMIZE" else -t.value, i))
        if scored:
            return self._baselines[max(scored)[1]]
        return self._baselines[self._rng.randint(len(self._baselines))]

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number in self._centres:
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        centre = self._centres.get(trial.number)
        if centre is None or param_name not in centre:
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        return self._perturb(centre[param_name], param_distribution)

    def _perturb(self, value: Any, dist: BaseDistribution) -> Any:
        if isinstance(dist, CategoricalDistribution):
            if value in dist.choices and self._rng.rand() < self._keep:
                return value
            return dist.choices[self._rng.randint(len(dist.choices))]
        assert isinstance(dist, (FloatDistribution, IntDistribution))
        lo, hi = float(dist.low), float(dist.high)
        to = math.log if dist.log else float
        a, b = to(lo), to(hi)
        x = to(min(max(float(value), lo), hi))
        x += self._rng.normal(0.0, self._scale * (b - a))
        while x < a or x > b:  # reflect into the bounds
            x = 2 * a - x if x < a else 2 * b - x
        v = math.exp(x) if dist.log else x
        if isinstance(dist, IntDistribution):
            step = dist.step
            return int(min(max(round((v - lo) / step) * step + lo, lo), hi))
        if dist.step is not None:
            v = round((v - lo) / dist.step) * dist.step + lo
        return float(min(max(v, lo), hi))

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._centres.pop(trial.number, None)
        self._base.after_trial(study, trial, state, values)


__all__ = ["BaselinePriorSampler"]

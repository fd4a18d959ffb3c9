"""Optuna's Hyperband pruner with one query per epoch less.

``HyperbandPruner.prune`` runs after every epoch and builds a per-bracket view of the study as a new
``Study`` each time; ``Study.__init__`` reads the study's id by its name from the storage (a round
trip per epoch, ~1-5 ms on PostgreSQL). The view depends only on the study and the bracket, so it
is built once per worker and reused. The pruning decisions are Optuna's own, unchanged.

The view is also what the sampler samples from (``optuna.pruners._filter_study``), and a
``Study`` caches its trials per thread (``_get_trials(use_cache=True)``, which TPE uses). Optuna
clears that cache on the study that asks and tells, never on a bracket view, because its views are
new on every call. A reused view must therefore start each call with an empty cache too, or TPE
keeps seeing the bracket as it was at the first call (no trials: random sampling for ever; the
bug from 2026-11-23 to 2026-12-04, found by the surrogate replay).
"""

from __future__ import annotations

from typing import Any

import optuna


class HyperbandPruner(optuna.pruners.HyperbandPruner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (id(study), bracket) -> (study, its bracket view); the study is kept so its id stays its own
        self._bracket_studies: dict[tuple[int, int], tuple[Any, Any]] = {}

    def _create_bracket_study(self, study: optuna.study.Study, bracket_id: int) -> optuna.study.Study:
        key = (id(study), bracket_id)
        hit = self._bracket_studies.get(key)
        if hit is None or hit[0] is not study:
            hit = (study, super()._create_bracket_study(study, bracket_id))
            self._bracket_studies[key] = hit
        hit[1]._thread_local.cached_all_trials = None  # as a new view would be (see the module doc)
        return hit[1]

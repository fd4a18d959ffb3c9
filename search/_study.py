"""Study settings, creation and loading.

A study records its task and settings in its user attributes (``task``, ``settings``,
``dataset``), so a worker needs only the study name, and optuna-dashboard shows them.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import logging
import time
from typing import Any

from ._errors import UsageError
from .objectives import get_task
from .objectives import validate_params
from .objectives._registry import task_options
from .storage import StorageError
from .storage import mask_url

_logger = logging.getLogger("hpsearch")

SAMPLERS = ("tpe", "random", "gp")
PRUNERS = ("hyperband", "median", "none")
SETTINGS_KEY = "settings"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class StudySettings:
    """Everything a worker needs besides the study name; stored as the ``settings`` user attr."""

    task: str
    sampler: str = "tpe"
    pruner: str = "hyperband"
    max_epochs: int = 10
    seed: int | None = 0
    n_trials: int | None = None  # study-wide cap on finished (COMPLETE + PRUNED) trials
    baselines: bool = True
    task_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None  # default for workers; `worker --data-dir` overrides
    data_seed: int = 0  # seed of the train/val/test split
    version: int = FORMAT_VERSION

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> StudySettings:
        known = {k: v for k, v in attr.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def differences(self, other: StudySettings, only: set[str] | None = None) -> list[str]:
        """``key: ours != theirs`` for each differing setting (``data_dir`` is a location, not compared)."""
        a, b = self.to_attr(), other.to_attr()
        keys = [k for k in a if k not in ("data_dir", "version") and (only is None or k in only)]
        return [f"{k}: existing {b[k]!r} != requested {a[k]!r}" for k in keys if a[k] != b[k]]


def validate_settings(s: StudySettings) -> Any:
    """Check everything before anything is written; return the task object."""
    if s.sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {s.sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if s.pruner not in PRUNERS:
        raise UsageError(f"unknown pruner {s.pruner!r}: choose one of {', '.join(PRUNERS)}")
    if s.sampler == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError(
                "--sampler gp needs PyTorch (Optuna's GPSampler): pip install 'hpsearch[gp]', or choose --sampler tpe"
            ) from None
    task = get_task(s.task)
    task_options(task, s.task_options)
    for i, params in enumerate(getattr(task, "baselines", []) or []):
        try:
            validate_params(task, params)
        except Exception as e:  # a task's own baselines must lie in its space
            raise UsageError(f"task {s.task!r} baseline {i} is not in its search space: {e}") from None
    return task


def make_sampler(s: StudySettings, worker_index: int = 0) -> Any:
    """The sampler of a worker. Workers of one study get different seeds, else they would all
    propose the same random start-up points."""
    import optuna

    seed = None if s.seed is None else s.seed * 1009 + worker_index
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def make_pruner(s: StudySettings) -> Any:
    import optuna

    if s.pruner == "hyperband":
        from ._pruners import HyperbandPruner

        return HyperbandPruner(min_resource=1, max_resource=s.max_epochs, reduction_factor=3)
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def read_settings(study: Any) -> StudySettings:
    attr = study.user_attrs.get(SETTINGS_KEY)
    if not isinstance(attr, dict) or "task" not in attr:
        raise StorageError(
            f"study {study.study_name!r} was not created by hpsearch (no settings); "
            "create one with `hpsearch create --task TASK --study NAME`"
        )
    return StudySettings.from_attr(attr)


def study_exists(storage: Any, name: str) -> bool:
    import optuna

    try:
        storage.get_study_id_from_name(name)
        return True
    except KeyError:
        return False
    except optuna.exceptions.StorageInternalError:
        raise


def load_study(
    storage: Any, name: str, *, url: str, settings: StudySettings | None = None, worker_index: int = 0
) -> Any:
    """Load an existing study; a missing one is a ``StorageError`` naming ``hpsearch create``."""
    import optuna

    if not study_exists(storage, name):
        names = [s.study_name for s in storage.get_all_studies()]
        known = f" (studies here: {', '.join(names)})" if names else ""
        raise StorageError(
            f"no study {name!r} in {mask_url(url)}{known}; create it with `hpsearch create --task TASK --study {name}`"
        )
    study = optuna.load_study(study_name=name, storage=storage)
    if settings is None:
        return study
    return optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(settings, worker_index),
        pruner=make_pruner(settings),
    )


def describe(task: Any, s: StudySettings) -> str:
    """A study note in words: the task and its search space (shown by optuna-dashboard)."""
    import inspect

    lines = [f"# {s.task}", "", getattr(task, "description", "") or "", ""]
    lines.append(
        f"Sampler **{s.sampler}**, pruner **{s.pruner}** on per-epoch validation accuracy, "
        f"at most {s.max_epochs} epochs per trial"
        + (f", study cap {s.n_trials} finished trials" if s.n_trials else "")
        + (f", seed {s.seed}" if s.seed is not None else "")
        + "."
    )
    try:
        src = inspect.getsource(task.search_space)
        lines += ["", "Search space (`search_space`):", "", "```python", src.rstrip(), "```"]
    except (OSError, TypeError):
        pass
    baselines = getattr(task, "baselines", []) or []
    if s.baselines and baselines:
        lines += [
            "",
            f"The first {len(baselines)} trial(s) are the seed notebook's own configurations "
            "(user attribute `baseline`).",
        ]
    return "\n".join(lines)


def create_study(
    storage: Any, name: str, s: StudySettings, *, url: str, exist_ok: bool = False, compare: set[str] | None = None
) -> tuple[Any, bool]:
    """Create the study with its settings and baselines; return (study, created).

    An existing study is an error unless ``exist_ok``; then its settings must equal ``s``
    (restricted to the keys in ``compare`` when given), else the error names the differences.
    A failure after the study row exists deletes it again: a study is never half-created.
    """
    import optuna

    task = validate_settings(s)

    def existing() -> tuple[Any, bool]:
        if not exist_ok:
            raise UsageError(
                f"study {name!r} already exists in {mask_url(url)}; pick another --study, "
                "pass --exist-ok to reuse it, or run `hpsearch worker --study "
                f"{name}` to add trials"
            )
        study = load_study(storage, name, url=url)
        diffs = s.differences(_settings_when_written(study), only=compare)
        if diffs:
            raise UsageError(f"study {name!r} exists with different settings: {'; '.join(diffs)}")
        return study, False

    if study_exists(storage, name):
        return existing()
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:  # a concurrent `create` won the race
        return existing()
    try:
        study.set_user_attr("task", s.task)
        study.set_user_attr("description", getattr(task, "description", ""))
        if s.baselines:
            for i, params in enumerate(getattr(task, "baselines", []) or []):
                study.enqueue_trial(params, user_attrs={"baseline": i}, skip_if_exists=True)
        _set_note(study, task, s)
        # Settings last: a study without them is not usable by workers (they say so).
        study.set_user_attr(SETTINGS_KEY, s.to_attr())
    except BaseException:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except Exception:  # the original error is the one to show
            _logger.error("could not delete half-created study %r; delete it with `optuna delete-study`", name)
        raise
    return study, True


def _settings_when_written(study: Any, wait: float = 30.0) -> StudySettings:
    """The study's settings; a study that a concurrent ``create`` is still writing (its settings
    are its last attribute) is waited for, up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while SETTINGS_KEY not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.2)
    return read_settings(study)


def _set_note(study: Any, task: Any, s: StudySettings) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    save_note(study, describe(task, s))

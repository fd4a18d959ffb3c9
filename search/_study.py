"""Study settings, creation and loading.

A study records its task and settings in its user attributes (``task``, ``settings``,
``dataset``), so a worker needs only the study name, and optuna-dashboard shows them.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
import logging
import time
from typing import Any

from ._errors import UsageError
from .objectives import CustomFitInputs
from .objectives import Task
from .objectives import TaskError
from .objectives import get_task
from .objectives import prune_after_epochs
from .objectives import validate_params
from .objectives._registry import task_options
from .objectives._space import record
from .objectives._space import unsuggested_keys
from .storage import StorageError
from .storage import mask_url

_logger = logging.getLogger("hpsearch")

SAMPLERS = ("tpe", "random", "gp")
PRUNERS = ("asha", "hyperband", "median", "none")
SETTINGS_KEY = "settings"
# 1: steps 0-based (Keras' epoch index), ASHA factor 3. 2 (2026-12-05): a step is the number of epochs
# done (1-based), so that ASHA's lowest rung can come after the first epoch, and ASHA keeps a quarter.
# 3 (2026-12-05): ``prune_after``, the epochs before a trial can first be pruned, from the task
# (``prune_after_epochs``, 4 for cifar10_cnn) or ``create --prune-after``; versions 1 and 2 read as 1.
# 4 (2026-12-05, stop 26): ``value_window``, a complete trial's value is the best mean of that many
# consecutive epochs' val accuracy (default 3), not its single best epoch; versions 1-3 read as 1.
# 5 (2026-12-06, stop 33): ``live_recheck``, each new best of the search is trained once more while it
# runs and the pick reads the mean of its runs (``_recheck.py``); versions 1-4 read as off.
# 6 (2026-12-07, stop 35): a live-recheck study's pick compares the lead with re-measured baselines
# only, not with the search's earlier leads (``_recheck.py``); version 5 keeps its eager rule.
# 7 (2026-12-07, stop 38): a worker with a deadline (``--timeout``) re-measures a lead only while its
# time left is at least ``_recheck.LIVE_HEADROOM`` times the lead's training time (a baseline that
# leads: always); versions 5-6 re-measure every lead.
# 8 (2026-12-07, stop 39): a trial whose best val accuracy after ``constant_answer_after`` epochs is no
# better than always answering the validation split's most common class is pruned (``_objective.py``);
# versions 1-7 leave such a trial to the pruner, which keeps a search's first trial at every rung. And
# the search's first complete trial is not re-measured for leading (a baseline still is;
# ``_recheck.py``).
# A study keeps the version it was created with: its workers prune it as they always did, and an
# older hpsearch refuses a newer study rather than prune it its own way.
FORMAT_VERSION = 8
# The default ``value_window``. One epoch's val accuracy is one noisy draw (binomial sd ~0.007 at 0.95
# on 1,000 images); the best single epoch of the best trial is the luckiest draw of the search, which
# both TPE (ranking trials) and the pick (``study.best_trial``) read. The best mean of 3 consecutive
# epochs lifted what the pick is worth on the replay benchmark: mnist_cnn 0.9810 against 0.9795 (p =
# 0.0045, fresh seeds), mnist_mlp 0.9414 against 0.9400 (p = 0.0007; on fresh seeds 0.9410 against
# 0.9401, p = 0.15). BENCHMARKS.md, notes of stop 26.
DEFAULT_VALUE_WINDOW = 3
# The default ``live_recheck``: on the replay benchmark (100 seeds, paired with version 4 on the same
# seeds) it lifted what the pick is worth on mnist_cnn at 4 workers (0.9826 against 0.9810, p = 0.036)
# and, with baselines, met the time goal there (p = 0.027, version 4: 0.09); on mnist_mlp at 1 worker
# it left the worth level without baselines and lifted it with them (0.9473 against 0.9443). Its cost:
# on mnist_mlp at 1 worker without baselines the target is reached later in 52 % of seeds, earlier in
# 39 % (not significant); on mnist_mlp at 4 workers it lowered the worth without baselines (0.9427
# against 0.9437, p = 0.0009) and lifted it with them (0.9461 against 0.9447). On with baselines (the
# default) everywhere measured; BENCHMARKS.md, notes of stop 33.
DEFAULT_LIVE_RECHECK = True
# Bounds on input. 10,000 epochs is far beyond any search or final training here (the seed
# notebooks train 10-50); a larger number is a typo that would train until killed.
MAX_EPOCHS = 10_000
# Optuna's studies.study_name column is VARCHAR(512) (models.MAX_INDEXED_STRING_LENGTH).
MAX_STUDY_NAME = 512


def check_study_name(name: str) -> None:
    """A study name must be non-empty and fit Optuna's column; else ``UsageError`` (exit 2)."""
    if not name or not name.strip():
        raise UsageError("the study name is empty; give --study NAME")
    if len(name) > MAX_STUDY_NAME:
        raise UsageError(
            f"the study name is {len(name)} characters long, more than {MAX_STUDY_NAME}; give a shorter --study"
        )


@dataclass(frozen=True)
class StudySettings:
    """Everything a worker needs besides the study name; stored as the ``settings`` user attr."""

    task: str
    sampler: str = "tpe"
    pruner: str = "asha"
    max_epochs: int = 10
    seed: int | None = 0
    n_trials: int | None = None  # study-wide cap on finished (COMPLETE + PRUNED) trials
    baselines: bool = True  # enqueue the baselines as the first trials
    # Also sample start-up trials around them (BaselinePriorSampler). Off by default: on the replay
    # benchmark it did not raise the median best-at-budget (BENCHMARKS.md), so it is opt-in.
    baseline_prior: bool = False
    user_baselines: list[dict[str, Any]] = field(default_factory=list)  # `create --baseline FILE`
    task_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None  # default for workers; `worker --data-dir` overrides
    data_seed: int = 0  # seed of the train/val/test split
    # Epochs before a pruner may first stop a trial; None: the task's own (``prune_after_epochs``,
    # default 1), resolved by ``create_study`` so that the study stores a number.
    prune_after: int | None = None
    # A complete trial's value: the best mean of this many consecutive epochs (its best_epoch: the last
    # of them); None: DEFAULT_VALUE_WINDOW or --max-epochs if fewer, resolved by ``create_study``.
    value_window: int | None = None
    # Re-measure each new best while the search runs (``_recheck.enqueue_live_recheck``); None:
    # DEFAULT_LIVE_RECHECK, resolved by ``create_study``.
    live_recheck: bool | None = None
    version: int = FORMAT_VERSION

    @property
    def first_step(self) -> int:
        """The step reported after the first epoch: 1 (epochs done) from version 2, else 0."""
        return 1 if self.version >= 2 else 0

    @property
    def constant_answer_after(self) -> int:
        """From version 8, with a pruner: the epochs after which a trial no better than a constant
        answer is pruned (the task's ``prune_after``, at least 2: on the replay tables a configuration
        at that level after one epoch sometimes learns later; BENCHMARKS.md, notes of stop 39); else 0."""
        if self.version < 8 or self.pruner == "none":
            return 0
        return max(2, self.prune_after or 1)

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> StudySettings:
        known = {k: v for k, v in attr.items() if k in cls.__dataclass_fields__}
        known.setdefault("version", 1)  # stored before the version was recorded: the first format
        known.setdefault("prune_after", 1)  # versions 1 and 2 could prune after the first epoch
        known.setdefault("value_window", 1)  # versions 1-3: a trial's value was its best epoch
        known.setdefault("live_recheck", False)  # versions 1-4: no live recheck
        return cls(**known)

    def resolved(self, task: Task) -> StudySettings:
        """These settings with ``prune_after`` taken from the task and ``value_window`` from the
        default where not given."""
        out = self if self.prune_after is not None else replace(self, prune_after=prune_after_epochs(task))
        if out.value_window is None:
            out = replace(out, value_window=min(DEFAULT_VALUE_WINDOW, out.max_epochs))
        if out.live_recheck is None:  # a study of versions 1-4 has none (a test writes such studies)
            out = replace(out, live_recheck=DEFAULT_LIVE_RECHECK if out.version >= 5 else False)
        return out

    def differences(
        self, other: StudySettings, only: set[str] | None = None, ignore: frozenset[str] | set[str] = frozenset()
    ) -> list[str]:
        """``key: ours != theirs`` for each differing setting (``data_dir`` is a location, not compared)."""
        a, b = self.to_attr(), other.to_attr()
        keys = [k for k in a if k not in ("data_dir", "version", *ignore) and (only is None or k in only)]
        return [f"{k}: existing {b[k]!r} != requested {a[k]!r}" for k in keys if a[k] != b[k]]


def validate_settings(s: StudySettings) -> Task:
    """Check everything before anything is written; return the task object."""
    if s.sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {s.sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if s.pruner not in PRUNERS:
        raise UsageError(f"unknown pruner {s.pruner!r}: choose one of {', '.join(PRUNERS)}")
    if not 1 <= s.max_epochs <= MAX_EPOCHS:
        raise UsageError(f"--max-epochs {s.max_epochs} is out of range: give 1 to {MAX_EPOCHS}")
    if s.prune_after is not None and not 1 <= s.prune_after <= s.max_epochs:
        raise UsageError(
            f"--prune-after {s.prune_after} is out of range: give 1 to --max-epochs ({s.max_epochs}), "
            "or --pruner none to never prune"
        )
    if s.value_window is not None and not 1 <= s.value_window <= s.max_epochs:
        raise UsageError(
            f"--value-window {s.value_window} is out of range: give 1 (a trial's best epoch) to --max-epochs "
            f"({s.max_epochs})"
        )
    if s.sampler == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError(
                "--sampler gp needs PyTorch (Optuna's GPSampler): pip install 'hpsearch[gp]', or choose --sampler tpe"
            ) from None
    task = get_task(s.task)
    own = prune_after_epochs(task)
    if isinstance(own, bool) or not isinstance(own, int) or own < 1:
        raise TaskError(f"task {s.task!r} has prune_after_epochs = {own!r}; a task declares a whole number >= 1")
    task_options(task, s.task_options)
    check_search_space(task)
    for i, params in enumerate(task.baselines):
        try:
            validate_params(task, params)
        except Exception as e:  # a task's own baselines must lie in its space
            raise UsageError(f"task {s.task!r} baseline {i} is not in its search space: {e}") from None
    for i, params in enumerate(s.user_baselines):
        try:
            validate_params(task, params)
        except Exception as e:
            raise UsageError(
                f"--baseline configuration {i + 1} does not fit task {s.task!r}: {e}; fix the file "
                f"(`hpsearch export` writes a valid one)"
            ) from None
    return task


def read_baseline_file(path: str) -> list[dict[str, Any]]:
    """Starting configurations from a file: an ``hpsearch export`` params file, a plain params
    mapping, or a list of either; JSON or YAML. Any problem is a ``UsageError`` naming the file."""
    import json
    from pathlib import Path

    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--baseline file {path} not found; write one with `hpsearch export --study NAME -o {path}`")
    try:
        text = p.read_text(encoding="utf-8")
        doc = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--baseline file {path} is not JSON or YAML ({first}); give a params file") from None
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for item in items:
        params = item.get("params") if isinstance(item, dict) and item.get("format") == "hpsearch-params" else item
        if not isinstance(params, dict) or not params or not all(isinstance(k, str) for k in params):
            raise UsageError(
                f"--baseline file {path}: expected a params mapping (name: value), a list of them, or an "
                "`hpsearch export` file"
            )
        out.append(dict(params))
    return out


def all_baselines(s: StudySettings) -> list[dict[str, Any]]:
    """The task's own baselines, then the user's (``--baseline FILE``); none with ``--no-baseline``."""
    if not s.baselines:
        return []
    return [*get_task(s.task).baselines, *s.user_baselines]


def check_search_space(task: Task) -> None:
    """A trial's params come from one place, the values ``search_space`` suggested (what export
    writes and ``train`` builds from): a returned key it did not suggest is refused by name, and
    without ``fit_inputs`` the params need ``batch_size``. Checked on the space's defaults and on
    each baseline (conditional branches)."""
    constants: set[str] = set()
    suggested: set[str] = set()
    for params in [None, *task.baselines]:
        try:
            constants.update(unsuggested_keys(task, params))
            suggested.update(record(task, params)[1].space)
        except TaskError:
            continue  # a baseline outside the space is reported below, by number
    if constants:
        raise UsageError(
            f"task {task.name!r}: search_space returns keys it did not suggest: {', '.join(sorted(constants))}; "
            "return only trial.suggest_* values under their own names and put constants in build_model"
        )
    if not isinstance(task, CustomFitInputs) and "batch_size" not in suggested:
        raise UsageError(
            f"task {task.name!r}: search_space does not suggest batch_size; suggest it "
            '(e.g. trial.suggest_categorical("batch_size", [32])) or give the task a fit_inputs hook'
        )


def make_sampler(s: StudySettings, worker_index: int = 0) -> Any:
    """The sampler of a worker. Workers of one study get different seeds, else they would all
    propose the same random start-up points."""
    import optuna

    seed = None if s.seed is None else s.seed * 1009 + worker_index
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    sampler: optuna.samplers.BaseSampler
    if s.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    centres = all_baselines(s) if s.baseline_prior else []
    if centres:
        from ._prior import BaselinePriorSampler

        return BaselinePriorSampler(sampler, centres, seed=seed)
    return sampler


def make_pruner(s: StudySettings) -> Any:
    """The study's pruner, on steps as its version counts them (``StudySettings.first_step``)."""
    import optuna

    after = s.prune_after or 1  # epochs before the first chance to prune (1 where never set)
    if s.pruner == "asha":
        # Asynchronous successive halving over all trials, each rung keeping the top quarter: rungs
        # at steps 1 and 4, i.e. after epochs 1 and 4 (the last epoch is never pruned); a task with
        # prune_after N has its rungs after epochs N, 4N, ... Chosen on the replay benchmark over
        # Hyperband (its brackets each compare a few trials of a small budget, and its top bracket
        # never prunes) and over the version-1 rungs; that replay's noise model was later found
        # faulty (BENCHMARKS.md, 2026-12-05), so the choice rests on the MNIST wall clock (faster
        # to 0.95 and 0.955 than both Optuna peers, tied at the end) until it is rerun.
        if s.first_step == 0:  # a version-1 study keeps its rungs
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=after, reduction_factor=4)
    if s.pruner == "hyperband":
        from ._pruners import HyperbandPruner

        return HyperbandPruner(min_resource=after, max_resource=s.max_epochs, reduction_factor=3)
    if s.pruner == "median":
        # Its warm-up waits one epoch longer than the rungs would: a median over a few trials after
        # one epoch says little (version 1: from its step 1, after epoch 2; from version 2: after
        # epoch prune_after + 1).
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=after + s.first_step)
    return optuna.pruners.NopPruner()


def read_settings(study: Any) -> StudySettings:
    attr = study.user_attrs.get(SETTINGS_KEY)
    if not isinstance(attr, dict) or "task" not in attr:
        raise StorageError(
            f"study {study.study_name!r} was not created by hpsearch (no settings); "
            "create one with `hpsearch create --task TASK --study NAME`"
        )
    settings = StudySettings.from_attr(attr)
    if settings.version > FORMAT_VERSION:
        raise StorageError(
            f"study {study.study_name!r} was created by a newer hpsearch (settings version {settings.version}, this "
            f"one knows up to {FORMAT_VERSION}); update hpsearch here: git pull && pip install -e . in its checkout"
        )
    return settings


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

    check_study_name(name)
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


def describe(task: Task, s: StudySettings) -> str:
    """A study note in words: the task and its search space (shown by optuna-dashboard)."""
    import inspect

    lines = [f"# {s.task}", "", task.description, ""]
    lines.append(
        f"Sampler **{s.sampler}**, pruner **{s.pruner}** on per-epoch validation accuracy"
        + (f" (never before epoch {s.prune_after} ends)" if s.pruner != "none" and s.prune_after else "")
        + f", at most {s.max_epochs} epochs per trial"
        + (
            f"; a trial's value is its best mean of {s.value_window} consecutive epochs"
            if s.value_window and s.value_window > 1
            else ""
        )
        + ("; each new best is trained once more while the search runs (live recheck)" if s.live_recheck else "")
        + (f", study cap {s.n_trials} finished trials" if s.n_trials else "")
        + (f", seed {s.seed}" if s.seed is not None else "")
        + "."
    )
    try:
        src = inspect.getsource(task.search_space)
        lines += ["", "Search space (`search_space`):", "", "```python", src.rstrip(), "```"]
    except (OSError, TypeError):
        pass
    baselines = task.baselines
    if s.baselines and baselines:
        lines += [
            "",
            f"The first {len(baselines)} trial(s) are the seed notebook's own configurations "
            "(user attribute `baseline`).",
        ]
    return "\n".join(lines)


def create_study(
    storage: Any,
    name: str,
    s: StudySettings,
    *,
    url: str,
    exist_ok: bool = False,
    compare: set[str] | None = None,
    ignore: set[str] | frozenset[str] = frozenset(),
) -> tuple[Any, bool]:
    """Create the study with its settings and baselines; return (study, created).

    An existing study is an error unless ``exist_ok``; then its settings must equal ``s``
    (restricted to the keys in ``compare`` when given, never the keys in ``ignore``), else the error
    names the differences.
    A failure after the study row exists deletes it again: a study is never half-created.
    """
    import optuna

    check_study_name(name)
    task = validate_settings(s)
    # A value window nobody asked for is the default of this version; a study of an older version keeps
    # its own (1) and is not "different" for it.
    ignore = {
        *ignore,
        *(["value_window"] if s.value_window is None else []),
        *(["live_recheck"] if s.live_recheck is None else []),
    }
    s = s.resolved(task)  # the study stores the epochs before pruning as a number

    def existing() -> tuple[Any, bool]:
        if not exist_ok:
            raise UsageError(
                f"study {name!r} already exists in {mask_url(url)}; pick another --study, "
                f"pass --exist-ok to reuse it, or raise its cap with `hpsearch extend --study {name} --n-trials N` "
                f"and run `hpsearch worker --study {name}` to add trials"
            )
        study = load_study(storage, name, url=url)
        diffs = s.differences(_settings_when_written(study), only=compare, ignore=ignore)
        if diffs:
            hint = (
                f"; change the cap with `hpsearch extend --study {name} --n-trials {s.n_trials}`"
                if any(d.startswith("n_trials:") for d in diffs)
                else ""
            )
            raise UsageError(f"study {name!r} exists with different settings: {'; '.join(diffs)}{hint}")
        return study, False

    if study_exists(storage, name):
        return existing()
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:  # a concurrent `create` won the race
        return existing()
    try:
        _set_metric_name(study)
        study.set_user_attr("task", s.task)
        study.set_user_attr("description", task.description)
        for i, params in enumerate(all_baselines(s)):
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


METRIC_NAME = "val_accuracy"  # the objective value: optuna-dashboard labels its axes with it


def _set_metric_name(study: Any) -> None:
    import warnings

    with warnings.catch_warnings():  # experimental in some Optuna versions
        warnings.simplefilter("ignore")
        study.set_metric_names([METRIC_NAME])


def _settings_when_written(study: Any, wait: float = 30.0) -> StudySettings:
    """The study's settings; a study that a concurrent ``create`` is still writing (its settings
    are its last attribute) is waited for, up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while SETTINGS_KEY not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.2)
    return read_settings(study)


def _set_note(study: Any, task: Task, s: StudySettings) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    save_note(study, describe(task, s))

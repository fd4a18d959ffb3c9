"""The task contract every ``objectives/<task>.py`` module (or plug-in object) follows.

``Task`` (a Protocol) is the contract; ``get_task`` checks it when a task is registered and names
what is missing. A module is a task when it has these attributes:

``name: str``                  the name users type (``--task NAME``)
``description: str``           one line for ``hpsearch tasks``
``baselines: list[Params]``    the seed notebooks' own configurations, as plain params dicts
``load_data(data_dir, *, seed, options) -> Data``
                               train / validation / test, split with ``seed``; loaded once per worker
``search_space(trial) -> Params``
                               the ONLY function that touches the trial (``SuggestTrial``: an Optuna
                               trial during search). Every key it returns is a value it suggested,
                               under the same name: ``create`` refuses other keys by name, because
                               ``train`` rebuilds the model from the suggested params alone.
                               Constants belong in ``build_model``. Unless the task has
                               ``fit_inputs``, the params include an int ``batch_size`` (the
                               batch size of both search and final training).
``build_model(params, spec) -> keras.Model``
                               a compiled model from a plain params dict; no Optuna needed.
                               The params are ``trial.params`` (what ``search_space`` suggested;
                               constants belong in ``build_model``) and always hold ``batch_size``:
                               search and final training fit with it (objectives/_fit.py)

Optional, each its own Protocol (checked by ``isinstance``, never ``getattr``):
``options: dict[str, TaskOption]`` (``HasOptions``) task settings chosen at ``create`` time
``fit_inputs(data, params, *, seed) -> (FitInputs, FitInputs)`` (``CustomFitInputs``)
                               override how params turn data into fit() inputs (train, val)
``search_model(params, data, *, seed) -> (model, FitInputs, FitInputs) | None`` (``SearchShortcut``)
                               during search only: a cheaper equivalent trial (the backbone tasks
                               train the head alone on cached backbone features); None = the
                               normal path. Final training always uses ``build_model``.
``prune_after_epochs: int`` (``HasPruneAfter``) epochs a trial trains before a pruner may first
                               stop it (default 1): for a task whose early validation accuracy ranks
                               configurations poorly (``cifar10_cnn``: 4). ``create --prune-after``
                               overrides it per study.

Task modules import TensorFlow / Keras lazily (inside functions) so that ``hpsearch --help`` and
``hpsearch tasks`` stay fast. Tasks never import the registry: option defaults are resolved with
``resolve_options`` from this module.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np

from .._errors import HpsearchError

if TYPE_CHECKING:
    import keras

# A parameter value as Optuna stores it and as JSON carries it.
ParamValue = bool | int | float | str | None
Params = dict[str, ParamValue]
# A task option value after parsing (``--option image_size=64`` -> 64).
OptionValue = bool | int | float | str | None


class TaskError(HpsearchError):
    """A task cannot run with what it was given (bad data directory, bad option...). Exit 2.

    The message names the problem and the fix; the CLI prints it on one line.
    """

    exit_code = 2


@dataclass(frozen=True)
class TaskOption:
    """A task setting fixed per study (recorded in the study, reused by ``train``)."""

    default: OptionValue
    help: str
    choices: tuple[OptionValue, ...] | None = None
    parse: Callable[[str], OptionValue] = str


@dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about the data, plus the study's task options."""

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    options: Mapping[str, OptionValue] = field(default_factory=dict)


@dataclass
class FitInputs:
    """Keyword arguments for ``model.fit`` / ``evaluate`` / ``predict`` of one split."""

    x: Any
    y: Any = None
    batch_size: int | None = None


class Data:
    """A task's data, loaded once per worker and reused by every trial.

    Subclasses provide ``inputs(split, batch_size, shuffle, seed)``, ``labels(split)`` and
    ``images(split, indices)`` (for plots). ``description`` says exactly which split was used.
    """

    spec: DataSpec
    description: str
    sizes: dict[str, int]

    def inputs(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> FitInputs:
        raise NotImplementedError

    def labels(self, split: str) -> np.ndarray:
        raise NotImplementedError

    def images(self, split: str, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ArrayData(Data):
    """In-memory arrays (MNIST, digits, CIFAR-10): ``x`` float32 in [0, 1], ``y`` int labels."""

    def __init__(
        self,
        *,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        class_names: tuple[str, ...],
        description: str,
        options: Mapping[str, OptionValue] | None = None,
    ) -> None:
        self._splits = {
            "train": (x_train, y_train.astype("int64")),
            "val": (x_val, y_val.astype("int64")),
            "test": (x_test, y_test.astype("int64")),
        }
        self.spec = DataSpec(
            input_shape=tuple(int(d) for d in x_train.shape[1:]),
            num_classes=len(class_names),
            class_names=tuple(class_names),
            options=dict(options or {}),
        )
        self.description = description
        self.sizes = {k: int(len(v[1])) for k, v in self._splits.items()}

    def inputs(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> FitInputs:
        x, y = self._splits[split]
        # Keras shuffles arrays itself (seeded through keras.utils.set_random_seed).
        return FitInputs(x=x, y=y, batch_size=batch_size)

    def labels(self, split: str) -> np.ndarray:
        return self._splits[split][1]

    def images(self, split: str, indices: np.ndarray) -> np.ndarray:
        return self._splits[split][0][indices]

    def merged(self, splits: tuple[str, ...]) -> ArrayData:
        """A copy whose ``train`` is the concatenation of ``splits`` (``train --train-on train+val``)."""
        xs = np.concatenate([self._splits[s][0] for s in splits])
        ys = np.concatenate([self._splits[s][1] for s in splits])
        return ArrayData(
            x_train=xs,
            y_train=ys,
            x_val=self._splits["val"][0],
            y_val=self._splits["val"][1],
            x_test=self._splits["test"][0],
            y_test=self._splits["test"][1],
            class_names=self.spec.class_names,
            description=self.description + f"; trained on {'+'.join(splits)}",
            options=self.spec.options,
        )


CLASSES_FILE = "classes.txt"


def class_names_option() -> TaskOption:
    """The ``class_names`` option of the array tasks."""
    return TaskOption(
        "",
        f"class names for labels 0, 1, ..., comma-separated (A,B,C); default: {CLASSES_FILE} beside "
        "the data (one name a line), else the data set's own",
    )


def resolve_class_names(
    default: tuple[str, ...], labels: list[np.ndarray], options: Mapping[str, Any] | None, data_dir: Any
) -> tuple[tuple[str, ...], str | None]:
    """(class names, where they came from: ``None`` for the data set's own).

    From ``--option class_names=A,B,...``, else ``classes.txt`` in ``data_dir``, else ``default``
    (or ``0``, ``1``, ... when the labels go beyond it: IDX files of another alphabet). The count
    must equal the number of classes the labels imply (at least ``len(default)``).
    """
    from pathlib import Path

    top = max((int(y.max()) for y in labels if len(y)), default=-1)
    n = max(len(default), top + 1)
    names = default if n == len(default) else tuple(str(i) for i in range(n))
    text = str((options or {}).get("class_names") or "").strip()
    source: str | None = None
    if text:
        given, source = [c.strip() for c in text.split(",")], "--option class_names"
    elif data_dir is not None and (Path(data_dir) / CLASSES_FILE).is_file():
        path = Path(data_dir) / CLASSES_FILE
        try:
            given = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise TaskError(f"cannot read {path}: {brief(e)}; write one class name a line (UTF-8)") from None
        source = str(path)
    else:
        return names, None
    if len(given) != n or not all(given) or len(set(given)) != len(given):
        raise TaskError(
            f"{source} names {len(given)} class(es) but the labels have {n} (0-{n - 1}); give {n} distinct, "
            f"non-empty names in label order"
        )
    return tuple(given), source


def named(description: str, names: tuple[str, ...], source: str | None) -> str:
    """The data line with the class names when they are not the data set's own."""
    if source is None:
        return description
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    return f"{description}; classes {shown} (from {source})"


def brief(error: object, width: int = 200) -> str:
    """An error's text on one line, at most ``width`` characters, cut between words (never inside one)."""
    import textwrap

    return textwrap.shorten(" ".join(str(error).split()), width, placeholder=" ...") or type(error).__name__


def seeded_split(n: int, sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Indices of a seeded permutation of ``range(n)`` cut into consecutive parts of ``sizes``."""
    if sum(sizes) > n:
        raise TaskError(f"cannot split {n} examples into {sizes}: not enough data")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for s in sizes:
        out.append(perm[start : start + s])
        start += s
    return out


# -- the contract as Protocols -------------------------------------------------------------------
CategoricalChoice = bool | int | float | str | None


class SuggestTrial(Protocol):
    """What ``search_space`` may use of a trial: Optuna's ``Trial`` during search, and hpsearch's
    plain-Python ``RecordingTrial`` (``objectives/_space.py``) when params are checked."""

    @property
    def number(self) -> int: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[CategoricalChoice]) -> CategoricalChoice: ...


@runtime_checkable
class Task(Protocol):
    """The task contract (see the module docstring). A module with these attributes is a Task."""

    name: str
    description: str
    baselines: list[Params]

    def load_data(
        self, data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None
    ) -> Data: ...

    def search_space(self, trial: SuggestTrial) -> Params: ...

    def build_model(self, params: Params, spec: DataSpec) -> keras.Model: ...


@runtime_checkable
class HasPruneAfter(Protocol):
    """Optional: epochs before a trial can first be pruned (default 1; see the module docstring)."""

    prune_after_epochs: int


def prune_after_epochs(task: object) -> int:
    """The task's own ``prune_after_epochs``, else 1."""
    return task.prune_after_epochs if isinstance(task, HasPruneAfter) else 1


@runtime_checkable
class HasOptions(Protocol):
    """Optional: task settings fixed per study (``--option KEY=VALUE``, ``--weights W``)."""

    options: Mapping[str, TaskOption]


@runtime_checkable
class CustomFitInputs(Protocol):
    """Optional: how params turn the data into ``fit`` inputs (train, val); default
    ``data.inputs(split, params["batch_size"])``."""

    def fit_inputs(self, data: Data, params: Params, *, seed: int) -> tuple[FitInputs, FitInputs]: ...


@runtime_checkable
class SearchShortcut(Protocol):
    """Optional, during search only: a cheaper equivalent trial, or None for the normal path
    (the backbone tasks train the head alone on cached backbone features)."""

    def search_model(
        self, params: Params, data: Data, *, seed: int
    ) -> tuple[keras.Model, FitInputs, FitInputs] | None: ...


@runtime_checkable
class FileData(Protocol):
    """Data read from image files (``_images.ImageFolderData``): what the feature cache keys on."""

    spec: DataSpec

    def paths(self, split: str) -> list[str]: ...

    def labels(self, split: str) -> np.ndarray: ...


# Each hook's keyword arguments, checked at registration (a missing one would fail every trial).
HOOK_KEYWORDS: dict[str, tuple[str, ...]] = {
    "load_data": ("seed", "options"),
    "search_space": (),
    "build_model": (),
    "fit_inputs": ("seed",),
    "search_model": ("seed",),
}


def task_option_specs(task: object) -> Mapping[str, TaskOption]:
    """A task's declared options (none unless it is ``HasOptions``)."""
    return task.options if isinstance(task, HasOptions) and task.options else {}


def int_option(opts: Mapping[str, OptionValue], key: str) -> int:
    """A resolved option that must be an int (``image_size``, ``max_images``)."""
    value = opts[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TaskError(f"option {key}={value!r} must be an integer")
    return value


def str_option(opts: Mapping[str, OptionValue], key: str) -> str:
    """A resolved option that must be a str (``weights``, ``backbone``)."""
    value = opts[key]
    if not isinstance(value, str):
        raise TaskError(f"option {key}={value!r} must be a string")
    return value


def resolve_options(
    task_name: str, declared: Mapping[str, TaskOption], given: Mapping[str, object]
) -> dict[str, OptionValue]:
    """A task's options: defaults + given, parsed, rejecting unknown ones and bad choices."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        raise TaskError(f"task {task_name!r} has no option {', '.join(unknown)} (its options: {names})")
    out: dict[str, OptionValue] = {}
    for key, opt in declared.items():
        value = given.get(key, opt.default)
        if isinstance(value, str) and opt.parse is not str:
            try:
                value = opt.parse(value)
            except (TypeError, ValueError) as e:
                raise TaskError(f"option {key}={value!r}: {e}") from None
        if opt.choices is not None and value not in opt.choices:
            raise TaskError(f"option {key}={value!r}: choose one of {', '.join(map(str, opt.choices))}")
        out[key] = value  # type: ignore[assignment]
    return out

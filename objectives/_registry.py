from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import importlib
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points
import importlib.util
import inspect
from types import ModuleType

from ._base import HOOK_KEYWORDS
from ._base import OptionValue
from ._base import Params
from ._base import ParamValue
from ._base import Task
from ._base import TaskError
from ._base import TaskOption
from ._base import resolve_options
from ._base import task_option_specs
from ._space import record
from ._space import validate_against_space

# Built-in tasks: name -> module. Descriptions live in the modules, which import Keras lazily.
_BUILTIN = {
    "mnist_mlp": "hpsearch.objectives.mnist_mlp",
    "mnist_cnn": "hpsearch.objectives.mnist_cnn",
    "cifar10_cnn": "hpsearch.objectives.cifar10_cnn",
    "cats_vs_dogs": "hpsearch.objectives.cats_vs_dogs",
    "celeba_gender": "hpsearch.objectives.celeba_gender",
    "image_folder": "hpsearch.objectives.image_folder",
    "digits": "hpsearch.objectives.digits",
}
_ENTRY_POINT_GROUP = "hpsearch.tasks"
_REQUIRED_CALLABLES = ("load_data", "search_space", "build_model")
_OPTIONAL_CALLABLES = ("fit_inputs", "search_model")


def _plugin_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=_ENTRY_POINT_GROUP)}


def _keywords_missing(fn: Callable[..., object], keywords: tuple[str, ...]) -> list[str]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable: cannot tell, trust it
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [k for k in keywords if k not in params or params[k].kind is inspect.Parameter.POSITIONAL_ONLY]


def contract_problems(obj: object) -> list[str]:
    """What ``obj`` lacks to be a ``Task`` (and what its optional hooks get wrong); [] if nothing."""
    problems = []
    for attr in ("name", "description"):
        if not isinstance(getattr(obj, attr, None), str):
            problems.append(f"{attr} (a str)")
    baselines = getattr(obj, "baselines", None)
    if not isinstance(baselines, list) or not all(isinstance(b, dict) for b in baselines):
        problems.append("baselines (a list of params dicts; [] for none)")
    for attr in (*_REQUIRED_CALLABLES, *_OPTIONAL_CALLABLES):
        if attr not in _REQUIRED_CALLABLES and not hasattr(obj, attr):
            continue
        fn = getattr(obj, attr, None)
        if not callable(fn):
            problems.append(f"{attr}() (a function)")
            continue
        missing = _keywords_missing(fn, HOOK_KEYWORDS[attr])
        if missing:
            problems.append(f"{attr}() keyword argument(s) {', '.join(missing)}")
    options = getattr(obj, "options", None)
    if options is not None and not (
        isinstance(options, Mapping) and all(isinstance(o, TaskOption) for o in options.values())
    ):
        problems.append("options (a dict of name -> TaskOption)")
    return problems


def _check_contract(obj: object, ref: str) -> Task:
    problems = contract_problems(obj)
    if problems or not isinstance(obj, Task):
        raise TaskError(
            f"task {ref!r} does not follow the task contract (hpsearch.objectives.Task): "
            f"missing or wrong {'; '.join(problems) or 'attributes'} (see README 'Your own task')"
        )
    return obj


def _load_ref(ref: str) -> object:
    module_name, _, attr = ref.partition(":")
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ImportError as e:
        raise TaskError(
            f"cannot import task module {module_name!r} ({e}); check the name and that it is on PYTHONPATH or installed"
        ) from None
    if not attr:
        return module
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TaskError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def get_task(name: str, *, allow_module: bool = True, source: str = "") -> Task:
    """The task object for a built-in name, an installed plug-in, or ``package.module[:attr]``.

    With ``allow_module=False`` (``hpsearch train`` reading a params file, which is data) only
    built-in and installed plug-in (entry point) tasks are resolved: a name that would import a
    module is refused before anything is imported. ``source`` names where the name came from.
    """
    if name in _BUILTIN:
        return _check_contract(importlib.import_module(_BUILTIN[name]), name)
    plugins = _plugin_entry_points()
    if name in plugins:
        return _check_contract(plugins[name].load(), name)
    if not allow_module:
        known = ", ".join(sorted([*_BUILTIN, *plugins]))
        raise TaskError(
            f"unknown task {name!r}{source}: not a built-in or installed plug-in task ({known}); if it is a module "
            "of yours on PYTHONPATH, pass --allow-module to import it"
        )
    if ":" in name or "." in name:
        return _check_contract(_load_ref(name), name)
    if importlib.util.find_spec(name) is not None:  # a plain module on PYTHONPATH
        return _check_contract(_load_ref(name), name)
    known = ", ".join(sorted([*_BUILTIN, *plugins]))
    raise TaskError(
        f"unknown task {name!r}: choose one of {known} (see `hpsearch tasks`), or give a plug-in as package.module:attr"
    )


def list_tasks() -> list[tuple[str, str]]:
    """(name, one-line description) of built-in and installed plug-in tasks."""
    out = []
    for name, module in _BUILTIN.items():
        out.append((name, getattr(importlib.import_module(module), "description", "")))
    for name, ep in sorted(_plugin_entry_points().items()):
        try:
            desc = getattr(ep.load(), "description", "")
        except Exception as e:  # a broken plug-in must not hide the others
            desc = f"(plug-in failed to load: {e})"
        out.append((name, f"{desc} [plug-in {ep.value}]"))
    return out


def task_options(task: Task, given: Mapping[str, object]) -> dict[str, OptionValue]:
    """Resolve a task's options (defaults + given), rejecting unknown ones and bad choices."""
    return resolve_options(task.name, task_option_specs(task), given)


def validate_params(task: Task, params: Mapping[str, ParamValue]) -> Params:
    """Check a plain params dict against the task's search space; return it as a new dict.

    Plain Python, no Optuna: ``search_space`` runs on a ``RecordingTrial`` answering from
    ``params``, which names every parameter the space needs for these values (conditional ones
    included); each value must lie inside its distribution. ``TaskError`` names the first problem.
    """
    _, trial = record(task, params)
    return validate_against_space(params, trial.space, f"task {task.name!r}")

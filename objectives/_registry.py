from __future__ import annotations

from collections.abc import Mapping
import importlib
from importlib.metadata import entry_points
import importlib.util
from types import ModuleType
from typing import Any

from ._base import TaskError

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
_REQUIRED = ("load_data", "search_space", "build_model")


def _plugin_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=_ENTRY_POINT_GROUP)}


def _check_contract(obj: Any, ref: str) -> Any:
    missing = [a for a in _REQUIRED if not callable(getattr(obj, a, None))]
    if missing:
        raise TaskError(
            f"task {ref!r} does not follow the task contract: missing {', '.join(missing)} "
            "(see objectives/_base.py or README 'Your own task')"
        )
    return obj


def _load_ref(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ImportError as e:
        raise TaskError(
            f"cannot import task module {module_name!r} ({e}); check the name and that it is on PYTHONPATH or installed"
        ) from None
    if not attr:
        return module
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TaskError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def get_task(name: str, *, allow_module: bool = True, source: str = "") -> Any:
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


def task_options(task: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve a task's options (defaults + given), rejecting unknown ones and bad choices."""
    declared = dict(getattr(task, "options", {}) or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        raise TaskError(
            f"task {getattr(task, 'name', task)!r} has no option {', '.join(unknown)} (its options: {names})"
        )
    out = {}
    for key, opt in declared.items():
        value = given.get(key, opt.default)
        if isinstance(value, str) and opt.parse is not str:
            try:
                value = opt.parse(value)
            except (TypeError, ValueError) as e:
                raise TaskError(f"option {key}={value!r}: {e}") from None
        if opt.choices is not None and value not in opt.choices:
            raise TaskError(f"option {key}={value!r}: choose one of {', '.join(map(str, opt.choices))}")
        out[key] = value
    return out


def validate_params(task: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check a plain params dict against the task's search space; return it normalised.

    Reuses Optuna's ``FixedTrial``: running ``search_space`` on it names every parameter the
    space needs for these values (conditional ones included), then each value must lie inside its
    distribution. Raises ``TaskError`` naming the first problem.
    """
    import optuna

    params = dict(params)
    trial = optuna.trial.FixedTrial(params)
    try:
        with _quiet_optuna():
            task.search_space(trial)
    except ValueError as e:
        raise TaskError(f"params do not fit task {getattr(task, 'name', '?')!r}: {e}") from None
    used = trial.distributions
    extra = sorted(set(params) - set(used))
    if extra:
        raise TaskError(f"params not in task {getattr(task, 'name', '?')!r}'s search space: {', '.join(extra)}")
    for key, dist in used.items():
        value = params[key]
        ok = True
        try:
            if isinstance(dist, optuna.distributions.IntDistribution):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(dist, optuna.distributions.FloatDistribution):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise TaskError(f"param {key}={value!r} is outside its search space {dist}")
    return params


class _quiet_optuna:
    """FixedTrial warns on out-of-range values; we turn those into errors ourselves."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)

"""A task's search space as plain data, without Optuna.

``RecordingTrial`` answers ``search_space``'s ``suggest_*`` calls from a plain params dict (or with
a default: ``low``, the first choice) and records each distribution as plain JSON data::

    {"type": "int",   "low": 1, "high": 5, "step": 1, "log": false}
    {"type": "float", "low": 1e-4, "high": 0.1, "step": null, "log": true}
    {"type": "categorical", "choices": ["adam", "sgd"]}

That is the snapshot ``hpsearch export`` writes beside the params (``space``), and what ``train``
checks params against (``check_params``), so final training never imports Optuna. ``create`` uses
the same recording to refuse a ``search_space`` that returns keys it did not suggest.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math

from ._base import CategoricalChoice
from ._base import Params
from ._base import ParamValue
from ._base import Task
from ._base import TaskError

# One distribution as plain data (see the module docstring).
PlainValue = bool | int | float | str | None | list[CategoricalChoice]
Distribution = dict[str, PlainValue]
Space = dict[str, Distribution]


class RecordingTrial:
    """A ``SuggestTrial`` that answers from ``params`` and records the distributions asked for.

    A name absent from ``params`` gets a default (``low``, the first choice) and is listed in
    ``missing``; ``params=None`` explores the space with defaults only.
    """

    def __init__(self, params: Mapping[str, ParamValue] | None = None, number: int = 0) -> None:
        self._params = params
        self._number = number
        self.space: Space = {}
        self.values: Params = {}
        self.missing: list[str] = []

    @property
    def number(self) -> int:
        return self._number

    def _answer(self, name: str, dist: Distribution, default: ParamValue) -> ParamValue:
        if name in self.values:  # asked twice: the same answer, as Optuna gives
            return self.values[name]
        self.space[name] = dist
        if self._params is not None and name in self._params:
            value = self._params[name]
            if not contains(dist, value):  # before search_space computes with it
                raise TaskError(f"param {name}={value!r} is outside its search space {describe(dist)}")
        else:
            if self._params is not None:
                self.missing.append(name)
            value = default
        self.values[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        dist: Distribution = {"type": "int", "low": int(low), "high": int(high), "step": int(step), "log": bool(log)}
        return self._answer(name, dist, int(low))  # type: ignore[return-value]

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        dist: Distribution = {
            "type": "float",
            "low": float(low),
            "high": float(high),
            "step": None if step is None else float(step),
            "log": bool(log),
        }
        return self._answer(name, dist, float(low))  # type: ignore[return-value]

    def suggest_categorical(self, name: str, choices: Sequence[CategoricalChoice]) -> CategoricalChoice:
        dist: Distribution = {"type": "categorical", "choices": list(choices)}
        return self._answer(name, dist, choices[0] if len(choices) else None)


def record(task: Task, params: Mapping[str, ParamValue] | None = None) -> tuple[Params, RecordingTrial]:
    """Run ``task.search_space`` on a ``RecordingTrial``; return (what it returned, the trial)."""
    trial = RecordingTrial(params)
    try:
        returned = task.search_space(trial)
    except TaskError:
        raise
    except Exception as e:
        raise TaskError(f"task {task.name!r}'s search_space failed on these params: {type(e).__name__}: {e}") from None
    if not isinstance(returned, dict):
        raise TaskError(f"task {task.name!r}'s search_space returned {type(returned).__name__}, not a dict of params")
    return returned, trial


def unsuggested_keys(task: Task, params: Mapping[str, ParamValue] | None = None) -> list[str]:
    """Keys ``search_space`` returns that it did not suggest under that name (or returns changed)."""
    returned, trial = record(task, params)
    return sorted(k for k, v in returned.items() if k not in trial.values or not _same(trial.values[k], v))


def _same(a: object, b: object) -> bool:
    return a is b or (type(a) is type(b) and a == b)


def validate_against_space(params: Mapping[str, ParamValue], space: Mapping[str, Distribution], what: str) -> Params:
    """``params`` must have exactly the names of ``space``, each value inside its distribution."""
    missing = sorted(set(space) - set(params))
    if missing:
        raise TaskError(f"params do not fit {what}: missing {', '.join(missing)}")
    extra = sorted(set(params) - set(space))
    if extra:
        raise TaskError(f"params not in {what}'s search space: {', '.join(extra)}")
    for key, dist in space.items():
        if not contains(dist, params[key]):
            raise TaskError(f"param {key}={params[key]!r} is outside its search space {describe(dist)}")
    return dict(params)


def check_space(space: object, where: str) -> Space:
    """A snapshot read from a file: a mapping of names to well-formed distributions."""
    if not isinstance(space, dict):
        raise TaskError(f"{where}: 'space' must map param names to distributions, got {space!r}")
    for name, dist in space.items():
        ok = isinstance(dist, dict) and dist.get("type") in ("int", "float", "categorical")
        if ok and dist["type"] == "categorical":
            ok = isinstance(dist.get("choices"), list) and bool(dist["choices"])
        elif ok:
            ok = all(_is_number(dist.get(k)) for k in ("low", "high")) and isinstance(dist.get("log"), bool)
        if not ok:
            raise TaskError(
                f"{where}: space[{name!r}] = {dist!r} is not a distribution "
                '(expected {"type": "int"|"float", "low", "high", "step", "log"} or {"type": "categorical", "choices"})'
            )
    return space


def contains(dist: Mapping[str, PlainValue], value: ParamValue) -> bool:
    """Whether ``value`` lies in ``dist``, with Optuna's rules (ints for int, numbers for float)."""
    kind = dist["type"]
    if kind == "categorical":
        choices = dist["choices"]
        assert isinstance(choices, list)
        return any(type(c) is type(value) and c == value for c in choices)
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return False
    elif not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        return False
    low, high, step = dist["low"], dist["high"], dist.get("step")
    assert isinstance(low, (int, float)) and isinstance(high, (int, float)) and isinstance(value, (int, float))
    if not low <= value <= high:
        return False
    if isinstance(step, (int, float)) and step and not isinstance(step, bool):
        k = (value - low) / step
        return abs(k - round(k)) <= 1e-8 * max(1.0, abs(k))
    return True


def describe(dist: Mapping[str, PlainValue]) -> str:
    if dist["type"] == "categorical":
        return f"categorical {dist['choices']!r}"
    extra = (f" step {dist['step']}" if dist.get("step") not in (None, 1) else "") + (" log" if dist.get("log") else "")
    return f"{dist['type']} [{dist['low']}, {dist['high']}]{extra}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

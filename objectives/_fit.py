"""Fit a task's model on its data: the one training routine of a trial and of final training.

``fit_task(task, data, params, epochs=..., seed=..., callbacks=..., search=...)`` seeds Keras,
chooses the precision policy, builds the model (during search, the task's cheaper
``search_model`` shortcut when it offers one), makes the fit inputs (the task's ``fit_inputs``
or ``data.inputs``), sets the throughput levers and calls ``model.fit``. The trial runner
(search/_objective.py) adds the pruning callback and the history; final training
(search/_train.py) adds the test evaluation and the plots. No Optuna here.

Throughput levers (measured in ``benchmarks/throughput_bench.py``, figures in BENCHMARKS.md):

- ``steps_per_execution``: several batches per call into the traced graph, so that small models
  stop paying Python dispatch per batch. Chosen per model before ``fit`` so that one execution
  takes at most ``EXECUTION_SECONDS`` (a signal, such as the worker's SIGTERM, is handled
  between executions; the heartbeat runs in its own thread; callbacks and pruning run per epoch,
  unaffected). The step time is estimated without tracing: one batch of the training input (for a
  ``keras.utils.PyDataset``) plus ``BACKWARD_FACTOR`` times an eager forward pass of the model on
  one batch, an upper bound of the traced step on CPU. The updates and the per-epoch losses are
  those of one batch per call.
- validation (and test) batch size decoupled from the training batch size: as large as
  ``EVAL_BATCH_MAX`` while one batch of inputs stays within ``EVAL_INPUT_FLOATS`` floats.
- mixed precision (``mixed_float16``) on GPUs for tasks that declare ``mixed_precision = True``
  (the pretrained-backbone tasks); their final layer is float32.
- ``mixed_bfloat16`` on CPUs with Intel AMX-BF16 (``amx_bf16`` in ``/proc/cpuinfo``) for tasks that
  declare ``cpu_bfloat16 = True`` (the convolutional ``mnist_cnn`` and ``cifar10_cnn``): oneDNN runs
  their convolutions on the AMX tiles. Variables stay float32, the softmax layer is float32. The
  per-epoch losses are those of float32 within a few percent, not to the last digit (BENCHMARKS.md,
  throughput). ``HPSEARCH_PRECISION`` overrides the choice: ``float32`` turns every mixed policy
  off; ``auto`` (the default) is the rule above.
- ``jit_compile`` stays off (``compile_classifier``): on CPU its compile time was not paid back.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
from dataclasses import field
import time
from typing import Any

import numpy as np

from ._base import CustomFitInputs
from ._base import Data
from ._base import FitInputs
from ._base import SearchShortcut
from ._base import Task
from ._base import TaskError

EXECUTION_SECONDS = 0.5  # the longest one call into the graph may take (signal latency)
MAX_STEPS_PER_EXECUTION = 64  # beyond this the dispatch saved is < 2 % of a small step
BACKWARD_FACTOR = 3.0  # traced forward + backward + update <= this x the eager forward pass
PROBE_AGAIN_BELOW_SECONDS = 5 * EXECUTION_SECONDS
PROBE_CALLS, PROBE_SECONDS = 5, 0.5
EVAL_BATCH_MAX = 1024
EVAL_INPUT_FLOATS = 1 << 22  # one evaluation batch of inputs: at most 16 MiB of float32


@dataclass
class FitRun:
    """What ``fit_task`` built and measured; ``info`` is filled as it goes (also on an exception)."""

    model: Any = None
    history: dict[str, list[float]] = field(default_factory=dict)
    train: FitInputs | None = None
    val: FitInputs | None = None
    info: dict[str, Any] = field(default_factory=dict)


def batch_size_of(params: dict[str, Any]) -> int:
    """``params["batch_size"]``: required on both paths (search and final training), never a default."""
    try:
        bs = int(params["batch_size"])
    except (KeyError, TypeError, ValueError):
        raise TaskError(
            "the params have no integer batch_size; every task's search space must suggest batch_size "
            "(and a params file must contain it)"
        ) from None
    if bs < 1:
        raise TaskError(f"batch_size must be >= 1, got {bs}")
    return bs


def eval_batch_size(train_batch_size: int, input_shape: Sequence[int]) -> int:
    """The validation / test batch size: large, within ``EVAL_INPUT_FLOATS`` floats of input."""
    per_example = int(np.prod([int(d) for d in input_shape])) or 1
    return max(int(train_batch_size), min(EVAL_BATCH_MAX, EVAL_INPUT_FLOATS // per_example))


PRECISION_ENV = "HPSEARCH_PRECISION"
PRECISION_CHOICES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def cpu_has_amx_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 on AMX tiles (Linux: the ``amx_bf16`` flag)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in cpuinfo.splitlines())


def precision_setting(setting: str | None = None) -> str:
    """``HPSEARCH_PRECISION`` (or ``setting``), checked: one of ``PRECISION_CHOICES``; unset is ``auto``."""
    import os

    value = (setting if setting is not None else os.environ.get(PRECISION_ENV, "auto")).strip() or "auto"
    if value not in PRECISION_CHOICES:
        raise TaskError(
            f"{PRECISION_ENV}={value!r} is not a precision; set it to one of {', '.join(PRECISION_CHOICES)}, "
            "or unset it (auto)"
        )
    return value


def precision_policy(
    task: Any, *, gpus: int | None = None, amx_bf16: bool | None = None, setting: str | None = None
) -> str:
    """The Keras dtype policy of a task's training on this machine (the module docstring's rule).

    ``setting`` is ``HPSEARCH_PRECISION`` (default ``auto``); a named policy other than ``auto`` is used
    as it is, so a user can force float32 (or a mixed policy) everywhere.
    """
    setting = precision_setting(setting)
    if setting != "auto":
        return setting
    if getattr(task, "mixed_precision", False):
        if gpus is None:
            import tensorflow as tf

            gpus = len(tf.config.list_physical_devices("GPU"))
        if gpus > 0:
            return "mixed_float16"
    if getattr(task, "cpu_bfloat16", False):
        if gpus is None:
            import tensorflow as tf

            gpus = len(tf.config.list_physical_devices("GPU"))
        if gpus == 0 and (cpu_has_amx_bf16() if amx_bf16 is None else amx_bf16):
            return "mixed_bfloat16"
    return "float32"


@contextlib.contextmanager
def precision(policy: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``policy`` while the model is built and trained."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def estimate_step_seconds(model: Any, train: FitInputs, batch_size: int) -> float:
    """An upper bound of one training step's seconds, without tracing (see the module docstring)."""
    import keras

    input_s = 0.0
    if isinstance(train.x, keras.utils.PyDataset):
        t = time.perf_counter()
        train.x[0]
        input_s = time.perf_counter() - t
    shape = tuple(int(d) if d is not None else batch_size for d in model.inputs[0].shape)
    probe = np.zeros((batch_size, *shape[1:]), dtype="float32")
    best, spent = float("inf"), 0.0
    # The first eager call carries one-time costs and a busy machine preempts some calls: keep the
    # fastest of up to PROBE_CALLS, within PROBE_SECONDS in all.
    for i in range(PROBE_CALLS):
        t = time.perf_counter()
        model(probe, training=False)
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + (dt if i else 0.0)  # the first call's one-time costs are free
        if i and (input_s + BACKWARD_FACTOR * best > PROBE_AGAIN_BELOW_SECONDS or spent > PROBE_SECONDS):
            break  # far too long to batch even without the one-time costs, or probed long enough
    return input_s + BACKWARD_FACTOR * best


def choose_steps_per_execution(step_seconds: float) -> int:
    """As many steps per execution as fit in ``EXECUTION_SECONDS`` (1 to ``MAX_STEPS_PER_EXECUTION``)."""
    if step_seconds <= 0:
        return MAX_STEPS_PER_EXECUTION
    return int(max(1, min(MAX_STEPS_PER_EXECUTION, EXECUTION_SECONDS / step_seconds + 1e-9)))


def _execution_timer(info: dict[str, Any]) -> Any:
    """Records the longest call into the graph after the first (the first one traces)."""
    import keras

    class _ExecutionTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            dt = time.perf_counter() - self._t
            n = info.get("executions", 0)
            info["executions"] = n + 1
            if n:
                info["max_execution_s"] = round(max(info.get("max_execution_s", 0.0), dt), 4)

    return _ExecutionTimer()


def _inputs(task: Task, data: Data, params: dict[str, Any], bs: int, seed: int) -> tuple[FitInputs, FitInputs]:
    if isinstance(task, CustomFitInputs):
        return task.fit_inputs(data, params, seed=seed)
    train = data.inputs("train", bs, shuffle=True, seed=seed)
    val = data.inputs("val", eval_batch_size(bs, data.spec.input_shape))
    return train, val


def fit_task(
    task: Task,
    data: Data,
    params: dict[str, Any],
    *,
    epochs: int,
    seed: int,
    callbacks: Sequence[Any] = (),
    search: bool = False,
    validate: bool = True,
    run: FitRun | None = None,
) -> FitRun:
    """Build ``task``'s model from plain ``params`` and fit it for ``epochs`` on ``data``.

    ``search=True``: the task's ``search_model`` shortcut is used when it returns one.
    ``validate=False``: no validation data (``train --train-on train+val``). Pass ``run`` to keep
    what was recorded (``run.info``) when ``fit`` raises.
    """
    import keras

    run = run if run is not None else FitRun()
    info = run.info
    bs = batch_size_of(params)
    keras.utils.set_random_seed(seed)
    policy = precision_policy(task)
    info["precision"] = policy
    with precision(policy):
        shortcut = task.search_model(params, data, seed=seed) if search and isinstance(task, SearchShortcut) else None
        if shortcut is not None:
            model, train, val = shortcut
            info["feature_cache"] = True
        else:
            model = task.build_model(params, data.spec)
            train, val = _inputs(task, data, params, bs, seed)
        if val.y is not None:  # arrays: the evaluation batch is ours to choose
            val = FitInputs(x=val.x, y=val.y, batch_size=eval_batch_size(bs, np.shape(val.x)[1:]))
        run.model, run.train, run.val = model, train, val
        step_s = estimate_step_seconds(model, train, bs)
        spe = choose_steps_per_execution(step_s)
        model.steps_per_execution = spe  # before fit traces its train function
        info.update(steps_per_execution=spe, step_estimate_s=round(step_s, 5), validation_batch_size=val.batch_size)
        validation: dict[str, Any] = {}
        if validate:
            validation = {
                "validation_data": (val.x, val.y) if val.y is not None else val.x,
                "validation_batch_size": val.batch_size,
            }
        hist = model.fit(
            train.x,
            train.y,
            batch_size=train.batch_size,
            epochs=epochs,
            callbacks=[_execution_timer(info), *callbacks],
            verbose=0,
            shuffle=train.y is not None,  # datasets shuffle themselves (seeded)
            **validation,
        )
    run.history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    return run

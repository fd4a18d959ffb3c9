"""The glue between an Optuna trial and a task: params -> model -> fit with per-epoch reports.

Only ``task.search_space`` sees the trial; ``build_model`` gets a plain dict. Every epoch's
``val_accuracy`` is reported by optuna-integration's ``KerasPruningCallback``, which raises
``TrialPruned`` when the pruner says so. The step is the number of epochs done (1-based;
``first_step=1``), so that a pruner's lowest rung can come after the first epoch; studies of settings
version 1 count from 0 (Keras' epoch index) and keep doing so (``StudySettings.first_step``).

A complete trial's value is the best mean of ``value_window`` consecutive epochs (settings version 4:
3 by default; before, 1: the single best epoch), and ``best_epoch`` the last epoch of that window.
"""

from __future__ import annotations

import gc
import math
import os
import time
from typing import Any


class Diverged(Exception):
    """The training loss became NaN or infinite."""


def quiet_tensorflow() -> None:
    """No C++ info logs, no per-batch progress bars in workers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def set_memory_growth() -> None:
    """Let several workers share one GPU: allocate GPU memory as needed, not all up front."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass


def _history_callback(epoch_log: list[dict[str, float]]) -> Any:
    import keras

    class _Recorder(keras.callbacks.Callback):
        """Keeps per-epoch metrics and times; stops a diverged run after the epoch it diverged in."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            row = {k: float(v) for k, v in (logs or {}).items()}
            row["seconds"] = time.perf_counter() - self._t0
            epoch_log.append(row)
            loss = row.get("loss", 0.0)
            if not math.isfinite(loss):
                raise Diverged(f"training loss became {loss} at epoch {epoch}")

    return _Recorder()


def _pruning_callback(
    trial: Any,
    max_epochs: int,
    first_step: int = 1,
    *,
    prune: bool = True,
    floor: float | None = None,
    floor_after: int = 0,
) -> Any:
    """optuna-integration's ``KerasPruningCallback`` on ``val_accuracy``, reporting ``epoch +
    first_step``, except that it never prunes after the last epoch (nor at all with ``prune``
    False: a recheck, ``_recheck.py``, trains every epoch and only reports).

    Pruning after the last epoch saves no training, yet a pruner's top rung (the last step for
    Hyperband with the default settings) would mark a fully trained trial PRUNED and hide it from
    ``best_trial``.
    After the last epoch the value is reported and the trial ends COMPLETE.

    With ``floor`` (``constant_answer_floor``) and ``floor_after`` N (settings version 8), a trial whose
    best val accuracy after N epochs, or any later one, is no better than ``floor`` is pruned whatever
    the pruner says, and says why in its ``prune_reason`` user attribute. Optuna's pruners rank a trial
    against the others, so they keep a search's first trial at every rung (nothing to compare it
    with): a first trial that never learns trained in full. Optuna's ``ThresholdPruner`` takes a
    fixed bound and replaces the study's pruner rather than adding to it, hence this check.
    """
    import optuna
    from optuna_integration.keras import KerasPruningCallback

    class _PruneBeforeTheLastEpoch(KerasPruningCallback):
        best = -math.inf

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            value = (logs or {}).get("val_accuracy")
            if value is not None and math.isfinite(float(value)):
                self.best = max(self.best, float(value))
            if prune and epoch + 1 < max_epochs:
                if floor is not None and floor_after and epoch + 1 >= floor_after and value is not None:
                    if self.best <= floor:
                        trial.report(float(value), step=epoch + first_step)
                        reason = (
                            f"val accuracy {self.best:.4f} after {epoch + 1} epochs: no better than always "
                            "answering the validation split's most common class"
                        )
                        trial.set_user_attr("prune_reason", reason)
                        raise optuna.TrialPruned(reason)
                return super().on_epoch_end(epoch + first_step, logs)
            if value is not None:
                trial.report(float(value), step=epoch + first_step)

    return _PruneBeforeTheLastEpoch(trial, "val_accuracy")


def constant_answer_floor(data: Any) -> float | None:
    """The highest val accuracy a model can score by always giving the same answer: the most common
    class's count in the validation split, plus half an image (accuracies are counts over the split,
    and Keras reports them in float32). None where the task's data gives no labels."""
    import numpy as np

    try:
        labels = np.asarray(data.labels("val"))
    except NotImplementedError:
        return None
    if labels.ndim > 1:  # one-hot
        labels = labels.argmax(axis=-1)
    if labels.size == 0:
        return None
    counts = np.unique(labels, return_counts=True)[1]
    return (float(counts.max()) + 0.5) / float(labels.size)


def _clear_session(keras: Any) -> None:
    """Keras' global state is reset between trials; the garbage collection is left to the caller.

    ``clear_session()`` runs a full ``gc.collect()`` itself (its default ``free_memory=True``);
    with the caller's own ``gc.collect()`` that made two full collections per trial, each walking
    every object of the process (TensorFlow's included): 0.4-1 s per trial on a busy 2-core machine,
    growing with the trial count. One collection frees the same garbage.
    """
    try:
        keras.backend.clear_session(free_memory=False)
    except TypeError:  # an older Keras 3 without the free_memory argument
        keras.backend.clear_session()


# Every this many trials the collection between trials walks the whole heap again (see _collect).
FULL_COLLECTION_EVERY = 20
_collections = 0  # per process, as the garbage collector is


def _collect() -> None:
    """Free the previous trial's garbage, then ``gc.freeze()`` what survives.

    A full collection walks every object of the process, TensorFlow's included (~400,000): 0.2-0.3
    s per trial on 2 CPU cores, a tenth of a short trial, and growing with the trials run. After
    ``gc.freeze()`` the survivors (the worker's and TensorFlow's long-lived state) sit in the
    permanent generation, so the next collection walks only what the last trial allocated
    (0.01-0.02 s) and still frees all of its garbage. The cost: a cycle among frozen objects that
    dies later is not freed until the next full collection, which runs (after ``gc.unfreeze()``)
    every ``FULL_COLLECTION_EVERY`` trials and bounds that leak.
    """
    global _collections
    if _collections % FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
    _collections += 1
    gc.collect()
    gc.freeze()


# What ``fit_task`` measured that a trial keeps as user attributes.
RECORDED_FIT_INFO = ("feature_cache", "precision", "steps_per_execution", "step_estimate_s", "max_execution_s")


class TrialRunner:
    """Runs one trial of ``task`` on ``data`` (loaded once per worker and reused)."""

    def __init__(
        self,
        task: Any,
        data: Any,
        *,
        max_epochs: int,
        seed: int | None,
        first_step: int = 1,
        value_window: int = 1,
        floor_after: int = 0,
    ) -> None:
        import keras

        self.task = task
        self.data = data
        self.max_epochs = max_epochs
        self.first_step = first_step  # the step reported after the first epoch (see the module doc)
        self.value_window = value_window  # a complete trial's value: best mean of this many epochs
        self.seed = seed
        # settings version 8: prune a trial no better than a constant answer after this many epochs
        # (``_pruning_callback``); 0: never
        self.floor_after = floor_after
        self.floor = constant_answer_floor(data) if floor_after else None
        self._keras = keras
        self.callbacks: list[Any] = []  # extra Keras callbacks for every trial (the worker's stop check)

    def trial_seed(self, number: int) -> int:
        return (self.seed or 0) * 100_003 + number

    def __call__(self, trial: Any) -> float:
        """Train; return the best validation accuracy. Writes history and timing as user attrs.

        The model is built from ``trial.params`` (what Optuna stores and ``export`` writes), after
        ``task.search_space(trial)`` has suggested them: search and final training build from the
        same dict.
        """
        import optuna

        from ._recheck import is_recheck
        from ._summary import trial_epoch_lines
        from .objectives._fit import FitRun
        from .objectives._fit import fit_task

        self.task.search_space(trial)
        params = dict(trial.params)
        _clear_session(self._keras)
        _collect()
        t0 = time.perf_counter()
        epoch_log: list[dict[str, float]] = []
        run = FitRun()
        try:
            fit_task(
                self.task,
                self.data,
                params,
                epochs=self.max_epochs,
                seed=self.trial_seed(trial.number),
                callbacks=[
                    _history_callback(epoch_log),
                    _pruning_callback(
                        trial,
                        self.max_epochs,
                        self.first_step,
                        prune=not is_recheck(trial),
                        floor=self.floor,
                        floor_after=self.floor_after,
                    ),
                    trial_epoch_lines(trial.number, self.max_epochs),
                    *self.callbacks,
                ],
                search=True,
                run=run,
            )
        except Diverged as e:
            # NaN/inf loss: report the epoch it happened in (if validation ran) and prune.
            if epoch_log and "val_accuracy" in epoch_log[-1]:
                v = epoch_log[-1]["val_accuracy"]
                trial.report(v if math.isfinite(v) else 0.0, step=len(epoch_log) - 1 + self.first_step)
            trial.set_user_attr("fail_reason", f"diverged: {e}")
            raise optuna.TrialPruned(f"diverged: {e}") from None
        finally:
            extra = {k: run.info[k] for k in RECORDED_FIT_INFO if k in run.info}
            _record(trial, epoch_log, time.perf_counter() - t0, extra, self.value_window)
        accs = [row["val_accuracy"] for row in epoch_log if math.isfinite(row.get("val_accuracy", math.nan))]
        if not accs:
            raise RuntimeError("no epoch reported val_accuracy")
        best = windowed_best([row.get("val_accuracy", math.nan) for row in epoch_log], self.value_window)
        return best[0] if best is not None else max(accs)


def windowed_best(accs: list[float | None], window: int) -> tuple[float, int] | None:
    """The best mean of ``window`` consecutive epochs' val accuracy and the 1-based count of the last
    of them (the earliest of equals); ``window`` 1 is the best single epoch. A window holding a
    missing or non-finite epoch does not count; with fewer epochs than ``window``, the window is all
    of them. None when no window counts.

    Written here because it is the trial's own value: Optuna's objective returns one number, and
    no library reduces a noisy per-epoch curve this way."""
    w = max(1, min(window, len(accs)))
    best: tuple[float, int] | None = None
    for end in range(w, len(accs) + 1):
        part = accs[end - w : end]
        if any(a is None or not math.isfinite(a) for a in part):
            continue
        mean = sum(part) / w  # type: ignore[arg-type]
        if best is None or mean > best[0]:
            best = (mean, end)
    return best


def _record(
    trial: Any, epoch_log: list[dict[str, float]], seconds: float, extra: dict[str, Any], value_window: int = 1
) -> None:
    """One write (one transaction) of the per-epoch history, best epoch (1-based count, the last of the
    best ``value_window`` consecutive epochs), wall time and ``extra``."""
    from .storage import set_user_attrs

    history: dict[str, list[float]] = {}
    for row in epoch_log:
        for k, v in row.items():
            history.setdefault(k, []).append(round(v, 6) if math.isfinite(v) else None)  # type: ignore[arg-type]
    accs = history.get("val_accuracy", [])
    finite = [(a, i) for i, a in enumerate(accs) if a is not None]
    attrs: dict[str, Any] = {
        **extra,
        "epochs_run": len(epoch_log),
        "seconds": round(seconds, 3),
        "history": history,
    }
    best = windowed_best([row.get("val_accuracy", math.nan) for row in epoch_log], value_window)
    if best is not None:
        # the earliest epoch that ends the best window, as a count (train --epochs best uses it)
        attrs["best_epoch"] = best[1]
        if value_window > 1:
            attrs["value_window"] = value_window
    elif finite:
        attrs["best_epoch"] = max(finite, key=lambda p: (p[0], -p[1]))[1] + 1
    set_user_attrs(trial, attrs)

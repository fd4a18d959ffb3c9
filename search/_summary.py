"""What a person reads: short numbers, the end-of-run summary, and per-epoch lines.

- ``fmt`` / ``format_params``: floats with 4 significant digits (``0.001234``, ``0.9712``), so a
  trial line stays short; integers, strings and booleans unchanged.
- ``summary_lines``: how ``run`` and ``worker`` end: trials by state, the best trial with its value
  and params, the elapsed time, and the next commands to type.
- ``EpochLines``: a Keras callback printing one line per epoch (``epoch k/N``, loss, val accuracy,
  seconds), from the start (``train``) or only once a trial has run ``after`` seconds (workers:
  ``$HPSEARCH_EPOCH_LINES_AFTER``, default 30), so short trials stay one line each.

Plain lines only (no progress bars): logs are read from pipes, files and ``docker compose logs``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import json
import math
import os
import time
from typing import Any

EPOCH_LINES_ENV = "HPSEARCH_EPOCH_LINES_AFTER"
EPOCH_LINES_AFTER = 30.0  # seconds a trial runs before it prints per-epoch lines
SIGNIFICANT = 4


def fmt(value: Any, digits: int = SIGNIFICANT) -> str:
    """A number as a person reads it: floats with ``digits`` significant digits; others as ``str``."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def _short(value: Any, digits: int = SIGNIFICANT) -> Any:
    if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    return value


def format_params(params: Mapping[str, Any], digits: int = SIGNIFICANT) -> str:
    """``{"batch_size": 32, "learning_rate": 0.001234}``: sorted JSON, floats to ``digits`` digits."""
    return json.dumps({k: _short(v, digits) for k, v in params.items()}, sort_keys=True, default=str)


def duration(seconds: float) -> str:
    """``42.1 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def summary_lines(
    study: Any,
    *,
    seconds: float,
    ran: int | None = None,
    storage_flag: str | None = None,
    prefix: str = "",
) -> list[str]:
    """The end of ``run`` / ``worker``: trials by state, the best trial, elapsed time, next commands.

    ``storage_flag`` is the (masked) ``--storage`` the user typed, repeated in the next commands;
    ``None`` when the storage came from the environment or the default.
    """
    from ._recheck import DEFAULT_REPEATS
    from ._recheck import DEFAULT_TOP
    from ._recheck import pick
    from ._recheck import pick_line
    from .storage import trial_state_counts

    name = study.study_name
    counts = trial_state_counts(study)
    states = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or "none"
    who = f"{ran} trial(s) run here, " if ran is not None else ""
    lines = [f"done in {duration(seconds)}: {who}study {name!r} has {states}"]
    rechecked = False
    try:
        best = study.best_trial
    except ValueError:  # no COMPLETE trial yet
        best = None
    if best is None:
        lines.append("best: none yet (no COMPLETE trial)")
    else:
        cache = " cache=yes" if best.user_attrs.get("feature_cache") else ""
        lines.append(
            f"best: trial {best.number} value={fmt(best.value)} best_epoch={best.user_attrs.get('best_epoch', '-')}"
            f"{cache} params={format_params(best.params)}"
        )
        chosen = pick(study)
        if chosen is not None and chosen.measurements > 1:
            rechecked = True
            lines.append(f"pick (export): {pick_line(chosen)}")
    st = f" --storage {storage_flag}" if storage_flag else ""
    lines.append(f"next: hpsearch export --study {name}{st} -o best.json")
    lines.append(f"      hpsearch report --study {name}{st} -o report.html")
    lines.append(f"      hpsearch dashboard{st}")
    if best is not None and not rechecked:
        lines.append(
            f"      hpsearch recheck --study {name}{st}   (before export: the {DEFAULT_TOP} best trained "
            f"{DEFAULT_REPEATS} more times each, export then picks by the mean, not one lucky run)"
        )
    return [prefix + line for line in lines]


def epoch_lines_after(default: float = EPOCH_LINES_AFTER) -> float:
    """Seconds after which a trial prints per-epoch lines (``$HPSEARCH_EPOCH_LINES_AFTER``)."""
    text = os.environ.get(EPOCH_LINES_ENV)
    if text is None:
        return default
    try:
        return max(0.0, float(text))
    except ValueError:
        return default


def epoch_lines(
    label: str, epochs: int, *, after: float | None = None, log: Callable[[str], None] | None = None
) -> Any:
    """An ``EpochLines`` callback (Keras imported here, not at module import)."""
    import keras

    class EpochLines(keras.callbacks.Callback):
        """One line per epoch once training has run ``after`` seconds, or when the first epoch
        alone predicts that it will (first epoch x epochs > ``after``)."""

        def __init__(self) -> None:
            super().__init__()
            self.after = epoch_lines_after() if after is None else float(after)
            self.log = log or _emit
            self.active = False

        def on_train_begin(self, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            took = now - self._t0
            if not self.active:
                elapsed = now - self._start
                self.active = elapsed >= self.after or (epoch == 0 and took * epochs > self.after)
            if self.active:
                self.log(epoch_line(label, epoch + 1, epochs, logs or {}, took))

    return EpochLines()


def epoch_line(label: str, epoch: int, epochs: int, logs: Mapping[str, Any], seconds: float) -> str:
    """``trial 7 epoch 3/10 loss=0.2345 val_accuracy=0.9123 seconds=12.3``."""
    parts = [f"{label} epoch {epoch}/{epochs}"]
    for key in ("loss", "val_accuracy"):
        if key in logs:
            parts.append(f"{key}={fmt(float(logs[key]))}")
    parts.append(f"seconds={seconds:.1f}")
    return " ".join(parts)


def _emit(line: str) -> None:
    from ._worker import emit

    emit(line)


def trial_epoch_lines(number: int, epochs: int) -> Any:
    """The worker's ``EpochLines`` for trial ``number`` (prefixed by ``$HPSEARCH_WORKER_ID``)."""
    worker_id = os.environ.get("HPSEARCH_WORKER_ID")
    head = f"[{worker_id}] " if worker_id else ""
    return epoch_lines(f"{head}trial {number}", epochs)


def print_summary(study: Any, storage_flag: str | None, started: float, ran: int | None = None) -> None:
    """The end-of-run summary: best trial, trials by state, time, next commands (never fails a run)."""
    import logging
    import time

    from ._worker import emit
    from .storage import mask_text
    from .storage import mask_url

    flag = mask_url(storage_flag) if storage_flag else None
    try:
        lines = summary_lines(study, seconds=time.monotonic() - started, ran=ran, storage_flag=flag)
    except Exception as e:  # the trials are done and stored; a summary that cannot be read is no failure
        logging.getLogger("hpsearch").warning("no summary: %s", mask_text(" ".join(str(e).split())[:200]))
        return
    for line in lines:
        emit(line)

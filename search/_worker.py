"""The worker loop: pull trials from a shared study until the budget is spent.

Written with ``study.ask`` / ``study.tell`` rather than ``study.optimize`` because a worker needs
what ``optimize`` does not give: a study-wide cap that concurrent workers respect exactly, a trial
finished elsewhere (swept as stale, then retried) that must not kill the worker ("Cannot tell a
FAIL trial"), SIGTERM ending the current trial as FAIL *and* re-enqueued, and a stop after K
consecutive failures. The pieces are Optuna's: ``ask``/``tell``, its heartbeat thread (the one
``optimize`` uses), ``RetryHeartbeatStaleTrialCallback``, ``enqueue``.

Failure kinds (Keras Tuner's split): fatal ones (bad config, missing study, unreachable database)
raise before any trial; per-trial ones (out of memory, NaN, an exception in training) mark the
trial and go on.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import os
import signal
import sys
import time
import traceback
from typing import Any

from ._errors import WorkerStopped
from .storage import StorageError

_logger = logging.getLogger("hpsearch")

FINISHED = ("COMPLETE", "PRUNED")


@dataclass
class WorkerBudget:
    n_trials: int | None = None  # this worker's own cap
    timeout: float | None = None  # seconds; no new trial starts after it
    max_failures: int = 3  # consecutive FAIL trials before the worker stops


class _Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def emit(line: str, file: Any = None) -> None:
    """Print one whole line with a single write.

    Workers started by ``run``/``launch`` share one stdout pipe and run with PYTHONUNBUFFERED, where
    ``print`` writes the text and its newline in two system calls, so another worker's line can
    land between them. One ``write`` of under PIPE_BUF bytes is atomic: the merged log stays whole.
    """
    out = file or sys.stdout
    out.write(line + "\n")
    out.flush()


def trial_note(trial: Any, width: int = 60) -> str:
    """What a table of trials says beside the numbers: baseline, retry, why it failed or stopped."""
    a = trial.user_attrs
    note = []
    if a.get("baseline") is not None:
        note.append(f"baseline {a['baseline']}")
    if a.get("retry_of") is not None:
        note.append(f"retry of {a['retry_of']}")
    if a.get("fail_reason"):
        note.append(str(a["fail_reason"])[:width])
    return "; ".join(note)


def trial_line(frozen: Any, worker_id: str | None = None) -> str:
    """The one line printed per finished trial."""
    attrs = frozen.user_attrs
    value = "-" if frozen.value is None else f"{frozen.value:.4f}"
    seconds = attrs.get("seconds")
    params = json.dumps(frozen.params, sort_keys=True, default=str)
    head = f"[{worker_id}] " if worker_id else ""
    extra = ""
    if attrs.get("baseline") is not None:
        extra += f" baseline={attrs['baseline']}"
    if attrs.get("retry_of") is not None:
        extra += f" retry_of={attrs['retry_of']}"
    if frozen.state.name == "FAIL" and attrs.get("fail_reason"):
        extra += f" reason={attrs['fail_reason']!r}"
    return (
        f"{head}trial {frozen.number} {frozen.state.name} value={value} "
        f"epochs={attrs.get('epochs_run', 0)} seconds={'-' if seconds is None else f'{seconds:.1f}'}"
        f"{extra} params={params}"
    )


class Worker:
    def __init__(
        self,
        study: Any,
        runner: Any,
        *,
        cap: int | None,
        budget: WorkerBudget,
        worker_id: str | None = None,
        retry_callback: Any = None,
        poll_seconds: float = 2.0,
        sweep_seconds: float = 0.0,
        out: Any = None,
    ) -> None:
        self.study = study
        self.runner = runner
        self.cap = cap
        self.budget = budget
        self.worker_id = worker_id
        self.retry_callback = retry_callback
        self.poll_seconds = poll_seconds
        # Between trials the stale-trial sweep runs at most this often. A trial turns stale only a
        # grace period after its worker's last heartbeat, so sweeping after every short trial
        # found nothing new and cost two queries per trial; while waiting for a slot it still
        # runs every poll.
        self.sweep_seconds = sweep_seconds
        self._last_sweep = -float("inf")
        self.out = out or sys.stdout
        self._in_trial = False
        self._stop_signal: int | None = None
        self.ran = 0

    # -- signals -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum
        if self._in_trial:
            raise _Interrupted(signum)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- budget --------------------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        from .storage import trial_state_counts

        return trial_state_counts(self.study)

    def _wait_for_slot(self, deadline: float | None) -> bool:
        """True when this worker may start a trial; False when the study cap is reached."""
        while True:
            if self._stop_signal is not None:
                return False
            if self.cap is None:
                return True
            c = self._counts()
            finished = sum(c.get(s, 0) for s in FINISHED)
            if finished >= self.cap:
                return False
            if finished + c.get("RUNNING", 0) < self.cap or c.get("WAITING", 0):
                return True
            # Every remaining slot is taken by a running trial; one may still fail (and be
            # retried), so wait for the study to finish rather than exit early.
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_seconds)
            self._sweep(force=True)

    def _surplus(self, trial: Any) -> bool:
        """Whether ``trial`` lies beyond the study cap.

        Trial numbers are assigned in creation order, atomically, by the storage. A trial is within
        the cap when fewer than ``cap`` trials with a smaller number are not FAIL (finished,
        running or waiting ahead of it). Trials with smaller numbers only ever move to FAIL, never
        back, so a trial within the cap stays within it, and at most ``cap`` trials finish.
        """
        if self.cap is None:
            return False
        from .storage import trials_ahead

        return trials_ahead(self.study, trial.number) >= self.cap

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Run trials until a budget is spent; return the number run. Raises ``WorkerStopped``."""
        import warnings

        # Optuna warns that heartbeats are meant for Study.optimize; this loop runs the same
        # heartbeat thread around each trial that optimize does.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        import optuna

        from .storage import heartbeat_thread as get_heartbeat_thread  # survives an outage

        deadline = None if self.budget.timeout is None else time.monotonic() + self.budget.timeout
        failures = 0
        self._sweep(force=True)
        while True:
            if self.budget.n_trials is not None and self.ran >= self.budget.n_trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not self._wait_for_slot(deadline):
                break
            trial = self.study.ask()
            if self._surplus(trial):
                trial.set_user_attr("fail_reason", f"surplus: the study cap of {self.cap} was reached by other workers")
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                continue
            # The trial as ``ask`` just read it from the database (a RUNNING trial is never served
            # from Optuna's cache); ``failed_trial`` is written only when a retry is enqueued, so
            # re-reading the whole trial (six queries) would return the same value.
            retry_of = trial._cached_frozen_trial.system_attrs.get("failed_trial")
            if retry_of is not None:
                trial.set_user_attr("retry_of", retry_of)
                if "fail_reason" in trial.user_attrs:  # copied from the failed original
                    trial.set_user_attr("fail_reason", None)
            if self.worker_id:
                trial.set_user_attr("worker", self.worker_id)
            state, value, interrupted = self._run_one(trial, get_heartbeat_thread)
            frozen = self._tell(trial, state, value)
            self.ran += 1
            emit(trial_line(frozen, self.worker_id), self.out)
            if interrupted is not None:
                self._requeue(frozen)
                break
            if frozen.state.name == "FAIL" and state == optuna.trial.TrialState.FAIL:
                failures += 1
                if failures >= self.budget.max_failures:
                    raise WorkerStopped(
                        f"{failures} trials failed in a row (last: trial {frozen.number}: "
                        f"{frozen.user_attrs.get('fail_reason', '?')}); fix the cause, then restart the worker"
                    )
            else:
                failures = 0
            self._sweep()
        return self.ran

    def _sweep(self, force: bool = False) -> None:
        from .storage import sweep_stale_trials

        now = time.monotonic()
        if force or now - self._last_sweep >= self.sweep_seconds:
            self._last_sweep = now
            sweep_stale_trials(self.study)

    def _run_one(self, trial: Any, get_heartbeat_thread: Any) -> tuple[Any, float | None, _Interrupted | None]:
        """Run the objective inside the heartbeat thread; return (state or None if the trial was
        finished elsewhere, value, the interrupting signal if any)."""
        import optuna

        TrialState = optuna.trial.TrialState
        interrupted = None
        value = None
        with get_heartbeat_thread(trial._trial_id, self.study._storage):
            self._in_trial = True
            try:
                if self._stop_signal is not None:
                    raise _Interrupted(self._stop_signal)
                value = self.runner(trial)
                state = TrialState.COMPLETE
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except optuna.exceptions.UpdateFinishedTrialError:
                state = None  # finished elsewhere (swept as stale meanwhile): not this worker's failure
            except StorageError:
                raise  # the database is gone (or the heartbeat gave up): the worker stops, see storage/
            except _Interrupted as e:
                interrupted = e
                state = TrialState.FAIL
                self._set_reason(trial, f"interrupted by {e}; re-enqueued")
            except Exception as e:
                state = TrialState.FAIL
                self._set_reason(trial, _failure_reason(e))
                _logger.debug("trial %d failed:\n%s", trial.number, traceback.format_exc())
            finally:
                self._in_trial = False
        return state, value, interrupted

    def _set_reason(self, trial: Any, reason: str) -> None:
        import optuna

        try:
            trial.set_user_attr("fail_reason", reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def _tell(self, trial: Any, state: Any, value: float | None) -> Any:
        import optuna

        if state is None:
            frozen = self.study._storage.get_trial(trial._trial_id)
            _logger.warning(
                "trial %d was already %s elsewhere (swept as stale); its result here is discarded",
                frozen.number,
                frozen.state.name,
            )
            return frozen
        try:
            frozen = self.study.tell(
                trial,
                value if state == optuna.trial.TrialState.COMPLETE else None,
                state=state,
                skip_if_finished=True,
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            frozen = self.study._storage.get_trial(trial._trial_id)
        if frozen.state != state:
            _logger.warning(
                "trial %d was already %s elsewhere (swept as stale); its result here is discarded",
                frozen.number,
                frozen.state.name,
            )
        return frozen

    def _requeue(self, frozen: Any) -> None:
        """An interrupted trial goes back in the queue with its params (Optuna's retry callback)."""
        if self.retry_callback is not None and frozen.state.name == "FAIL":
            self.retry_callback(self.study, frozen)


def _failure_reason(e: BaseException) -> str:
    name = type(e).__name__
    text = str(e).strip().splitlines()
    first = text[0][:300] if text else ""
    if name == "ResourceExhaustedError" or "out of memory" in first.lower() or isinstance(e, MemoryError):
        return f"out of memory: {name}: {first}"
    return f"{name}: {first}"


def worker_index() -> int:
    """This worker's index, which offsets its sampler seed from the other workers' seeds.

    ``hpsearch run`` and ``launch`` set ``HPSEARCH_WORKER_INDEX``; a worker started on its own
    (another machine, a compose replica) derives one from its host name and pid, so that two such
    workers never replay the same random start-up points.
    """
    text = os.environ.get("HPSEARCH_WORKER_INDEX")
    if text is not None:
        try:
            return int(text)
        except ValueError:
            pass
    import socket
    import zlib

    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_000

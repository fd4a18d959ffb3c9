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
import logging
import os
import signal
import sys
import textwrap
import time
import traceback
from typing import Any

from ._claim import claim_trial_id
from ._claim import mark_surplus
from ._claim import study_lock
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
    if a.get("recheck_of") is not None:
        note.append(f"recheck of {a['recheck_of']}")
    if a.get("retry_of") is not None:
        note.append(f"retry of {a['retry_of']}")
    if a.get("fail_reason"):
        note.append(str(a["fail_reason"])[:width])
    if a.get("prune_reason"):
        note.append(str(a["prune_reason"])[:width])
    return "; ".join(note)


def trial_line(frozen: Any, worker_id: str | None = None) -> str:
    """The one line printed per finished trial."""
    attrs = frozen.user_attrs
    from ._summary import fmt
    from ._summary import format_params

    value = "-" if frozen.value is None else fmt(frozen.value)
    seconds = attrs.get("seconds")
    params = format_params(frozen.params)
    head = f"[{worker_id}] " if worker_id else ""
    extra = ""
    if attrs.get("baseline") is not None:
        extra += f" baseline={attrs['baseline']}"
    if attrs.get("recheck_of") is not None:
        extra += f" recheck_of={attrs['recheck_of']}"
    if attrs.get("retry_of") is not None:
        extra += f" retry_of={attrs['retry_of']}"
    if attrs.get("feature_cache"):
        extra += " cache=yes"
    if frozen.state.name == "FAIL" and attrs.get("fail_reason"):
        extra += f" reason={textwrap.shorten(str(attrs['fail_reason']), 120, placeholder=' ...')!r}"
    if frozen.state.name == "PRUNED" and attrs.get("prune_reason"):
        extra += f" reason={textwrap.shorten(str(attrs['prune_reason']), 120, placeholder=' ...')!r}"
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
        live_recheck: bool = False,
    ) -> None:
        self.study = study
        self.live_recheck = live_recheck  # settings ``live_recheck``: enqueue a recheck of each new best
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
        self.later_signals: list[int] = []  # signals after the first: recorded, never acted on
        self.ran = 0

    # -- signals -------------------------------------------------------------------------------
    @property
    def stop_signal(self) -> int | None:
        """The signal (SIGTERM, SIGINT) that stopped this worker, if one did."""
        return self._stop_signal

    def _on_signal(self, signum: int, frame: Any) -> None:
        """The first SIGTERM/SIGINT stops the trial (raised into it); later ones are only recorded.

        A second Ctrl-C a moment after the first used to raise again inside the clean-up, which
        then never wrote the FAIL and the re-enqueue (exit 130, the trial left RUNNING until a
        peer's sweep). Now the clean-up always finishes, and the worker exits right after it.
        """
        if self._stop_signal is not None:
            self.later_signals.append(signum)
            return
        self._stop_signal = signum
        if self._in_trial:
            raise _Interrupted(signum)

    def check_stop(self) -> None:
        """Raise the interruption if a signal came during the trial (called between batches).

        The handler's own raise lands wherever the main thread is when Python runs it: inside a
        weakref callback run by the garbage collector, for one, which Python prints and ignores,
        and training went on (a generator-fed trial then ran to its end, or hung). This check,
        from a Keras callback after every batch, ends the trial whatever became of that raise.
        """
        if self._stop_signal is not None and self._in_trial:
            raise _Interrupted(self._stop_signal)

    def _stop_callback(self) -> Any:
        import keras

        worker = self

        class _StopOnSignal(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                worker.check_stop()

            def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
                worker.check_stop()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                worker.check_stop()

        return _StopOnSignal()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if hasattr(signal, "SIGUSR1"):  # Slurm's time-limit warning (hpsearch slurm: --signal=B:USR1@S)
            signal.signal(signal.SIGUSR1, self._on_signal)

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
        if isinstance(getattr(self.runner, "callbacks", None), list):
            self.runner.callbacks.append(self._stop_callback())
        self._sweep(force=True)
        while True:
            if self.budget.n_trials is not None and self.ran >= self.budget.n_trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not self._wait_for_slot(deadline):
                break
            trial_id, within_cap = claim_trial_id(self.study, self.cap)
            if trial_id is None:
                continue  # the last slots were taken meanwhile: wait (or stop) in _wait_for_slot
            trial = optuna.Trial(self.study, trial_id)  # samples the relative params, outside the lock
            if not within_cap and self._surplus(trial):
                frozen = mark_surplus(self.study, trial, self.cap)  # type: ignore[arg-type]
                _logger.info("trial %d lies beyond the study cap (surplus); not run", frozen.number)
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
            if interrupted is not None:
                # FAIL and re-enqueue as one step under the study lock: no other worker's cap
                # check sees the slot free in between.
                with study_lock(self.study):
                    ours = not self.study._storage.get_trial(trial._trial_id).state.is_finished()
                    frozen = self._tell(trial, state, value)
                    if ours and frozen.state.name == "FAIL":
                        requeue_interrupted(self.study, frozen)
            else:
                frozen = self._tell(trial, state, value)
            self.ran += 1
            emit(trial_line(frozen, self.worker_id), self.out)
            if self.live_recheck and interrupted is None:
                from ._recheck import enqueue_live_recheck

                left = None if deadline is None else deadline - time.monotonic()
                again = enqueue_live_recheck(self.study, frozen, time_left=left, say=self._say)
                if again is not None:
                    self._say(f"trial {frozen.number} leads the search: trial {again} trains it once more")
            if interrupted is not None:
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

    def _say(self, line: str) -> None:
        """Print one of the worker's own lines (not a trial's), headed by its id as trial lines are."""
        emit(f"[{self.worker_id}] {line}" if self.worker_id else line, self.out)

    def _sweep(self, force: bool = False) -> None:
        from .storage import sweep_stale_trials

        now = time.monotonic()
        if force or now - self._last_sweep >= self.sweep_seconds:
            self._last_sweep = now
            with study_lock(self.study):  # its fail + re-enqueue must not race a cap check
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
                if self._stop_signal is not None:
                    # The signal's exception raised inside an import or TensorFlow's C++ comes back
                    # as another one (SystemError: "__import__ returned a result with an exception
                    # set", seen under Slurm): still an interruption, to re-enqueue.
                    interrupted = _Interrupted(self._stop_signal)
                    self._set_reason(trial, f"interrupted by {interrupted}; re-enqueued")
                else:
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


def requeue_interrupted(study: Any, frozen: Any) -> None:
    """Put an interrupted trial back in the queue with its params, whatever its retry count.

    Optuna's ``RetryFailedTrialCallback`` (what the stale sweep uses) allows ``max_retry`` retries
    counted in ``retry_history``; an interruption is no failure of the configuration, so it is
    not counted there (a later crash of the re-enqueued trial still gets its retry) but in
    ``interrupted``. ``failed_trial`` keeps pointing at the first trial of the configuration, as
    Optuna's callback does, so ``retry_of`` names it.
    """
    import optuna

    system_attrs: dict[str, Any] = {"failed_trial": frozen.number, **frozen.system_attrs}
    system_attrs["interrupted"] = [*frozen.system_attrs.get("interrupted", []), frozen.number]
    study.add_trial(
        optuna.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=frozen.params,
            distributions=frozen.distributions,
            user_attrs=frozen.user_attrs,
            system_attrs=system_attrs,
        )
    )


def hard_exit(code: int) -> None:
    """Exit now, after flushing, skipping the interpreter's shutdown.

    Called once the study writes are done after a signal: with a generator-fed ``tf.data``
    pipeline, TensorFlow's iterator threads could deadlock the interpreter's shutdown (3 of 10
    SIGTERMs hung after "worker done"). Nothing is left to write: the trial is FAIL and re-enqueued,
    the storage's sessions are closed by the server when the process goes.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def _failure_reason(e: BaseException) -> str:
    name = type(e).__name__
    text = str(e).strip().splitlines()
    first = text[0][:300] if text else ""
    if name == "ResourceExhaustedError" or "out of memory" in first.lower() or isinstance(e, MemoryError):
        return f"out of memory: {name}: {first}"
    return f"{name}: {first}"


def worker_index() -> int:
    """This worker's index, which offsets its sampler seed from the other workers' seeds.

    The first of ``HPSEARCH_WORKER_INDEX`` (set by ``run`` and ``launch``), ``SLURM_ARRAY_TASK_ID``,
    ``JOB_COMPLETION_INDEX`` and a hash of host name and pid (a compose replica): the one rule of
    ``_index.resolve_worker_index``, which ``worker --worker-index`` puts first.
    """
    from ._index import resolve_worker_index

    return resolve_worker_index().index

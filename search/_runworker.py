"""A worker's composition: its configuration object and ``run_worker``, which opens the study,
loads the data once and runs the worker loop (``_worker.Worker``) with a ``TrialRunner``.

``hpsearch worker`` builds a ``WorkerConfig`` from its flags; ``hpsearch run`` (one worker
in-process) passes one directly; ``run`` and ``launch`` hand their child workers the same object
as one JSON argument (``worker --config JSON``), so the flags are never copied a second time.
The storage URL is not part of it: it travels in ``$HPSEARCH_STORAGE`` (a password on a command
line would show in ``ps``).
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
import json
import os
from pathlib import Path
import signal

from ._errors import UsageError
from .objectives import Data
from .storage import DEFAULT_GRACE_PERIOD
from .storage import DEFAULT_HEARTBEAT_INTERVAL


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs besides the storage URL (the study holds the rest)."""

    study: str
    n_trials: int | None = None  # this worker's own cap (the study's cap applies as well)
    timeout: float | None = None  # seconds; no new trial starts after it
    data_dir: str | None = None  # default: the study's data folder
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int = DEFAULT_GRACE_PERIOD
    max_failures: int = 3
    worker_index: int | None = None
    allow_other_data: bool = False  # `--allow-other-data`: a data fingerprint mismatch only warns  # `worker --worker-index`; else the scheduler's (search/_index.py)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"--config is not valid JSON ({e}); it is written by `hpsearch run`/`launch`") from None
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not isinstance(raw.get("study"), str) or set(raw) - names:
            raise UsageError(
                f"--config must be a JSON object with a string 'study' and only the keys {', '.join(sorted(names))}"
            )
        return cls(**raw)


def run_worker(
    config: WorkerConfig,
    url: str,
    data: Data | None = None,
    *,
    started: float | None = None,
    storage_flag: str | None = None,
) -> int:
    """Open the study, load the data once, run trials; the exit status. Used by ``worker``.

    Ends with the summary (best trial, next commands) unless a launcher started this worker
    (``$HPSEARCH_WORKER_ID``), which prints one for the whole study."""
    return run_worker_pass(config, url, data, started=started, storage_flag=storage_flag).rc


@dataclass(frozen=True)
class WorkerPass:
    """What one ``run_worker_pass`` did: its exit status and the trials it ran."""

    rc: int
    ran: int


def run_worker_pass(
    config: WorkerConfig,
    url: str,
    data: Data | None = None,
    *,
    started: float | None = None,
    storage_flag: str | None = None,
    summary: bool = True,
    after: WorkerPass | None = None,
) -> WorkerPass:
    """``run_worker`` for in-process ``run``, which may run two passes (``run --recheck``): the search
    with ``summary=False``, then the rechecks with ``after=`` the first pass. A second pass does not
    repeat the scheduler and pid lines, and its summary counts the trials of both passes."""
    import time

    from ._summary import print_summary

    started = time.monotonic() if started is None else started
    from ._heartbeat import reconcile_with_study
    from ._index import resolve_worker_index
    from ._objective import TrialRunner
    from ._objective import quiet_tensorflow
    from ._objective import set_memory_growth
    from ._study import load_study
    from ._study import read_settings
    from ._worker import Worker
    from ._worker import WorkerBudget
    from ._worker import emit
    from ._worker import hard_exit
    from .objectives import get_task
    from .storage import StoragePolicy

    quiet_tensorflow()
    _quiet_optuna()
    policy = StoragePolicy(heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period)
    storage = policy.open(url)
    settings = read_settings(load_study(storage, config.study, url=url))
    task = get_task(settings.task)
    index = resolve_worker_index(config.worker_index)
    study = load_study(storage, config.study, url=url, settings=settings, worker_index=index.index)
    reconcile_with_study(study, config.heartbeat_interval, config.grace_period)  # exit 2 if it clashes
    worker_id = os.environ.get("HPSEARCH_WORKER_ID")
    prefix = f"[{worker_id}] " if worker_id else ""
    if after is None:
        emit(f"{prefix}{index.describe()}")  # before anything can end the worker: which scheduler it saw
    from ._extend import finished_trials

    if settings.n_trials is not None and finished_trials(study) >= settings.n_trials:
        emit(
            f"study {config.study!r} has reached its cap of {settings.n_trials} finished trials: nothing to run; "
            f"raise it with `hpsearch extend --study {config.study} --n-trials N` (or --add K)"
        )
        return WorkerPass(0, 0)
    from ._fingerprint import check_data
    from ._fingerprint import files_fingerprint
    from ._fingerprint import split_counts

    data_dir = config.data_dir or settings.data_dir
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"data directory {data_dir} does not exist; fix --data-dir")
    fingerprint = files_fingerprint(data_dir)
    check_data(study, fingerprint, allow_other_data=config.allow_other_data, record=False)  # before a long load
    if data is None:
        data = task.load_data(data_dir, seed=settings.data_seed, options=settings.task_options)
    check_data(
        study, {**fingerprint, "splits": split_counts(data)}, allow_other_data=config.allow_other_data, record=True
    )
    set_memory_growth()
    if after is None:
        emit(
            f"{prefix}worker pid {os.getpid()} study {config.study!r} task {settings.task} "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}; data: {data.description}"
        )
    if not study.user_attrs.get("dataset"):
        try:
            study.set_user_attr("dataset", data.description)
        except Exception:
            pass
    runner = TrialRunner(
        task,
        data,
        max_epochs=settings.max_epochs,
        seed=settings.seed,
        first_step=settings.first_step,
        value_window=settings.value_window or 1,
        floor_after=settings.constant_answer_after,
    )
    worker = Worker(
        study,
        runner,
        cap=settings.n_trials,
        budget=WorkerBudget(n_trials=config.n_trials, timeout=config.timeout, max_failures=config.max_failures),
        worker_id=worker_id,
        retry_callback=policy.retry_callback(study._storage),
        poll_seconds=policy.poll_seconds,
        sweep_seconds=policy.sweep_seconds,
        live_recheck=bool(settings.live_recheck),
    )
    worker.install_signal_handlers()
    n = worker.run()
    why = f"stopped by {signal.Signals(worker.stop_signal).name}" if worker.stop_signal else "budget spent"
    emit(f"{prefix}worker done: {n} trial(s) run, {why}")
    ran = n + (after.ran if after is not None else 0)
    if not worker_id and summary:
        print_summary(study, storage_flag, started, ran=ran)
    if worker.stop_signal:
        hard_exit(0)  # study writes done; skip an interpreter shutdown that tf.data can deadlock
    return WorkerPass(0, ran)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

"""The ``hpsearch`` command line: one small class per command (``add_arguments`` / ``take_action``).

Every command takes ``--storage`` (else ``$HPSEARCH_STORAGE``, else ``sqlite:///hpsearch.db``).
Errors print one line and exit 2 (bad input, nothing written) or 1/3 (a worker gave up).
Heavy imports (TensorFlow, Optuna) happen inside ``take_action``: ``--help`` and ``tasks`` are fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path
import sys
from typing import Any

from ._checks import check_args
from ._errors import HpsearchError
from ._errors import UsageError
from ._recheck import DEFAULT_REPEATS
from ._recheck import DEFAULT_TOP
from ._recheck import LIVE_HEADROOM
from ._runworker import WorkerConfig
from ._runworker import run_worker
from ._runworker import run_worker_pass
from .objectives._fit import precision_setting
from .storage import mask_text
from .storage import mask_url
from .storage import resolve_url

_logger = logging.getLogger("hpsearch")


# -- argument types: out-of-range values are usage errors (exit 2) -----------------------------
def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return v


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return v


def port_number(text: str) -> int:
    v = positive_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (1-65535)")
    return v


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.replace("-", "_"), value


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors (exit 2) that point at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Command:
    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        pass

    def take_action(self, args: argparse.Namespace) -> int:
        raise NotImplementedError

    # shared helpers
    @staticmethod
    def add_storage(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--storage",
            metavar="URL",
            help="storage URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db). Prefer the "
            "environment for URLs with passwords, or $HPSEARCH_STORAGE_PASSWORD[_FILE]",
        )

    @staticmethod
    def add_heartbeat(p: argparse.ArgumentParser) -> None:
        from .storage import DEFAULT_GRACE_PERIOD
        from .storage import DEFAULT_HEARTBEAT_INTERVAL

        p.add_argument(
            "--heartbeat-interval",
            type=positive_int,
            default=DEFAULT_HEARTBEAT_INTERVAL,
            metavar="S",
            help=f"seconds between a running trial's heartbeats (default {DEFAULT_HEARTBEAT_INTERVAL})",
        )
        p.add_argument(
            "--grace-period",
            type=positive_int,
            default=DEFAULT_GRACE_PERIOD,
            metavar="S",
            help="seconds without heartbeat before a RUNNING trial is failed and retried "
            f"(default {DEFAULT_GRACE_PERIOD})",
        )
        p.add_argument(
            "--max-failures",
            type=positive_int,
            default=3,
            metavar="K",
            help="stop a worker after K failed trials in a row (default 3)",
        )

    @staticmethod
    def add_settings(p: argparse.ArgumentParser) -> None:
        """Study settings; defaults are None so ``run`` can tell given flags from defaults."""
        p.add_argument("--sampler", choices=("tpe", "random", "gp"), help="default tpe")
        p.add_argument(
            "--pruner",
            choices=("asha", "hyperband", "median", "none"),
            help="default asha; with any of them but none, a trial no better than always giving the most common "
            "val class's answer is also stopped, after --prune-after epochs (at least 2)",
        )
        p.add_argument("--max-epochs", type=positive_int, metavar="N", help="epochs per trial at most (default 10)")
        p.add_argument(
            "--prune-after",
            type=positive_int,
            metavar="N",
            help="epochs before a pruner may first stop a trial (default: the task's own, 1; cifar10_cnn 4)",
        )
        p.add_argument(
            "--value-window",
            type=positive_int,
            metavar="N",
            help="a complete trial's value: its best mean of N consecutive epochs' val accuracy (default 3; "
            "1: its single best epoch)",
        )
        p.add_argument(
            "--live-recheck",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="train each new best trial once more while the search runs (within the cap; a worker with "
            f"--timeout only while {LIVE_HEADROOM:g}x the trial's training time is left), and let export pick by "
            "the mean of its runs (default on; --no-live-recheck turns it off; see BENCHMARKS.md)",
        )
        p.add_argument("--seed", type=non_negative_int, metavar="S", help="sampler and training seed (default 0)")
        p.add_argument(
            "--n-trials",
            type=positive_int,
            metavar="N",
            help="study-wide cap on finished (COMPLETE + PRUNED) trials that all workers respect",
        )
        p.add_argument(
            "--no-baseline",
            action="store_true",
            default=None,
            help="do not enqueue the seed notebooks' configurations (nor --baseline ones) as the first trials",
        )
        p.add_argument(
            "--baseline-prior",
            action="store_true",
            default=None,
            help="also draw start-up trials around the best baseline, decaying as trials accumulate "
            "(off by default: see BENCHMARKS.md, replay ablation)",
        )
        p.add_argument(
            "--baseline",
            action="append",
            default=[],
            metavar="FILE",
            help="your own starting configuration(s): a params file as `export` writes, a JSON/YAML params "
            "mapping or a list of them; enqueued after the task's baselines and used as a prior (repeatable)",
        )
        p.add_argument(
            "--weights", metavar="W", help="backbone weights for backbone tasks: imagenet, none, or a weights file"
        )
        p.add_argument(
            "--option",
            type=key_value,
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a task option (see `hpsearch tasks`), repeatable",
        )


def _settings_from(args: argparse.Namespace, task: str) -> tuple[Any, set[str]]:
    from ._study import StudySettings

    given: dict[str, Any] = {}
    for key in ("sampler", "pruner", "max_epochs", "seed", "n_trials", "prune_after", "value_window", "live_recheck"):
        if getattr(args, key, None) is not None:
            given[key] = getattr(args, key)
    if getattr(args, "no_baseline", None):
        given["baselines"] = False
    if getattr(args, "baseline_prior", None):
        if getattr(args, "no_baseline", None):
            raise UsageError("--baseline-prior needs baselines; drop --no-baseline")
        given["baseline_prior"] = True
    if getattr(args, "baseline", None):
        from ._study import read_baseline_file

        if getattr(args, "no_baseline", None):
            raise UsageError("--baseline and --no-baseline contradict each other; give one of them")
        given["user_baselines"] = [params for path in args.baseline for params in read_baseline_file(path)]
    options = dict(getattr(args, "option", []) or [])
    if getattr(args, "weights", None) is not None:
        options["weights"] = args.weights
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise UsageError(f"data directory {data_dir} does not exist; fix --data-dir")
        data_dir = str(Path(data_dir).resolve())
    from .objectives import get_task
    from .objectives import task_options

    if options:
        given["task_options"] = options
    options = task_options(get_task(task), options)
    s = StudySettings(task=task, data_dir=data_dir, **{**given, "task_options": options})
    return s, set(given) | {"task"}


def _open(args: argparse.Namespace, **kwargs: Any) -> tuple[Any, str]:
    from .storage import open_storage

    url = resolve_url(getattr(args, "storage", None))
    return open_storage(url, **kwargs), url


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- commands -----------------------------------------------------------------------------------
class Tasks(Command):
    name = "tasks"
    help = "list the tasks with one-line descriptions"

    def take_action(self, args: argparse.Namespace) -> int:
        from .objectives import list_tasks

        rows = list_tasks()
        width = max(len(n) for n, _ in rows)
        for name, desc in rows:
            print(f"{name:<{width}}  {desc}")
        return 0


class Create(Command):
    name = "create"
    help = "create a study and record its task and settings"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", required=True, help="a task from `hpsearch tasks`, or package.module:attr")
        p.add_argument("--study", required=True, metavar="NAME")
        p.add_argument("--exist-ok", action="store_true", help="reuse an existing study with the same settings")
        p.add_argument("--data-dir", metavar="D", help="default data directory for this study's workers")
        self.add_settings(p)
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._study import create_study

        _quiet_optuna()
        settings, given = _settings_from(args, args.task)
        from ._study import validate_settings

        settings = settings.resolved(validate_settings(settings))  # before anything is written
        storage, url = _open(args, create_tables=True)
        study, created = create_study(
            # A value window not asked for is this version's default, not a difference from an older study.
            storage,
            args.study,
            settings,
            url=url,
            exist_ok=args.exist_ok,
            ignore={"value_window", "live_recheck"} - given,
        )
        if not created:  # what the study holds (an older version's defaults may differ from this one's)
            from ._study import read_settings

            settings = read_settings(study)
        verb = "created" if created else "exists (same settings)"
        print(
            f"study {args.study!r} {verb} in {mask_url(url)}: task {settings.task}, sampler {settings.sampler}, "
            f"pruner {settings.pruner}"
            + (f" (from epoch {settings.prune_after})" if settings.pruner != "none" else "")
            + f", max {settings.max_epochs} epochs"
            + (
                f", a trial's value its best {settings.value_window}-epoch mean"
                if (settings.value_window or 1) > 1
                else ""
            )
            + (", live recheck of each new best" if settings.live_recheck else "")
            + (f", cap {settings.n_trials} trials" if settings.n_trials else "")
        )
        return 0


class Extend(Command):
    name = "extend"
    help = (
        "change a study's cap on finished trials (e.g. raise it to run more trials); workers started afterwards use it"
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, metavar="NAME")
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--n-trials", type=positive_int, metavar="N", help="the new study-wide cap")
        g.add_argument("--add", type=positive_int, metavar="K", help="raise the cap by K trials")
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._extend import new_cap
        from ._extend import set_cap
        from ._study import load_study
        from ._study import read_settings

        _quiet_optuna()
        storage, url = _open(args)
        study = load_study(storage, args.study, url=url)
        settings = read_settings(study)
        cap, finished = new_cap(study, settings, n_trials=args.n_trials, add=args.add)
        set_cap(study, settings, cap, finished, by="extend")
        old = "none" if settings.n_trials is None else settings.n_trials
        print(
            f"study {args.study!r}: cap {old} -> {cap} finished trials ({finished} finished); "
            f"run them with `hpsearch worker --study {args.study}`"
        )
        return 0


class Recheck(Command):
    name = "recheck"
    help = (
        "train the top configurations again (fresh seeds, no pruning) so that export picks by their mean, "
        "not by one lucky run"
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, metavar="NAME")
        p.add_argument(
            "--top",
            type=positive_int,
            default=DEFAULT_TOP,
            metavar="K",
            help=f"the K best configurations (default {DEFAULT_TOP})",
        )
        p.add_argument(
            "--repeats",
            type=positive_int,
            default=DEFAULT_REPEATS,
            metavar="N",
            help=f"more runs of each (default {DEFAULT_REPEATS})",
        )
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._recheck import enqueue_rechecks
        from ._study import load_study

        _quiet_optuna()
        storage, url = _open(args)
        study = load_study(storage, args.study, url=url)
        numbers, n, cap = enqueue_rechecks(study, top=args.top, repeats=args.repeats)
        st = f" --storage {mask_url(args.storage)}" if args.storage else ""
        raised = f"; cap raised to {cap} finished trials" if cap >= 0 else ""
        print(
            f"study {args.study!r}: {n} recheck(s) of trial(s) {', '.join(map(str, numbers))} enqueued{raised}; "
            f"train them with `hpsearch worker --study {args.study}{st}`, then `hpsearch export --study "
            f"{args.study}{st}` picks by the mean of each configuration's runs"
        )
        return 0


class WorkerCmd(Command):
    name = "worker"
    help = "pull and run trials of a study until its budget is spent"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", metavar="NAME", help="required unless --config")
        p.add_argument("--n-trials", type=positive_int, metavar="N", help="trials this worker runs at most")
        p.add_argument("--timeout", type=positive_float, metavar="S", help="start no trial after S seconds")
        p.add_argument("--data-dir", metavar="D", help="data directory (default: the study's, else download)")
        p.add_argument(
            "--worker-index",
            type=non_negative_int,
            metavar="I",
            help="sampler seed offset (default: $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX, else host+pid)",
        )
        p.add_argument(
            "--allow-other-data",
            action="store_true",
            help="run even if the data differs from what the study's trials used (see `data_fingerprint`)",
        )
        self.add_heartbeat(p)
        p.add_argument(
            "--config",
            metavar="JSON",
            help="the whole worker configuration as one JSON object, in place of the flags above "
            "(how `run` and `launch` start their workers)",
        )
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        if args.config is not None:
            config = WorkerConfig.from_json(args.config)
        elif args.study is None:
            raise UsageError("give --study NAME (or --config JSON)")
        else:
            config = _worker_config(args, args.study, args.n_trials)
            if args.worker_index is not None:
                config = dataclasses.replace(config, worker_index=args.worker_index)
        return run_worker(config, resolve_url(args.storage), storage_flag=args.storage)


class Run(Command):
    name = "run"
    help = "create the study if missing and run K local workers: the one-command main job"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", required=True)
        p.add_argument("--study", metavar="NAME", help="default: the task name")
        p.add_argument(
            "--workers", type=positive_int, default=1, metavar="K", help="local worker processes (default 1)"
        )
        p.add_argument("--data-dir", metavar="D", help="data directory (default: download the data set)")
        p.add_argument(
            "--allow-other-data",
            action="store_true",
            help="run even if the data differs from what the study's trials used (see `data_fingerprint`)",
        )
        p.add_argument("--timeout", type=positive_float, metavar="S", help="per worker: start no trial after S seconds")
        p.add_argument(
            "--recheck",
            type=non_negative_int,
            default=0,
            metavar="K",
            help=f"after the search, train the K best configurations {DEFAULT_REPEATS} more times each (fresh "
            "seeds, unpruned) and pick by the mean, as `hpsearch recheck --top K` (default 0: no recheck)",
        )
        self.add_settings(p)
        self.add_heartbeat(p)
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        import time

        from ._objective import quiet_tensorflow
        from ._study import create_study
        from ._study import validate_settings

        started = time.monotonic()
        quiet_tensorflow()
        _quiet_optuna()
        study_name = args.study or args.task
        settings, given = _settings_from(args, args.task)
        if args.n_trials is None and "n_trials" not in given:
            from dataclasses import replace

            settings = replace(settings, n_trials=20)
        task = validate_settings(settings)
        url = resolve_url(args.storage)
        # Load the data before creating anything: a bad --data-dir must write nothing.
        data = task.load_data(settings.data_dir, seed=settings.data_seed, options=settings.task_options)
        from .storage import open_storage

        storage = open_storage(url, create_tables=True)
        _quiet_optuna()
        study, created = create_study(
            storage, study_name, settings, url=url, exist_ok=True, compare=given - {"n_trials"}
        )
        print(f"study {study_name!r} {'created' if created else 'reused'} in {mask_url(url)}", flush=True)
        if not created and "n_trials" in given:  # `run --n-trials N` on an existing study: as `extend`
            from ._extend import new_cap
            from ._extend import set_cap
            from ._study import read_settings

            old = read_settings(study)
            if old.n_trials != settings.n_trials:
                cap, finished = new_cap(study, old, n_trials=settings.n_trials, add=None)
                set_cap(study, old, cap, finished, by="run")
                print(f"cap {old.n_trials} -> {cap} finished trials ({finished} finished), as `hpsearch extend`")
        config = _worker_config(args, study_name, None)  # --n-trials is the study cap, not a worker cap
        if args.workers == 1:
            # In-process, reusing the data loaded above.
            os.environ.setdefault("HPSEARCH_WORKER_INDEX", "0")
            search = run_worker_pass(
                config, url, data=data, started=started, storage_flag=args.storage, summary=not args.recheck
            )
            if search.rc != 0 or not args.recheck:
                return search.rc
            if not _enqueue_rechecks(url, study_name, args.recheck):
                from ._study import load_study
                from ._summary import print_summary

                # The summary the search pass held back.
                print_summary(load_study(open_storage(url), study_name, url=url), args.storage, started, search.ran)
                return 0
            return run_worker_pass(config, url, data=data, started=started, storage_flag=args.storage, after=search).rc
        from ._launch import Launcher
        from ._launch import plan_slots
        from ._study import load_study

        del data
        rc = Launcher(plan_slots([], 1, args.workers), config, storage_url=args.storage).run()
        if rc == 0 and args.recheck and _enqueue_rechecks(url, study_name, args.recheck):
            rc = Launcher(plan_slots([], 1, args.workers), config, storage_url=args.storage).run()
        from ._summary import print_summary

        # A fresh storage: the one opened before the workers ran may read an old snapshot (SQLite).
        print_summary(load_study(open_storage(url), study_name, url=url), args.storage, started)
        return rc


def _enqueue_rechecks(url: str, study_name: str, top: int) -> bool:
    """``run --recheck K`` after the search: enqueue the rechecks (``_recheck.py``); False where the
    study has no COMPLETE trial to recheck (said, not an error: the search itself ran)."""
    from ._recheck import candidates
    from ._recheck import enqueue_rechecks
    from ._study import load_study
    from .storage import open_storage

    study = load_study(open_storage(url), study_name, url=url)  # fresh: what the workers wrote
    if not candidates(study, top):
        print("recheck: no COMPLETE trial to recheck", flush=True)
        return False
    numbers, n, _ = enqueue_rechecks(study, top=top, repeats=DEFAULT_REPEATS)
    print(f"recheck: {n} more run(s) of trial(s) {', '.join(map(str, numbers))}, unpruned", flush=True)
    return True


def _worker_config(args: argparse.Namespace, study: str, n_trials: int | None) -> WorkerConfig:
    """The worker flags (``add_heartbeat``, ``--timeout``, ``--data-dir``) as a ``WorkerConfig``."""
    data_dir = getattr(args, "data_dir", None)
    return WorkerConfig(
        study=study,
        n_trials=n_trials,
        timeout=getattr(args, "timeout", None),
        data_dir=str(Path(data_dir).resolve()) if data_dir else None,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        max_failures=args.max_failures,
        allow_other_data=bool(getattr(args, "allow_other_data", False)),
    )


class Launch(Command):
    name = "launch"
    help = "run one worker per GPU slot (or K CPU workers) on this machine, restarting crashed ones"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, metavar="NAME")
        p.add_argument("--gpus", default="auto", help="auto (detect), none, or a list like 0,1 (default auto)")
        p.add_argument(
            "--workers-per-gpu",
            type=positive_int,
            default=1,
            metavar="K",
            help="workers per GPU; without GPUs, the number of CPU workers (default 1)",
        )
        p.add_argument(
            "--max-restarts",
            type=non_negative_int,
            default=3,
            metavar="N",
            help="restarts of a crashed worker per slot (default 3)",
        )
        p.add_argument("--data-dir", metavar="D")
        p.add_argument("--timeout", type=positive_float, metavar="S", help="per worker")
        p.add_argument(
            "--allow-other-data",
            action="store_true",
            help="run even if the data differs from what the study's trials used (see `data_fingerprint`)",
        )
        p.add_argument(
            "--n-trials",
            dest="worker_n_trials",
            type=positive_int,
            metavar="N",
            help="per worker cap (the study's own cap applies as well)",
        )
        self.add_heartbeat(p)
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        import time

        from ._launch import Launcher
        from ._launch import detect_gpus
        from ._launch import plan_slots
        from ._study import load_study
        from .storage import open_storage

        url = resolve_url(args.storage)
        _quiet_optuna()
        load_study(open_storage(url), args.study, url=url)  # fail fast: the study must exist
        if args.gpus == "auto":
            gpus = detect_gpus()
        elif args.gpus == "none":
            gpus = []
        else:
            gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
            if not gpus or not all(g.isdigit() for g in gpus):
                raise UsageError(f"--gpus {args.gpus!r}: give auto, none or GPU ids like 0,1")
        slots = plan_slots(gpus, args.workers_per_gpu, args.workers_per_gpu)
        from ._index import resolve_worker_index

        base = resolve_worker_index()  # under Slurm or Kubernetes: this launcher's own index
        if base.scheduler is not None or base.source == "HPSEARCH_WORKER_INDEX":
            print(f"[launch] {base.describe()}: worker indices offset by it", flush=True)
        print(
            f"[launch] study {args.study!r}: {len(slots)} worker(s) on "
            + (f"GPU(s) {','.join(gpus)}" if gpus else "CPU"),
            flush=True,
        )
        config = _worker_config(args, args.study, args.worker_n_trials)
        started = time.monotonic()
        rc = Launcher(
            slots,
            config,
            storage_url=args.storage,
            max_restarts=args.max_restarts,
            base_index=base.index if base.source != "host+pid" else 0,
        ).run()
        from ._summary import print_summary

        print_summary(load_study(open_storage(url), args.study, url=url), args.storage, started)
        return rc


class Slurm(Command):
    name = "slurm"
    help = "write (and with --submit, submit) an sbatch job array of workers for a study"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from ._slurm import add_arguments

        add_arguments(p)
        self.add_heartbeat(p)
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._slurm import take_action

        return take_action(args)


class Studies(Command):
    name = "studies"
    help = "list the studies in the storage with task, trial counts and best value"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._claim import split_surplus

        storage, url = _open(args)
        rows = []
        for fs in storage.get_all_studies():
            trials, _ = split_surplus(storage.get_all_trials(fs._study_id, deepcopy=False))
            counts: dict[str, int] = {}
            for t in trials:
                counts[t.state.name] = counts.get(t.state.name, 0) + 1
            best = max((t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None), default=None)
            task = fs.user_attrs.get("task", "-")
            rows.append((fs.study_name, task, len(trials), counts, best))
        if not rows:
            print(f"no studies in {mask_url(url)}")
            return 0
        print(
            f"{'study':<20} {'task':<14} {'trials':>6}  {'complete':>8} {'pruned':>6} {'fail':>4} {'running':>7}  best"
        )
        for name, task, n, c, best in rows:
            print(
                f"{name:<20} {task:<14} {n:>6}  {c.get('COMPLETE', 0):>8} {c.get('PRUNED', 0):>6} "
                f"{c.get('FAIL', 0):>4} {c.get('RUNNING', 0):>7}  {'-' if best is None else f'{best:.4f}'}"
            )
        return 0


class Status(Command):
    name = "status"
    help = "trials by state, best value and params, and a per-trial table"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, metavar="NAME")
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._claim import split_surplus
        from ._recheck import pick
        from ._recheck import pick_line
        from ._study import load_study
        from ._summary import fmt
        from ._summary import format_params
        from ._worker import trial_note

        storage, url = _open(args)
        study = load_study(storage, args.study, url=url)
        trials, surplus = split_surplus(study.get_trials(deepcopy=False))
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        print(f"study {args.study!r} ({study.user_attrs.get('task', '?')}) in {mask_url(url)}")
        print("trials: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
        if surplus:
            print(f"({len(surplus)} surplus trial(s) beyond the study cap, never run, left out)")
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        if complete:
            best = study.best_trial
            print(
                f"best: trial {best.number} value {fmt(best.value)} best_epoch {best.user_attrs.get('best_epoch')} "
                f"cache {'yes' if best.user_attrs.get('feature_cache') else 'no'} params {format_params(best.params)}"
            )
            chosen = pick(study)
            if chosen is not None and chosen.measurements > 1:
                print(f"pick (export): {pick_line(chosen)}")
        print(f"{'#':>4} {'state':<8} {'value':>7} {'epochs':>6} {'seconds':>8} {'cache':>5}  note")
        for t in trials:
            a = t.user_attrs
            value = "-" if t.value is None else fmt(t.value)
            secs = a.get("seconds")
            cache = "yes" if a.get("feature_cache") else "-"
            print(
                f"{t.number:>4} {t.state.name:<8} {value:>7} {a.get('epochs_run', 0):>6} "
                f"{'-' if secs is None else f'{secs:.1f}':>8} {cache:>5}  {trial_note(t)}"
            )
        return 0


class Export(Command):
    name = "export"
    help = "write the best params (with task, trial, best epoch, versions) to a params file"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, metavar="NAME")
        p.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
        p.add_argument("--format", choices=("json", "yaml"), help="default: from the file name, else json")
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._export import dump
        from ._export import export_best
        from ._export import write_output
        from ._study import load_study
        from ._study import read_settings

        storage, url = _open(args)
        study = load_study(storage, args.study, url=url)
        doc = export_best(study, read_settings(study), storage_masked=mask_url(url))
        fmt = args.format or ("yaml" if args.output and args.output.endswith((".yaml", ".yml")) else "json")
        text = dump(doc, fmt)
        if args.output:
            write_output(args.output, text)
            runs = len(doc["measured_by"])
            how = f", mean of {runs} runs" if runs > 1 else ""
            print(
                f"trial {doc['trial']} (value {doc['value']:.4f}{how}, best epoch {doc['best_epoch']}) -> {args.output}"
            )
        else:
            sys.stdout.write(text)
        return 0


class Report(Command):
    name = "report"
    help = "write one self-contained HTML report of a study (plots, best params, what pruning saved)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, metavar="NAME")
        p.add_argument("-o", "--output", default="report.html", metavar="FILE", help="default report.html")
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from ._claim import split_surplus
        from ._report import build_report
        from ._study import load_study
        from ._study import read_settings

        out = Path(args.output)
        if not out.parent.is_dir():
            raise UsageError(f"folder {out.parent} does not exist; create it or fix -o")
        _quiet_optuna()
        storage, url = _open(args)  # read-only: never creates tables
        study = load_study(storage, args.study, url=url)
        html, savings = build_report(study, read_settings(study), storage_masked=mask_url(url))
        out.write_text(html, encoding="utf-8")
        print(
            f"wrote {out} ({len(html.encode()) / 1e6:.1f} MB) for study {args.study!r} in {mask_url(url)}: "
            f"{len(split_surplus(study.get_trials(deepcopy=False))[0])} trials; {savings.sentence()}"
        )
        return 0


class Train(Command):
    name = "train"
    help = "final training from an exported params file; one evaluation on the test set"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--params", required=True, metavar="FILE")
        p.add_argument("--data-dir", metavar="D")
        p.add_argument("--out", default="final", metavar="DIR", help="output folder (default final/)")
        p.add_argument(
            "--epochs",
            default="best",
            metavar="N|best",
            help="epochs to train; best (default) = the best trial's best epoch",
        )
        p.add_argument("--train-on", choices=("train", "train+val"), default="train")
        p.add_argument("--seed", type=non_negative_int, default=0)
        p.add_argument(
            "--allow-module",
            action="store_true",
            help="let the params file's task name a module to import (package.module[:attr] on PYTHONPATH); "
            "without it only built-in and installed plug-in tasks are used",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from ._export import load_params_file
        from ._objective import quiet_tensorflow
        from ._train import check_output_dir
        from ._train import resolve_epochs
        from ._train import train_final

        doc, task = load_params_file(args.params, allow_module=args.allow_module)
        epochs = resolve_epochs(doc, args.epochs)
        check_output_dir(args.out)
        data_dir = args.data_dir or doc.get("data_dir")  # the study's own data folder by default
        if data_dir is not None and not Path(data_dir).is_dir():
            raise UsageError(f"data directory {data_dir} does not exist; fix --data-dir")
        quiet_tensorflow()
        out = Path(args.out)
        m = train_final(doc, task, data_dir=data_dir, out=out, epochs=epochs, train_on=args.train_on, seed=args.seed)
        print(
            f"test accuracy {m['test_accuracy']:.4f} loss {m['test_loss']:.4f} on {m['test_size']} images "
            f"after {epochs} epoch(s); wrote {out}/model.keras, metrics.json, params.json, "
            "learning_curves.png, confusion_matrix.png, misclassified.png"
        )
        return 0


class Dashboard(Command):
    name = "dashboard"
    help = "serve optuna-dashboard on the same storage (localhost by default)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=port_number, default=8080)
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        from .storage import open_storage

        url = resolve_url(args.storage)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            _logger.warning(
                "dashboard bound to %s: it has no authentication and anyone who reaches this port can "
                "read and delete studies; prefer 127.0.0.1 behind an SSH tunnel or an authenticating proxy",
                args.host,
            )
        # A read-only consumer: never creates or migrates tables (open_storage checks they exist).
        storage = open_storage(url)
        from optuna_dashboard import run_server

        from ._serve import check_port
        from ._serve import port_error

        check_port(args.host, args.port)  # before the line that says it is serving
        print(f"optuna-dashboard for {mask_url(url)} on http://{args.host}:{args.port}/", flush=True)
        # In-process: the URL (and its password) is never on a command line; the server gets a
        # storage object, so the page never shows the URL either.
        try:
            run_server(storage, host=args.host, port=args.port)
        except OSError as e:  # taken between the check and the bind
            raise port_error(args.host, args.port, e) from None
        return 0


class Proxy(Command):
    name = "proxy"
    help = "serve the storage to many workers through Optuna's gRPC proxy (workers use grpc://HOST:PORT)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=port_number, default=13000)
        self.add_storage(p)

    def take_action(self, args: argparse.Namespace) -> int:
        import optuna

        from .storage import open_storage

        url = resolve_url(args.storage)
        if url.startswith("grpc://"):
            raise UsageError("the proxy needs a database URL, not grpc://; set --storage or $HPSEARCH_STORAGE")
        storage = optuna.storages.get_storage(open_storage(url))  # with Optuna's in-process cache
        print(
            f"gRPC storage proxy for {mask_url(url)} on {args.host}:{args.port}; "
            f"workers: HPSEARCH_STORAGE=grpc://{args.host}:{args.port}",
            flush=True,
        )
        optuna.storages.run_grpc_proxy_server(storage, host=args.host, port=args.port)
        return 0


COMMANDS: list[type[Command]] = [
    Tasks,
    Create,
    Extend,
    Recheck,
    WorkerCmd,
    Run,
    Launch,
    Slurm,
    Studies,
    Status,
    Export,
    Report,
    Train,
    Dashboard,
    Proxy,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpsearch", description="Hyperparameter search for Keras image classifiers on Optuna.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cls in COMMANDS:
        cmd = cls()
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._quiet import install

    install(args.verbose)  # before anything imports TensorFlow
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "_command", None):
        parser.print_help()
        return 2
    url = None
    try:
        url = resolve_url(getattr(args, "storage", None))
        check_args(args)  # before anything is opened: heartbeat pair, study name
        precision_setting()  # HPSEARCH_PRECISION, before any worker or training starts
        return args._command.take_action(args)
    except HpsearchError as e:  # TaskError, StorageError, UsageError, WorkerStopped: each carries its code
        _fail(f"hpsearch {args.command}: {e.label}: {e}", url)
        return e.exit_code
    except KeyboardInterrupt:
        _fail(f"hpsearch {args.command}: interrupted", url)
        return 130
    except BrokenPipeError:
        # The reader went away (`hpsearch status | head`): not an error. Python's recipe: point
        # stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:  # a bug: keep the traceback, but never with a password in it
        import traceback

        from .storage._url import url_password

        secrets = [p for p in [url_password(url)] if p] if url else []
        sys.stderr.write(mask_text(traceback.format_exc(), *secrets))
        return 1


def _fail(message: str, url: str | None) -> None:
    from .storage._url import url_password

    secrets = [p for p in [url_password(url)] if p] if url else []
    sys.stderr.write(mask_text(" ".join(message.split()), *secrets) + "\n")


if __name__ == "__main__":
    sys.exit(main())

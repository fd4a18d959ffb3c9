"""``hpsearch slurm``: a study's workers as one Slurm job array.

The command writes a commented ``sbatch`` script (and submits it with ``--submit``). Each array task
``exec``s one ``hpsearch worker``, so the worker *is* the batch shell and receives the signals
Slurm sends it:

- ``#SBATCH --signal=B:USR1@LEAD``: LEAD seconds before the time limit (Slurm checks limits about
  every 30 s, so it may come up to a minute early) the worker gets SIGUSR1, ends its current trial
  as FAIL, re-enqueues it with the same params and exits 0. The task ends COMPLETED, well before
  Slurm's own SIGTERM/SIGKILL at the limit.
- ``scancel`` sends SIGTERM: the same clean stop.
- A node that dies sends nothing: the trial stays RUNNING until another worker's sweep finds its
  heartbeat older than the grace period, fails it and re-enqueues it.

The worker index (sampler seed offset) comes from ``SLURM_ARRAY_TASK_ID`` (see ``_index.py``);
the storage comes from the environment or a password file, never from a command line and never
written into the script.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from datetime import timezone
import os
from pathlib import Path
import re
import shlex
import shutil
import subprocess
import sys

from ._errors import UsageError
from .storage import mask_url
from .storage import resolve_url

DEFAULT_SIGNAL_LEAD = 120
SIGNAL = "USR1"  # the worker handles SIGUSR1 like SIGTERM (search/_worker.py)

# Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def time_limit_seconds(text: str) -> int:
    """Seconds of a Slurm ``--time`` value; a ``UsageError`` naming the formats when it is not one."""
    m = _TIME.match(text.strip())
    if not m or text.strip() in ("", "-"):
        raise UsageError(
            f"--time {text!r} is not a Slurm time limit; use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
        )
    d, a, b, c = m.group("d", "a", "b", "c")
    n = [int(x) if x is not None else 0 for x in (d, a, b, c)]
    if d is not None:  # D-H[:M[:S]]
        return ((n[0] * 24 + n[1]) * 60 + n[2]) * 60 + n[3]
    if c is not None:  # H:M:S
        return (n[1] * 60 + n[2]) * 60 + n[3]
    if b is not None:  # M:S
        return n[1] * 60 + n[2]
    return n[1] * 60  # M


def default_hpsearch() -> str:
    """The ``hpsearch`` console script of this installation (absolute), else ``python -m hpsearch``."""
    script = Path(sys.executable).parent / "hpsearch"  # not resolved: a venv's python is a symlink
    if script.is_file() and os.access(script, os.X_OK):
        return str(script.absolute())
    return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m hpsearch"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import non_negative_int
    from .cli import positive_float
    from .cli import positive_int

    p.add_argument("--study", required=True, metavar="NAME")
    p.add_argument("--workers", type=positive_int, required=True, metavar="N", help="array tasks (one worker each)")
    p.add_argument(
        "--gpus-per-worker",
        type=non_negative_int,
        default=1,
        metavar="G",
        help="GPUs per array task (#SBATCH --gres=gpu:G); 0 hides every GPU (default 1)",
    )
    p.add_argument("--cpus-per-worker", type=positive_int, default=4, metavar="C", help="default 4")
    p.add_argument("--mem", metavar="SIZE", help="memory per task, as sbatch --mem (e.g. 16G)")
    p.add_argument("--partition", metavar="P")
    p.add_argument("--account", metavar="A")
    p.add_argument("--time", metavar="T", help="time limit per task, as sbatch --time (e.g. 4:00:00)")
    p.add_argument(
        "--signal-lead",
        type=positive_int,
        default=DEFAULT_SIGNAL_LEAD,
        metavar="S",
        help=f"send the worker SIG{SIGNAL} S seconds before the time limit (default {DEFAULT_SIGNAL_LEAD})",
    )
    p.add_argument(
        "--max-parallel",
        type=positive_int,
        metavar="K",
        help="at most K tasks running at once (--array=0-N%%K)",
    )
    p.add_argument(
        "--requeue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let Slurm requeue a task after preemption or node failure (default: on)",
    )
    p.add_argument(
        "--password-file",
        metavar="FILE",
        help="file holding the database password (default: $HPSEARCH_STORAGE_PASSWORD_FILE); its path, "
        "never its content, goes into the script",
    )
    p.add_argument("--data-dir", metavar="D", help="data directory the workers read (default: the study's)")
    p.add_argument("--timeout", type=positive_float, metavar="S", help="per worker: start no trial after S seconds")
    p.add_argument(
        "--hpsearch",
        dest="hpsearch_command",
        metavar="CMD",
        help=f"the hpsearch command on the compute nodes (default: {default_hpsearch()})",
    )
    p.add_argument("--log-dir", metavar="DIR", help="folder for the tasks' logs (default: the current folder)")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the script to write (default: hpsearch-STUDY.sbatch in the current folder)",
    )
    p.add_argument(
        "--sbatch-option",
        action="append",
        default=[],
        metavar="OPT",
        help="one more #SBATCH line, e.g. --sbatch-option=--qos=long (repeatable)",
    )
    p.add_argument("--submit", action="store_true", help="submit the script with sbatch after writing it")


def _storage_lines(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The script's storage lines (never a password) and extra environment for ``sbatch``."""
    from .storage._url import _CREDENTIALS
    from .storage._url import ENV_PASSWORD
    from .storage._url import ENV_PASSWORD_FILE
    from .storage._url import ENV_URL
    from .storage._url import ENV_URL_FILE
    from .storage._url import url_password

    url = resolve_url(args.storage)
    if url.startswith("sqlite"):
        raise UsageError(
            "the study is in SQLite, which Slurm tasks on several nodes cannot share; "
            "put it in PostgreSQL or MySQL and set $HPSEARCH_STORAGE (see README: PostgreSQL or MySQL for a team)"
        )
    lines: list[str] = []
    env: dict[str, str] = {}
    if not args.storage and not os.environ.get(ENV_URL) and os.environ.get(ENV_URL_FILE):
        path = Path(os.environ[ENV_URL_FILE]).expanduser().absolute()
        lines.append(f"export {ENV_URL_FILE}={shlex.quote(str(path))}  # a file holding the URL")
        lines.append(f"unset {ENV_URL}")
        plain = None
    else:
        plain = _CREDENTIALS.sub(lambda m: f"{m.group('head')}@", url)  # user:password@ -> user@
        lines.append(f"export {ENV_URL}={shlex.quote(plain)}  # without its password")
    password_file = args.password_file or os.environ.get(ENV_PASSWORD_FILE)
    if password_file:
        path = Path(password_file).expanduser().absolute()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise UsageError(f"password file {path} is not a readable file; fix --password-file")
        lines.append(f"export {ENV_PASSWORD_FILE}={shlex.quote(str(path))}  # the password: read from this file")
        lines.append(f"unset {ENV_PASSWORD}")
    elif plain is not None and url_password(url):
        # The password came from the URL or $HPSEARCH_STORAGE_PASSWORD: it stays out of the script;
        # sbatch passes the submitting shell's environment (--export=ALL, Slurm's default) to the job.
        lines.append(
            f': "${{{ENV_PASSWORD}:?set {ENV_PASSWORD} before sbatch, or regenerate with --password-file FILE}}"'
        )
        env[ENV_PASSWORD] = url_password(url) or ""
    return lines, env


def render_script(args: argparse.Namespace, storage_lines: list[str], *, log_dir: Path, command: str) -> str:
    """The sbatch script's text."""
    q = shlex.quote
    study = args.study
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", study)
    array = f"0-{args.workers - 1}" + (f"%{args.max_parallel}" if args.max_parallel else "")
    sbatch = [
        f"--job-name=hpsearch-{safe}",
        f"--array={array}",
        "--ntasks=1",
        f"--cpus-per-task={args.cpus_per_worker}",
    ]
    if args.gpus_per_worker:
        sbatch.append(f"--gres=gpu:{args.gpus_per_worker}")
    if args.mem:
        sbatch.append(f"--mem={args.mem}")
    if args.partition:
        sbatch.append(f"--partition={args.partition}")
    if args.account:
        sbatch.append(f"--account={args.account}")
    if args.time:
        sbatch.append(f"--time={args.time}")
    sbatch.append(f"--signal=B:{SIGNAL}@{args.signal_lead}")
    sbatch.append("--requeue" if args.requeue else "--no-requeue")
    sbatch.append(f"--output={log_dir / f'hpsearch-{safe}-%A_%a.out'}")
    sbatch.append("--open-mode=append")  # a requeued task appends to its log instead of truncating it
    sbatch += list(args.sbatch_option)
    worker = ["worker", "--study", study]
    for flag in ("heartbeat_interval", "grace_period", "max_failures"):
        worker += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.data_dir:
        worker += ["--data-dir", str(Path(args.data_dir).absolute())]
    if args.timeout:
        worker += ["--timeout", str(args.timeout)]
    gpu_line = (
        "# CUDA_VISIBLE_DEVICES: set by Slurm for the task's --gres GPUs"
        if args.gpus_per_worker
        else 'export CUDA_VISIBLE_DEVICES=""  # --gpus-per-worker 0: CPU only'
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    requeue_doc = (
        "#   --requeue: after preemption or a node failure Slurm puts the task back in the queue; it\n"
        "#   starts again with SLURM_RESTART_COUNT+1 (so a new sampler seed offset) and appends to its log.\n"
        "#   A preempted worker gets SIGTERM first and re-enqueues its trial itself; a dead node's trial\n"
        "#   is failed by the other workers' heartbeat sweep after the grace period and re-enqueued.\n"
        if args.requeue
        else "#   --no-requeue: a preempted task or one on a failed node is not restarted by Slurm.\n"
    )
    return f"""#!/bin/bash
# hpsearch workers for study {study!r} as a Slurm job array: {args.workers} task(s), one
# `hpsearch worker` each. Written by `hpsearch slurm` on {now}.
#
#   sbatch {q(str(args.output))}           # submit (again, to resume: see below)
#   squeue --me                            # the tasks; logs: {log_dir}/hpsearch-{safe}-JOB_TASK.out
#   hpsearch status --study {q(study)}     # the study, from any machine with the storage
#   scancel JOBID            # stop all tasks; scancel JOBID_3 stops one
#
# Each task's worker index (its sampler seed offset) is SLURM_ARRAY_TASK_ID. The workers pull
# trials from the shared study until its cap is spent, then exit 0; the cap holds exactly across
# tasks, resubmissions and restarts.
#
# Stopping. `scancel` sends SIGTERM; {args.signal_lead} s before the time limit Slurm sends SIG{SIGNAL}
# (--signal=B:{SIGNAL}@{args.signal_lead}: "B:" signals the batch shell, which `exec` below made the
# worker itself; Slurm checks limits about every 30 s, so it may come up to a minute early). Either
# signal ends the current trial as FAIL, re-enqueues it with the same params, and exits 0.
#
# Resuming. Submit this script again: new tasks continue the same study, re-enqueued trials
# first. Finished trials are kept; once the cap is reached a task exits at once.
#
# Requeue. A task that exits (budget spent, signal, error) or hits its time limit is never
# requeued by Slurm: resubmit instead.
{requeue_doc}#
# The storage comes from the lines below: a URL without its password, and the password from a
# file or the environment sbatch passes on; neither is on any command line.
{chr(10).join(f"#SBATCH {o}" for o in sbatch)}

set -eu
{chr(10).join(storage_lines)}
unset HPSEARCH_WORKER_INDEX  # an inherited index would give every task the same seed
export HPSEARCH_WORKER_ID="slurm-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}${{SLURM_RESTART_COUNT:+-r$SLURM_RESTART_COUNT}}"
{gpu_line}
export TF_FORCE_GPU_ALLOW_GROWTH=true PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL="${{TF_CPP_MIN_LOG_LEVEL:-2}}"
echo "hpsearch: task $SLURM_ARRAY_TASK_ID of array job $SLURM_ARRAY_JOB_ID on $(hostname)"
exec {command} {" ".join(q(a) for a in worker)}
"""


def take_action(args: argparse.Namespace) -> int:
    from ._study import load_study
    from .storage import open_storage

    if args.time is not None and time_limit_seconds(args.time) <= args.signal_lead:
        raise UsageError(
            f"--time {args.time} is not longer than --signal-lead {args.signal_lead} s; "
            "give a longer --time or a smaller --signal-lead"
        )
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise UsageError(f"data directory {args.data_dir} does not exist; fix --data-dir")
    storage_lines, extra_env = _storage_lines(args)
    url = resolve_url(args.storage)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_study(open_storage(url), args.study, url=url)  # fail fast: the study must exist
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", args.study)
    args.output = Path(args.output or f"hpsearch-{safe}.sbatch").absolute()
    if not args.output.parent.is_dir():
        raise UsageError(f"folder {args.output.parent} does not exist; create it or fix -o")
    log_dir = Path(args.log_dir or ".").absolute()
    if not log_dir.is_dir():
        raise UsageError(f"log folder {log_dir} does not exist; create it or fix --log-dir")
    command = args.hpsearch_command or default_hpsearch()
    text = render_script(args, storage_lines, log_dir=log_dir, command=command)
    args.output.write_text(text)
    args.output.chmod(0o755)
    print(
        f"wrote {args.output}: {args.workers} array task(s) for study {args.study!r} in {mask_url(url)}, "
        f"{args.gpus_per_worker} GPU(s) each"
    )
    if extra_env:
        print(
            "note: the database password is not in the script; the job reads $HPSEARCH_STORAGE_PASSWORD from the "
            "environment sbatch runs in (a password file is safer: --password-file FILE)"
        )
    if not args.submit:
        print(f"submit with: sbatch {shlex.quote(str(args.output))}")
        return 0
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise UsageError("sbatch is not on PATH; run on a Slurm login node, or drop --submit and copy the script there")
    env = {**os.environ, **extra_env}
    proc = subprocess.run([sbatch, "--parsable", str(args.output)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        first = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[0]
        raise UsageError(f"sbatch refused the script: {first}; fix the Slurm options (or the script) and resubmit")
    job = proc.stdout.strip().split(";")[0]
    print(f"submitted array job {job} ({args.workers} task(s)); watch: squeue -j {job}; stop: scancel {job}")
    return 0

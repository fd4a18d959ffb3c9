"""``hpsearch slurm``: the generated sbatch script, the worker's SIGUSR1, and a real Slurm job array.

The last test runs on a real single-node Slurm (``slurm_cluster.py``; Debian's slurm-wlm and
munge) against real PostgreSQL, and is marked ``slow`` and ``slurm``: ``.ci/run`` runs it in its
own step (``pytest -m slurm``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import re
import shutil
import signal
import subprocess
import time
from typing import Any

from conftest import cli_env
from conftest import hpsearch
import optuna
import pytest
from slurm_cluster import SlurmCluster
from slurm_cluster import start_cluster
from test_concurrency import create
from test_concurrency import load
from test_concurrency import start_worker
from test_concurrency import states
from test_concurrency import wait_for

from hpsearch._slurm import _storage_lines
from hpsearch._slurm import render_script
from hpsearch._slurm import time_limit_seconds
from hpsearch.cli import build_parser

SECRET = "s3cret-Pw-9f2"


def slurm_args(*extra: str):  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(["slurm", "--study", "cifar", "--workers", "4", *extra])
    args.output = Path("/tmp/x/hpsearch-cifar.sbatch")
    return args


def sbatch_options(text: str) -> list[str]:
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]


# -- the script ------------------------------------------------------------------------------------
def test_time_limit_formats() -> None:
    assert time_limit_seconds("90") == 5400
    assert time_limit_seconds("10:30") == 630
    assert time_limit_seconds("4:00:00") == 14400
    assert time_limit_seconds("1-12") == 36 * 3600
    assert time_limit_seconds("2-00:30:00") == 48 * 3600 + 1800
    with pytest.raises(Exception, match="not a Slurm time limit"):
        time_limit_seconds("4h")


def test_script_runs_one_exec_d_worker_per_array_task(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPSEARCH_STORAGE", "postgresql+psycopg2://hps@db.example:5432/hps")
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    monkeypatch.setenv("HPSEARCH_STORAGE_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("HPSEARCH_WORKER_INDEX", "7")
    args = slurm_args("--partition", "gpu", "--time", "4:00:00", "--max-parallel", "2", "--sbatch-option=--qos=long")
    lines, env = _storage_lines(args)
    text = render_script(args, lines, log_dir=tmp_path, command="/opt/venv/bin/hpsearch")
    opts = sbatch_options(text)
    assert "--array=0-3%2" in opts and "--gres=gpu:1" in opts and "--partition=gpu" in opts
    assert "--time=4:00:00" in opts and "--qos=long" in opts and "--requeue" in opts
    assert "--signal=B:USR1@120" in opts  # B: the batch shell, which exec made the worker
    assert f"--output={tmp_path}/hpsearch-cifar-%A_%a.out" in opts and "--open-mode=append" in opts
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[-1].startswith("exec /opt/venv/bin/hpsearch worker --study cifar ")
    assert any(line.startswith("unset HPSEARCH_WORKER_INDEX") for line in body)  # else every task: one seed
    assert f"export HPSEARCH_STORAGE_PASSWORD_FILE={pw}  # the password: read from this file" in body
    assert "export HPSEARCH_STORAGE=postgresql+psycopg2://hps@db.example:5432/hps  # without its password" in body
    assert SECRET not in text and env == {}
    assert not any(line.startswith("export CUDA_VISIBLE_DEVICES") for line in body)  # Slurm sets it for --gres
    if shutil.which("bash"):
        script = tmp_path / "s.sbatch"
        script.write_text(text)
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_a_password_in_the_url_stays_out_of_the_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HPSEARCH_STORAGE_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("HPSEARCH_STORAGE", f"postgresql+psycopg2://hps:{SECRET}@db.example:5432/hps")
    args = slurm_args("--gpus-per-worker", "0", "--no-requeue")
    lines, env = _storage_lines(args)
    text = render_script(args, lines, log_dir=tmp_path, command="hpsearch")
    assert SECRET not in text
    assert env == {"HPSEARCH_STORAGE_PASSWORD": SECRET}  # only for sbatch's environment (--submit)
    assert ': "${HPSEARCH_STORAGE_PASSWORD:?' in text
    opts = sbatch_options(text)
    assert "--no-requeue" in opts and not any(o.startswith("--gres") for o in opts)
    assert 'export CUDA_VISIBLE_DEVICES=""  # --gpus-per-worker 0: CPU only' in text


def test_a_url_file_is_passed_by_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(f"mysql+pymysql://hps:{SECRET}@db.example:3306/hps\n")
    for var in ("HPSEARCH_STORAGE", "HPSEARCH_STORAGE_PASSWORD", "HPSEARCH_STORAGE_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HPSEARCH_STORAGE_FILE", str(url_file))
    args = slurm_args()
    lines, env = _storage_lines(args)
    assert lines[0].startswith(f"export HPSEARCH_STORAGE_FILE={url_file}") and "unset HPSEARCH_STORAGE" in lines
    assert SECRET not in "\n".join(lines) and env == {}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--time", "2"], "is not longer than --signal-lead 120 s"),
        (["--time", "2h"], "not a Slurm time limit"),
        ([], "Slurm tasks on several nodes cannot share"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    env = cli_env(HPSEARCH_STORAGE=f"sqlite:///{tmp_path / 'x.db'}")
    proc = hpsearch("slurm", "--study", "s", "--workers", "2", *flags, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.sbatch"))


def test_missing_study_is_refused(pg_url: str, tmp_path: Path) -> None:
    proc = hpsearch(
        "slurm", "--study", "nope", "--workers", "2", cwd=tmp_path, env=cli_env(HPSEARCH_STORAGE=pg_url), check=False
    )
    assert proc.returncode == 2 and "hpsearch create" in proc.stderr
    assert not list(tmp_path.glob("*.sbatch"))


# -- the worker's side of --signal=B:USR1@S -------------------------------------------------------------
def test_only_the_first_signal_interrupts() -> None:
    """At the time limit Slurm sends USR1 and TERM in one pass; the second must not break into the
    first one's FAIL + re-enqueue (seen on the real cluster: the trial was left RUNNING)."""
    from hpsearch._worker import Worker
    from hpsearch._worker import WorkerBudget

    w = Worker(None, None, cap=None, budget=WorkerBudget())
    w._in_trial = True
    with pytest.raises(KeyboardInterrupt, match="SIGUSR1"):
        w._on_signal(signal.SIGUSR1, None)
    try:
        w._on_signal(signal.SIGTERM, None)  # still in the trial's clean-up: no second interrupt
    except KeyboardInterrupt:
        pytest.fail("a second signal interrupted the first one's clean-up")
    assert w._stop_signal == signal.SIGUSR1


def test_a_signal_that_comes_back_as_another_exception_is_still_an_interruption(tmp_path: Path) -> None:
    """A signal raised inside an import comes back as SystemError (seen under Slurm)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    from hpsearch._worker import Worker
    from hpsearch._worker import WorkerBudget

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'x.db'}")
    w = Worker(study, None, cap=None, budget=WorkerBudget())

    def runner(trial: optuna.Trial) -> float:
        try:
            w._on_signal(signal.SIGTERM, None)
        except KeyboardInterrupt:
            raise SystemError("<built-in function __import__> returned a result with an exception set") from None
        return 1.0

    w.runner = runner
    trial = study.ask()
    state, _, interrupted = w._run_one(trial, get_heartbeat_thread)
    assert state.name == "FAIL" and interrupted is not None
    assert study.trials[0].user_attrs["fail_reason"] == "interrupted by SIGTERM; re-enqueued"


def test_sigusr1_mid_trial_fails_and_requeues_the_trial_and_exits_0(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    create(url, study_name, tmp_path, "--n-trials", "2")
    w = start_worker(url, study_name, tmp_path, HPSEARCH_TEST_FAULTS="0:slow", HPSEARCH_TEST_SLOW_SECONDS="1")
    study = load(url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 1, 120, "trial 0 running")
    time.sleep(2)
    w.send_signal(signal.SIGUSR1)
    out, _ = w.communicate(timeout=30)
    assert w.returncode == 0, out
    assert "stopped by SIGUSR1" in out
    trials = load(url, study_name).get_trials()
    assert trials[0].state.name == "FAIL" and "SIGUSR1" in trials[0].user_attrs["fail_reason"]
    assert trials[1].state.name == "WAITING" and trials[1].params == trials[0].params


# -- a real Slurm ----------------------------------------------------------------------------------------
def assert_each_interruption_completes_once(trials: list[Any], interrupted: dict[int, Any]) -> set[int]:
    """Each interruption re-enqueues its trial once. An interrupted retry is re-enqueued in turn,
    under the same first trial (``failed_trial``, as Optuna's own retries): in the array test the
    other event can hit the retry (task 2 may draw task 1's re-enqueued trial, then get its
    time-limit signal). So each first trial's chain is its interrupted retries, then one COMPLETE
    trial, all with its params, and no configuration completes twice. Returns the first trials."""
    by_root: dict[int, list[int]] = {}
    for number, t in interrupted.items():
        by_root.setdefault(t.system_attrs.get("failed_trial", number), []).append(number)
    for root, fails in by_root.items():
        original = next(t for t in trials if t.number == root)
        chain = sorted((t for t in trials if t.system_attrs.get("failed_trial") == root), key=lambda t: t.number)
        assert root in fails and len(chain) == len(fails), (
            f"trial {root}: {len(fails)} interruptions, {len(chain)} retries"
        )
        assert [t.state.name for t in chain] == ["FAIL"] * (len(chain) - 1) + ["COMPLETE"], chain
        assert {t.number for t in chain[:-1]} == set(fails) - {root}  # every failed retry was interrupted
        assert all(t.params == original.params and t.user_attrs.get("retry_of") == root for t in chain)
    done = [
        t.user_attrs["retry_of"]
        for t in trials
        if t.user_attrs.get("retry_of") is not None and t.state.name == "COMPLETE"
    ]
    assert sorted(done) == sorted(by_root), done  # each interrupted configuration completed once
    return set(by_root)


def _chain_study(states_and_roots: list[tuple[str, int | None, str | None]]) -> tuple[list[Any], dict[int, Any]]:
    """Trials 0, 1, ... of one configuration: (state, failed_trial, fail_reason) each."""
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for state, root, reason in states_and_roots:
        study.add_trial(
            optuna.trial.create_trial(
                state=getattr(optuna.trial.TrialState, state),
                value=0.5 if state == "COMPLETE" else None,
                params={"x": 0.3},
                distributions=dist,
                user_attrs={k: v for k, v in (("retry_of", root), ("fail_reason", reason)) if v is not None},
                system_attrs={} if root is None else {"failed_trial": root},
            )
        )
    trials = study.get_trials()
    return trials, {t.number: t for t in trials if str(t.user_attrs.get("fail_reason", "")).startswith("interrupted")}


def test_an_interrupted_retry_is_retried_under_its_first_trial_and_completes_once() -> None:
    sigterm, sigusr1 = "interrupted by SIGTERM; re-enqueued", "interrupted by SIGUSR1; re-enqueued"
    # Both events hit one configuration: 0 by SIGTERM, its retry 1 by SIGUSR1, then 2 completes.
    trials, interrupted = _chain_study([("FAIL", None, sigterm), ("FAIL", 0, sigusr1), ("COMPLETE", 0, None)])
    assert assert_each_interruption_completes_once(trials, interrupted) == {0}
    # One event each: two chains of one retry.
    trials, interrupted = _chain_study(
        [("FAIL", None, sigterm), ("FAIL", None, sigusr1), ("COMPLETE", 0, None), ("COMPLETE", 1, None)]
    )
    assert assert_each_interruption_completes_once(trials, interrupted) == {0, 1}
    # A configuration that completed twice, or a retry that failed for another reason, is caught.
    trials, interrupted = _chain_study([("FAIL", None, sigterm), ("COMPLETE", 0, None), ("COMPLETE", 0, None)])
    with pytest.raises(AssertionError):
        assert_each_interruption_completes_once(trials, interrupted)
    trials, interrupted = _chain_study([("FAIL", None, sigterm), ("FAIL", 0, "crashed"), ("COMPLETE", 0, None)])
    with pytest.raises(AssertionError):
        assert_each_interruption_completes_once(trials, interrupted)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    yield from start_cluster(tmp_path_factory.mktemp("slurm"))


# The study must outlast the time-limit warning: slurmctld checks limits only every 30 s and keeps a
# job's limit in whole minutes, so the warning comes up to ~65 s after the limit is set (below). 40
# trials of 40 epochs (~7 s each on one core) leave ~30 trials for 3 tasks after the events: ~80 s.
CAP = 40
EPOCHS = 40
LEAD = 60  # --signal-lead: the warning window is wider than slurmctld's 30 s limit check


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_array_on_postgres_survives_scancel_and_a_time_limit(
    slurm: SlurmCluster, pg_url: str, study_name: str, tmp_path: Path
) -> None:
    t_start = time.monotonic()
    pw = tmp_path / "db-password"
    pw.write_text(SECRET + "\n")  # PostgreSQL here trusts 127.0.0.1, so any password works
    env = cli_env(HPSEARCH_STORAGE=pg_url, HPSEARCH_STORAGE_PASSWORD_FILE=str(pw), **slurm.env)
    hpsearch(
        "create", "--task", "digits", "--study", study_name, "--n-trials", str(CAP), "--max-epochs", str(EPOCHS),
        "--pruner", "none", cwd=tmp_path, env=env,
    )  # fmt: skip
    script = tmp_path / "workers.sbatch"
    out = hpsearch(
        "slurm", "--study", study_name, "--workers", "4", "--gpus-per-worker", "1", "--cpus-per-worker", "1",
        "--time", "10", "--signal-lead", str(LEAD), "--log-dir", str(tmp_path), "-o", str(script), "--submit",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    job = re.search(r"submitted array job (\d+)", out.stdout).group(1)  # type: ignore[union-attr]
    assert SECRET not in script.read_text() and SECRET not in out.stdout + out.stderr
    study = optuna.load_study(study_name=study_name, storage=pg_url)

    def in_second_trial(task: int) -> bool:
        # past the first trial, whose lazy TensorFlow imports a signal can break (handled, but the
        # test is about a signal during training)
        ran = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == f"slurm-{job}_{task}"]
        return len(ran) >= 2 and ran[-1].state.name == "RUNNING"

    wait_for(lambda: in_second_trial(1) and in_second_trial(2), 300, "array tasks 1 and 2 in their second trial")
    time.sleep(1.0)  # mid-epoch
    slurm.run("scancel", f"{job}_1")
    # A time limit that task 2 nearly reached: 35-95 s from now (whole minutes), so that the --signal
    # warning (USR1, due LEAD = 60 s before the limit: at once or within 35 s) comes at one of the
    # 30-s limit checks before the limit itself.
    elapsed = time_limit_seconds(slurm.job(f"{job}_2")["RunTime"])
    minutes = -(-(elapsed + 35) // 60)
    slurm.run("scontrol", "update", f"JobId={job}_2", f"TimeLimit={minutes}")
    t_events = time.monotonic() - t_start
    wait_for(lambda: not slurm.queue(job), 400, "every array task to end")
    t_done = time.monotonic() - t_start

    logs = {i: (tmp_path / f"hpsearch-{study_name}-{job}_{i}.out").read_text() for i in range(4)}
    gpus = set()
    for i, log in logs.items():
        assert f"worker index {i} from Slurm (SLURM_ARRAY_TASK_ID)" in log, log
        assert SECRET not in log
        gpus.add(re.search(r"CUDA_VISIBLE_DEVICES=(\S*);", log).group(1))  # type: ignore[union-attr]
    assert gpus == {"0", "1", "2", "3"}  # --gres=gpu:1: one (stand-in) GPU per task, set by Slurm
    assert "stopped by SIGTERM" in logs[1], logs[1]
    assert "stopped by SIGUSR1" in logs[2], logs[2]
    assert "budget spent" in logs[0] and "budget spent" in logs[3]
    jobs = {i: slurm.job(f"{job}_{i}") for i in range(4)}
    assert SECRET not in slurm.run("scontrol", "-d", "show", "job", job).stdout
    assert jobs[1]["JobState"] == "CANCELLED"
    assert jobs[2]["JobState"] in ("COMPLETED", "TIMEOUT") and time_limit_seconds(jobs[2]["TimeLimit"]) == minutes * 60
    for i in (0, 2, 3):
        if jobs[i]["JobState"] == "COMPLETED":
            assert jobs[i]["ExitCode"] == "0:0", jobs[i]

    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # unique, none lost
    s = states(study)
    assert s.get("COMPLETE", 0) == CAP, s  # the cap, exactly (no pruner)
    assert s.get("RUNNING", 0) == 0 and s.get("WAITING", 0) == 0, s
    interrupted = {
        t.number: t
        for t in trials
        if t.state.name == "FAIL" and str(t.user_attrs.get("fail_reason", "")).startswith("interrupted by")
    }
    by_signal = {t.user_attrs["fail_reason"].split()[2].rstrip(";"): t for t in interrupted.values()}
    assert set(by_signal) == {"SIGTERM", "SIGUSR1"}, [t.user_attrs["fail_reason"] for t in interrupted.values()]
    last_of_task_1 = max(t.number for t in trials if t.user_attrs.get("worker") == f"slurm-{job}_1")
    assert by_signal["SIGTERM"].number == last_of_task_1  # the trial it ran when cancelled
    assert by_signal["SIGTERM"].user_attrs["worker"] == f"slurm-{job}_1"
    assert by_signal["SIGUSR1"].user_attrs["worker"] == f"slurm-{job}_2"
    roots = assert_each_interruption_completes_once(trials, interrupted)
    other_fails = [
        t.user_attrs.get("fail_reason") for t in trials if t.state.name == "FAIL" and t.number not in interrupted
    ]
    assert all(str(r).startswith("surplus") for r in other_fails), other_fails
    assert len(roots) in (1, 2)  # one chain per event, or one chain that both events hit

    # Resume = resubmit the same script: a task on a study whose cap is spent exits at once.
    again = slurm.run("sbatch", "--parsable", "--array=0", str(script)).stdout.strip().split(";")[0]
    wait_for(lambda: not slurm.queue(again), 240, "the resubmitted task to end")
    log = (tmp_path / f"hpsearch-{study_name}-{again}_0.out").read_text()
    assert "has reached its cap of" in log and "nothing to run" in log, log  # resubmitted: exits before loading data
    assert states(study) == s
    print(
        f"\nSlurm array test: events at {t_events:.0f} s, array done at {t_done:.0f} s, "
        f"with resubmission {time.monotonic() - t_start:.0f} s; trials {s}; task 2 {jobs[2]['JobState']}"
    )

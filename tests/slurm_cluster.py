"""A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd on 127.0.0.1.

Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them). The configuration is the
smallest that runs jobs in a container without systemd or cgroups: ``proctrack/linuxproc``,
``task/none``, no accounting, ``select/cons_tres`` by CPU, one node with the CPU count and memory
``slurmd -C`` reports and four stand-in GPUs (``gres.conf``), and a partition that lets two
one-CPU tasks share each CPU (four workers on two cores). Everything lives in a temporary folder with its own ports; what this module starts it
stops, by pid.

``HPSEARCH_TEST_SLURM_CONF=/path/slurm.conf`` uses a cluster that is already up instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time

import pytest

# Stand-in GPUs: Slurm's gres/gpu plugin needs one device file per GPU; without cgroups it only
# hands them out and sets CUDA_VISIBLE_DEVICES (TensorFlow then finds no GPU and runs on the CPU).
STAND_IN_GPUS = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "sinfo")


@dataclass
class SlurmCluster:
    conf: Path
    started: list[int] = field(default_factory=list)  # pids this fixture started

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(cmd), env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, ExitCode, RunTime, TimeLimit, ...)."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        fields: dict[str, str] = {}
        for item in out.split():
            key, sep, value = item.partition("=")
            if sep and key not in fields:
                fields[key] = value
        return fields

    def queue(self, job: str) -> dict[str, str]:
        """{array task id: state} of the tasks of array job ``job`` still in the queue."""
        out = self.run("squeue", "-h", "-r", "-j", job, "-o", "%K %T", check=False).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _munge_ok() -> bool:
    try:
        enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if enc.returncode != 0:
            return False
        dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=10)
        return dec.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _node_line() -> str:
    """The node as ``slurmd -C`` sees it (real CPU count, sockets, memory), named localhost."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30).stdout
    line = next((x for x in out.splitlines() if x.startswith("NodeName=")), "")
    keep = [
        w
        for w in line.split()[1:]
        if w.split("=")[0] in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    ]
    gres = f"Gres=gpu:{len(STAND_IN_GPUS)}"
    return " ".join(["NodeName=localhost", "NodeAddr=127.0.0.1", *keep, gres, "State=UNKNOWN"])


def write_conf(folder: Path) -> Path:
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    (folder / "gres.conf").write_text("".join(f"NodeName=localhost Name=gpu File={f}\n" for f in STAND_IN_GPUS))
    conf.write_text(
        f"""# hpsearch test cluster: one node, no cgroups, no accounting
ClusterName=hpsearch-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=3600
GresTypes=gpu
{_node_line()}
# each CPU is shared by at most 2 one-CPU tasks: 4 workers on a 2-core machine, never more
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
"""
    )
    return conf


def _wait(predicate, timeout: float, what: str, folder: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    logs = "".join(
        f"\n--- {p.name}:\n" + p.read_text()[-2000:] for p in sorted((folder / "log").glob("*.log")) if p.exists()
    )
    raise AssertionError(f"Slurm: timed out waiting for {what}{logs}")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def start_cluster(folder: Path) -> Iterator[SlurmCluster]:
    """Yield a running cluster; stop (by pid) whatever was started here."""
    existing = os.environ.get("HPSEARCH_TEST_SLURM_CONF")
    if existing:
        cluster = SlurmCluster(Path(existing))
        if cluster.run("scontrol", "ping", check=False).returncode != 0:
            pytest.fail(f"HPSEARCH_TEST_SLURM_CONF={existing}: scontrol ping fails; start slurmctld or unset it")
        yield cluster
        return
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip(
            "the single-node Slurm fixture starts munged/slurmd as root; run as root or set HPSEARCH_TEST_SLURM_CONF"
        )
    cluster = SlurmCluster(write_conf(folder))
    try:
        if not _munge_ok():
            run_dir = Path("/run/munge")
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(run_dir, "munge", "munge")
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)
            _wait(_munge_ok, 20, "munged", folder)
            pid = _pid(run_dir / "munged.pid")
            if pid:
                cluster.started.append(pid)
        env = {**os.environ, **cluster.env}
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(cluster.conf)], check=True, env=env, timeout=60)
        _wait(lambda: (folder / "slurmctld.pid").exists(), 30, "slurmctld's pid file", folder)
        cluster.started.append(_pid(folder / "slurmctld.pid") or 0)
        _wait(lambda: cluster.run("scontrol", "ping", check=False).returncode == 0, 60, "slurmctld", folder)
        subprocess.run(
            ["/usr/sbin/slurmd", "-f", str(cluster.conf), "-N", "localhost"], check=True, env=env, timeout=60
        )
        _wait(lambda: (folder / "slurmd.pid").exists(), 30, "slurmd's pid file", folder)
        cluster.started.append(_pid(folder / "slurmd.pid") or 0)

        def idle() -> bool:
            out = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            return out in ("idle", "mixed", "allocated")

        _wait(idle, 90, "the node to turn idle", folder)
        yield cluster
    finally:
        if cluster.started:
            cluster.run("scancel", "--user", "root", check=False)
        for pid in reversed(cluster.started):  # slurmd, slurmctld, then munged
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

"""Which worker am I? One rule for ``hpsearch worker`` and ``hpsearch launch``.

A worker's index offsets its sampler seed (``seed * 1009 + index``), so that workers of one study
never replay each other's random start-up trials. The index is the first of:

1. ``--worker-index N`` (or ``HPSEARCH_WORKER_INDEX``, which ``run`` and ``launch`` set for their
   own worker processes);
2. ``SLURM_ARRAY_TASK_ID`` (a Slurm array task; ``+ 10000 * SLURM_RESTART_COUNT`` when Slurm
   requeued it, so a requeued task does not replay its first run's start-up trials);
3. ``JOB_COMPLETION_INDEX`` (a Kubernetes Indexed Job; ``+ 10000 *
   JOB_INDEX_FAILURE_COUNT``, which deploy/k8s sets from the pod annotation
   ``batch.kubernetes.io/job-index-failure-count``);
4. a compose replica, or any worker started by hand: a hash of the host name and pid.

``launch`` asks the same rule for its own index ``b`` (so two ``launch`` processes in two Slurm
tasks or two pods do not both number their workers 0..k-1) and gives worker slot ``i`` after ``r``
restarts the index ``(b * (max_restarts + 1) + r) * slots + i``: distinct over all launchers,
slots and restarts, and plain ``i`` (then ``i + r * slots``) outside a scheduler, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os

RESTART_STRIDE = 10_000  # a requeued/restarted scheduler task: index + restarts * RESTART_STRIDE
HASH_MODULUS = 1_000_000

# (variable holding the index, variable holding its restart count, what a log line calls it)
SCHEDULERS: tuple[tuple[str, str, str], ...] = (
    ("SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT", "Slurm"),
    ("JOB_COMPLETION_INDEX", "JOB_INDEX_FAILURE_COUNT", "Kubernetes"),
)


@dataclass(frozen=True)
class WorkerIndex:
    index: int
    source: str  # "--worker-index", "HPSEARCH_WORKER_INDEX", "SLURM_ARRAY_TASK_ID", ..., "host+pid"
    scheduler: str | None = None  # "Slurm" or "Kubernetes" when a scheduler set it
    restarts: int = 0

    def describe(self) -> str:
        """Words for the worker's start-up line."""
        if self.scheduler is None:
            return f"worker index {self.index} from {self.source}"
        again = f", restart {self.restarts}" if self.restarts else ""
        return f"worker index {self.index} from {self.scheduler} ({self.source}{again})"


def _int(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        v = int(text.strip())
    except ValueError:
        return None
    return v if v >= 0 else None


def resolve_worker_index(flag: int | None = None, env: Mapping[str, str] | None = None) -> WorkerIndex:
    """The first of ``--worker-index``, ``HPSEARCH_WORKER_INDEX``, the scheduler's index, host+pid."""
    env = os.environ if env is None else env
    if flag is not None:
        return WorkerIndex(flag, "--worker-index")
    explicit = _int(env.get("HPSEARCH_WORKER_INDEX"))
    if explicit is not None:
        return WorkerIndex(explicit, "HPSEARCH_WORKER_INDEX")
    for var, restart_var, scheduler in SCHEDULERS:
        index = _int(env.get(var))
        if index is not None:
            restarts = _int(env.get(restart_var)) or 0
            return WorkerIndex(index + RESTART_STRIDE * restarts, var, scheduler, restarts)
    import socket
    import zlib

    value = zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % HASH_MODULUS
    return WorkerIndex(value, "host+pid")


def launch_slot_index(base: int, slot: int, n_slots: int, restarts: int, max_restarts: int) -> int:
    """The index of ``launch``'s worker ``slot`` after ``restarts`` restarts, its own index being ``base``."""
    return (base * (max_restarts + 1) + restarts) * n_slots + slot

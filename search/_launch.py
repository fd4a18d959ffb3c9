"""Start, watch and stop local worker processes (``hpsearch run`` and ``hpsearch launch``).

Each worker is ``python -c <worker_command> worker --config JSON`` (its ``WorkerConfig``) with its GPU slot in
``CUDA_VISIBLE_DEVICES`` and TensorFlow memory growth on (``TF_FORCE_GPU_ALLOW_GROWTH``), so several
workers share one GPU. The storage URL travels in the environment, never on a command line (where
``ps`` would show its password), and secrets stay where the user put them: a child inherits
``HPSEARCH_STORAGE``, ``HPSEARCH_STORAGE_FILE``, ``HPSEARCH_STORAGE_PASSWORD`` and
``HPSEARCH_STORAGE_PASSWORD_FILE`` as they are, and resolves the URL itself; the launcher never
puts the password it resolved into a child's ``HPSEARCH_STORAGE`` (a password kept in a file is
then nowhere in ``/proc/PID/environ``). Workers print one line per finished trial, prefixed with their
id; lines are short and flushed whole, so the merged log stays line-atomic. A worker that crashes
(killed, or an unexpected exit code) is restarted, at most ``max_restarts`` times per slot;
exit 0 (budget spent), 2 (bad configuration) and 3 (too many failed trials) are final.
Ctrl-C or SIGTERM sends SIGTERM to every worker; each ends its trial as FAIL (re-enqueued) and exits.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from ._runworker import WorkerConfig
from ._worker import emit

FINAL_EXIT_CODES = (0, 2, 3)


def worker_command() -> list[str]:
    """``python`` running hpsearch's CLI with the working folder taken off ``sys.path``.

    ``python -m hpsearch`` would put the working folder first on ``sys.path``, so a user's own
    ``hpsearch.py`` there would shadow the package; ``-P`` exists only from Python 3.11. Entries of
    ``PYTHONPATH`` (plug-in tasks) stay.
    """
    return [sys.executable, "-c", "import sys; del sys.path[0]; from hpsearch.cli import main; sys.exit(main())"]


@dataclass
class Slot:
    index: int
    gpu: str | None  # the value of CUDA_VISIBLE_DEVICES; "" hides every GPU
    worker_id: str
    proc: subprocess.Popen | None = None
    restarts: int = 0
    returncode: int | None = None


def detect_gpus() -> list[str]:
    """GPU ids without importing TensorFlow: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in (x.strip() for x in visible.split(",")) if g and g != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def plan_slots(gpus: list[str], per_gpu: int, cpu_workers: int) -> list[Slot]:
    """One slot per (GPU, k); with no GPU, ``cpu_workers`` CPU slots with GPUs hidden."""
    slots: list[Slot] = []
    if gpus:
        for g in gpus:
            for _ in range(per_gpu):
                i = len(slots)
                slots.append(Slot(i, g, f"gpu{g}-w{i}"))
    else:
        for i in range(cpu_workers):
            slots.append(Slot(i, "" if cpu_workers > 0 else None, f"w{i}"))
    return slots


class Launcher:
    """``storage_url``: the ``--storage`` flag as given (None: the children read the environment)."""

    def __init__(
        self,
        slots: list[Slot],
        config: WorkerConfig,
        *,
        storage_url: str | None,
        max_restarts: int = 3,
        extra_env: dict[str, str] | None = None,
        base_index: int = 0,
    ) -> None:
        self.slots = slots
        self.config = config
        self.storage_url = storage_url
        self.max_restarts = max_restarts
        self.extra_env = extra_env or {}
        self.base_index = base_index  # this launcher's own index under a scheduler (search/_index.py)
        self._stopping = False

    def _env(self, slot: Slot) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.storage_url is not None:  # a --storage flag: as the user typed it, never resolved
            env["HPSEARCH_STORAGE"] = self.storage_url
        # A restarted worker gets a new index, hence a new sampler seed: the same seed would replay
        # the random start-up points its predecessor already proposed.
        from ._index import launch_slot_index

        env["HPSEARCH_WORKER_INDEX"] = str(
            launch_slot_index(self.base_index, slot.index, len(self.slots), slot.restarts, self.max_restarts)
        )
        env["HPSEARCH_WORKER_ID"] = slot.worker_id
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONUNBUFFERED"] = "1"
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        return env

    def _start(self, slot: Slot) -> None:
        cmd = [*worker_command(), "worker", "--config", self.config.to_json()]
        # Own process group: a terminal's Ctrl-C reaches only the launcher, which stops workers in order.
        slot.proc = subprocess.Popen(cmd, env=self._env(slot), start_new_session=True)
        emit(
            f"[launch] started {slot.worker_id} pid {slot.proc.pid} "
            f"CUDA_VISIBLE_DEVICES={slot.gpu if slot.gpu is not None else '(inherited)'}"
        )

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self._stopping:
            emit(f"[launch] {signal.Signals(signum).name}: stopping {len(self.slots)} worker(s)")
        self._stopping = True
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                try:
                    slot.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def run(self, stop_timeout: float = 60.0) -> int:
        """Run until every worker has exited for good; return 0, or the first non-zero code."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in self.slots:
                self._start(slot)
            stop_deadline: float | None = None
            while True:
                alive = 0
                for slot in self.slots:
                    if slot.proc is None:
                        continue
                    rc = slot.proc.poll()
                    if rc is None:
                        alive += 1
                        continue
                    slot.proc = None
                    slot.returncode = rc
                    if self._stopping or rc in FINAL_EXIT_CODES:
                        if rc not in (0,) and not self._stopping:
                            emit(f"[launch] {slot.worker_id} exited with code {rc}")
                        continue
                    if slot.restarts >= self.max_restarts:
                        emit(
                            f"[launch] {slot.worker_id} crashed (code {rc}) {slot.restarts + 1} times; "
                            "not restarting it"
                        )
                        continue
                    slot.restarts += 1
                    emit(f"[launch] {slot.worker_id} crashed (code {rc}); restart {slot.restarts}/{self.max_restarts}")
                    self._start(slot)
                    alive += 1
                if alive == 0:
                    break
                if self._stopping:
                    stop_deadline = stop_deadline or time.monotonic() + stop_timeout
                    if time.monotonic() > stop_deadline:
                        for slot in self.slots:
                            if slot.proc is not None and slot.proc.poll() is None:
                                slot.proc.kill()
                time.sleep(0.2)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        codes = [s.returncode for s in self.slots if s.returncode not in (None, 0)]
        if self._stopping:
            return 0
        return codes[0] if codes else 0

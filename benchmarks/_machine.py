"""What every benchmark result records about the machine it ran on (shared by the bench scripts)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from datetime import timezone
import os
from pathlib import Path
import platform
import subprocess
import sys
import threading
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TMP = RESULTS / "tmp"  # logs and scratch databases; git-ignored
DATASETS = ROOT.parent / "shared" / "datasets"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def cpu_id() -> str:
    """Family, model and the widest SIMD set, e.g. ``25/1 avx2``: the model name alone ("AMD EPYC") hides
    the generation, and numpy and scikit-learn round differently with AVX-512, so a replay (a
    simulation driven by a fitted surrogate) repeats exactly only on the same CPU id (stop 34)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu family", "model", "flags") and key not in fields:
                fields[key] = value.strip()
            if len(fields) == 3:
                break
    flags = set(fields.get("flags", "").split())
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "?")
    return f"{fields.get('cpu family', '?')}/{fields.get('model', '?')} {simd}"


def amx_bf16() -> bool:
    from hpsearch.objectives._fit import cpu_has_amx_bf16

    return cpu_has_amx_bf16()


def memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    return None


def versions() -> dict[str, str]:
    """Library versions, read from the installed distributions (no TensorFlow import)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "tensorflow",
        "keras",
        "optuna",
        "optuna-integration",
        "keras-tuner",
        "sqlalchemy",
        "psycopg2-binary",
        "scikit-learn",  # the replay's surrogate
        "numpy",
        "torch",  # Optuna's GPSampler
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "amx_bf16": amx_bf16(),  # objectives/_fit.py trains the CNNs in bfloat16 where it is set
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "versions": versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "uptime": uptime(),
    }


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a thread (while a run goes on)."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> LoadSampler:
        self.start_uptime = uptime()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append(os.getloadavg()[0])
        self.end_uptime = uptime()

    def summary(self) -> dict[str, Any]:
        s = self.samples or [os.getloadavg()[0]]
        return {
            "load1_mean": round(sum(s) / len(s), 2),
            "load1_min": round(min(s), 2),
            "load1_max": round(max(s), 2),
            "uptime_start": getattr(self, "start_uptime", None),
            "uptime_end": getattr(self, "end_uptime", None),
        }


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def ensure_root_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def now_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")

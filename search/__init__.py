"""hpsearch's search room: the CLI, study creation, the worker loop, export, final training."""

from __future__ import annotations

from search._errors import HpsearchError
from search._errors import UsageError
from search._errors import WorkerStopped


__all__ = ["HpsearchError", "UsageError", "WorkerStopped"]

"""hpsearch's search room: the CLI, study creation, the worker loop, export, final training."""

from __future__ import annotations

from ._errors import HpsearchError
from ._errors import UsageError
from ._errors import WorkerStopped

__all__ = ["HpsearchError", "UsageError", "WorkerStopped"]

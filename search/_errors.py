"""hpsearch's exceptions: one root, ``HpsearchError``, carrying its exit code and its label.

The CLI prints each on one line (``hpsearch CMD: <label>: <message>``, URLs masked) and exits with
``exit_code``. This module imports nothing of hpsearch, so ``objectives/`` and ``storage/`` may
import it (``from .._errors import HpsearchError``): it is the one module of ``search/`` they use.
"""

from __future__ import annotations


class HpsearchError(Exception):
    """Root of hpsearch's own errors."""

    exit_code = 1
    label = "error"


class UsageError(HpsearchError):
    """Bad input: a flag, a name, a file. Nothing was written. Exit 2."""

    exit_code = 2


class WorkerStopped(HpsearchError):
    """A worker gave up (too many failed trials in a row). Exit 3."""

    exit_code = 3
    label = "worker stopped"

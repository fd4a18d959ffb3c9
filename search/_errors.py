"""hpsearch's exceptions. The CLI prints each on one line (URLs masked) and exits with its code."""

from __future__ import annotations


class HpsearchError(Exception):
    """Root of hpsearch's own errors."""

    exit_code = 1


class UsageError(HpsearchError):
    """Bad input: a flag, a name, a file. Nothing was written. Exit 2."""

    exit_code = 2


class WorkerStopped(HpsearchError):
    """A worker gave up (too many failures in a row, database gone for good). Exit 1."""

    exit_code = 1

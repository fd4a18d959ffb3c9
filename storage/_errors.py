from __future__ import annotations


class StorageError(Exception):
    """The storage cannot be used as asked (unreachable, no tables, schema too old, no study).

    The message names the problem and what to run next, with any URL masked.
    """

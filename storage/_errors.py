from __future__ import annotations

from .._errors import HpsearchError


class StorageError(HpsearchError):
    """The storage cannot be used as asked (unreachable, no tables, schema too old, no study). Exit 2.

    The message names the problem and what to run next, with any URL masked.
    """

    exit_code = 2

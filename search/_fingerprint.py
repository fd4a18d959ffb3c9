"""Data identity: what data a study's trials were run on, so that trials on other data do not mix.

The first worker of a study records ``data_fingerprint`` in the study's user attributes: the data
folder's files (count, bytes, a digest of every relative name and size, and the names and sizes
themselves, per file for up to ``MAX_LISTED`` files, else per folder) and the split counts the task
loaded. Every later worker compares before it loads the data (the files) and after (the splits),
and stops with exit 2 naming the differences, unless ``--allow-other-data``. The folder's location
is not compared: machines mount the same data at different paths.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from ._errors import UsageError

_logger = logging.getLogger("hpsearch")

FINGERPRINT_KEY = "data_fingerprint"
MAX_LISTED = 200
SPLITS = ("train", "val", "test")


def files_fingerprint(data_dir: str | None) -> dict[str, Any]:
    """Names and sizes of the files under ``data_dir`` (none without a folder: a download)."""
    if data_dir is None:
        return {"files": 0, "bytes": 0, "digest": None, "listing": {}, "listed": "file"}
    root = Path(data_dir)
    sizes: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                sizes[path.relative_to(root).as_posix()] = path.stat().st_size
            except OSError:  # a dangling link: not data
                continue
    digest = hashlib.sha256("\n".join(f"{k}\t{v}" for k, v in sizes.items()).encode()).hexdigest()[:16]
    if len(sizes) <= MAX_LISTED:
        listing: dict[str, Any] = dict(sizes)
        listed = "file"
    else:
        listing = {}
        for rel, size in sizes.items():
            folder = rel.rpartition("/")[0] + "/"
            n, b = listing.get(folder, (0, 0))
            listing[folder] = [n + 1, b + size]
        listed = "folder"
    return {"files": len(sizes), "bytes": sum(sizes.values()), "digest": digest, "listing": listing, "listed": listed}


def split_counts(data: Any) -> dict[str, int]:
    out = {}
    for split in SPLITS:
        try:
            out[split] = len(data.labels(split))
        except Exception:  # a task without that split
            continue
    return out


def _listing_differences(was: dict[str, Any], now: dict[str, Any], unit: str) -> list[str]:
    out = []
    for key in sorted(set(was) | set(now)):
        a, b = was.get(key), now.get(key)
        if a == b:
            continue
        if a is None:
            out.append(f"{unit} {key} is new")
        elif b is None:
            out.append(f"{unit} {key} is missing")
        elif unit == "file":
            out.append(f"file {key} has {b} bytes, was {a}")
        else:
            out.append(f"folder {key} has {b[0]} files ({b[1]} bytes), was {a[0]} ({a[1]} bytes)")
    return out


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a recorded fingerprint and this worker's (splits only when both have them)."""
    out: list[str] = []
    if recorded.get("digest") != now.get("digest"):
        if recorded.get("listed") == now.get("listed"):
            out += _listing_differences(recorded.get("listing", {}), now.get("listing", {}), now.get("listed", "file"))
        if not out:
            out.append(
                f"{now.get('files')} files ({now.get('bytes')} bytes), was {recorded.get('files')} "
                f"({recorded.get('bytes')} bytes)"
            )
    was, cur = recorded.get("splits"), now.get("splits")
    if was and cur:
        out += [f"{s} split has {cur.get(s)} examples, was {was.get(s)}" for s in SPLITS if was.get(s) != cur.get(s)]
    return out


def check_data(study: Any, fingerprint: dict[str, Any], *, allow_other_data: bool, record: bool) -> None:
    """Compare with the study's recorded fingerprint; record this one if there is none (``record``)."""
    recorded = study.user_attrs.get(FINGERPRINT_KEY)
    if not isinstance(recorded, dict):
        if record:
            study.set_user_attr(FINGERPRINT_KEY, fingerprint)
        return
    diffs = differences(recorded, fingerprint)
    if not diffs:
        return
    shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    if allow_other_data:
        _logger.warning(
            "study %r: other data than its trials used (%s); going on (--allow-other-data)", study.study_name, shown
        )
        return
    raise UsageError(
        f"the data differs from what study {study.study_name!r} was run on ({shown}); point --data-dir at that "
        "data, or pass --allow-other-data to mix them"
    )

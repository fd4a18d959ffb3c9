"""The exported params file: a documented, versioned format read by ``hpsearch train``.

Format ``hpsearch-params`` version 1 (JSON, or YAML with the same keys)::

    format:       "hpsearch-params"        # required
    version:      1                        # required; files of a newer version are refused
    task:         "mnist_mlp"              # required; a built-in, plug-in or package.module:attr
    params:       {name: value, ...}       # required; checked against the task's search space
    task_options: {name: value, ...}       # optional; e.g. {"weights": "none"}
    best_epoch:   8                        # optional; epochs `train --epochs best` runs
    max_epochs:   10                       # optional; the study's epoch budget
    data_seed:    0                        # optional; the train/val/test split's seed
    data_dir:     "/data/mnist"            # optional; the study's data folder, train's default --data-dir
    study, trial, value, storage (masked), exported_at, versions: provenance only
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone
from importlib import metadata
import json
from pathlib import Path
from typing import Any

from ._errors import UsageError
from .objectives import TaskError
from .objectives import get_task
from .objectives import validate_params
from .objectives._registry import task_options

FORMAT = "hpsearch-params"
VERSION = 1


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("hpsearch", "optuna", "tensorflow", "keras", "optuna-integration"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def export_best(study: Any, settings: Any, *, storage_masked: str) -> dict[str, Any]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise UsageError(
            f"study {study.study_name!r} has no COMPLETE trial yet; run `hpsearch worker --study "
            f"{study.study_name}` first"
        )
    best = study.best_trial
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": settings.task,
        "params": best.params,
        "task_options": settings.task_options,
        "best_epoch": best.user_attrs.get("best_epoch"),
        "max_epochs": settings.max_epochs,
        "data_seed": settings.data_seed,
        "data_dir": settings.data_dir,
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "baseline": best.user_attrs.get("baseline"),
        "storage": storage_masked,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def dump(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(doc, sort_keys=False)
    return json.dumps(doc, indent=2) + "\n"


def load_params_file(path: str) -> tuple[dict[str, Any], Any]:
    """Read and check a params file; return (document, task). ``UsageError`` names any problem."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"params file {path} not found; create one with `hpsearch export --study NAME -o {path}`")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            f"params file {path} is not text (a binary file such as model.keras?); pass the JSON or YAML "
            "file written by `hpsearch export` (or the params.json that `hpsearch train` writes)"
        ) from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as e:
        raise UsageError(
            f"params file {path} is not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}: {e}"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(
            f'{path} is not an hpsearch params file (expected "format": "{FORMAT}"); export one with `hpsearch export`'
        )
    version = doc.get("version")
    if not _is_int(version) or version < 1:
        raise UsageError(
            f"{path}: 'version' must be a positive integer, got {version!r}; "
            f"this hpsearch writes and reads version {VERSION}"
        )
    if version > VERSION:
        raise UsageError(
            f"{path} has format version {version}; this hpsearch reads version {VERSION}: upgrade hpsearch"
        )
    for key, typ in (("task", str), ("params", dict)):
        if not isinstance(doc.get(key), typ):
            raise UsageError(f"{path}: missing or invalid {key!r} ({typ.__name__} expected)")
    if doc.get("task_options") is not None and not isinstance(doc["task_options"], dict):
        raise UsageError(
            f"{path}: 'task_options' must be a mapping of option names to values, got {doc['task_options']!r}"
        )
    if doc.get("data_dir") is not None and not isinstance(doc["data_dir"], str):
        raise UsageError(f"{path}: 'data_dir' must be a folder path or null, got {doc['data_dir']!r}")
    for key, low in (("best_epoch", 1), ("max_epochs", 1), ("data_seed", 0)):
        value = doc.get(key)
        if value is not None and (not _is_int(value) or value < low):
            what = "a positive integer" if low else "a non-negative integer"
            raise UsageError(f"{path}: {key!r} must be {what}, got {value!r}")
    try:
        task = get_task(doc["task"])
        doc["task_options"] = task_options(task, doc.get("task_options") or {})
        doc["params"] = validate_params(task, doc["params"])
    except TaskError as e:
        raise UsageError(f"{path}: {e}") from None
    return doc, task


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""The exported params file: a documented, versioned format read by ``hpsearch train``.

Format ``hpsearch-params`` version 1 (JSON, or YAML with the same keys)::

    format:       "hpsearch-params"        # required
    version:      1                        # required; files of a newer version are refused
    task:         "mnist_mlp"              # required; a built-in or plug-in (package.module:attr: --allow-module)
    params:       {name: value, ...}       # required; checked against `space` (else the task's search space)
    space:        {name: distribution}     # optional; the search space the params were drawn from, plain
                                           # JSON: {"type": "int"|"float", "low", "high", "step", "log"}
                                           # or {"type": "categorical", "choices": [...]}
    task_options: {name: value, ...}       # optional; e.g. {"weights": "none"}
    best_epoch:   8                        # optional; epochs `train --epochs best` runs (at most 10,000)
    max_epochs:   10                       # optional; the study's epoch budget
    data_seed:    0                        # optional; the train/val/test split's seed
    data_dir:     "/data/mnist"            # optional; the study's data folder, train's default --data-dir
    study, trial, value, measured_by, storage (masked), exported_at, versions: provenance only
                                           # (measured_by: the trials whose mean curve gave value and
                                           # best_epoch; more than one after `hpsearch recheck`)
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone
from importlib import metadata
import json
from pathlib import Path
from typing import Any
from typing import TypeGuard

from ._errors import UsageError
from ._study import MAX_EPOCHS
from .objectives import TaskError
from .objectives import get_task
from .objectives import validate_params
from .objectives._registry import task_options
from .objectives._space import Distribution
from .objectives._space import check_space
from .objectives._space import validate_against_space

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
    from ._recheck import pick

    chosen = pick(study)  # study.best_trial, or the best rechecked configuration (_recheck.py)
    assert chosen is not None
    best = chosen.trial
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": settings.task,
        "params": best.params,
        "space": {name: plain_distribution(d) for name, d in best.distributions.items()},
        "task_options": settings.task_options,
        "best_epoch": chosen.best_epoch,
        "max_epochs": settings.max_epochs,
        "data_seed": settings.data_seed,
        "data_dir": settings.data_dir,
        "study": study.study_name,
        "trial": best.number,
        "value": chosen.value,
        "measured_by": chosen.trials,
        "baseline": best.user_attrs.get("baseline"),
        "storage": storage_masked,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def plain_distribution(dist: Any) -> Distribution:
    """An Optuna distribution as the plain data of ``objectives/_space.py`` (no Optuna to read it)."""
    import optuna

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return {"type": "categorical", "choices": list(dist.choices)}
    if isinstance(dist, optuna.distributions.IntDistribution):
        return {"type": "int", "low": dist.low, "high": dist.high, "step": dist.step, "log": dist.log}
    if isinstance(dist, optuna.distributions.FloatDistribution):
        return {"type": "float", "low": dist.low, "high": dist.high, "step": dist.step, "log": dist.log}
    raise UsageError(f"cannot export a {type(dist).__name__}: hpsearch exports int, float and categorical params")


def dump(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(doc, sort_keys=False)
    return json.dumps(doc, indent=2) + "\n"


def write_output(path: str, text: str) -> None:
    """Write an exported file; a missing folder or an unwritable path is a ``UsageError``."""
    p = Path(path)
    if not p.parent.is_dir():
        raise UsageError(f"folder {p.parent} does not exist; create it or fix -o")
    if p.is_dir():
        raise UsageError(f"{path} is a folder; give a file name with -o")
    try:
        p.write_text(text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}; fix -o") from None


def load_params_file(path: str, *, allow_module: bool = False) -> tuple[dict[str, Any], Any]:
    """Read and check a params file; return (document, task). ``UsageError`` names any problem.

    The file is data: its ``task`` resolves only among built-in and installed plug-in tasks unless
    ``allow_module`` (``train --allow-module``) lets it name a module to import.
    """
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
    for key, low, high in (("best_epoch", 1, MAX_EPOCHS), ("max_epochs", 1, MAX_EPOCHS), ("data_seed", 0, None)):
        value = doc.get(key)
        if value is not None and (not _is_int(value) or value < low):
            what = "a positive integer" if low else "a non-negative integer"
            raise UsageError(f"{path}: {key!r} must be {what}, got {value!r}")
        if value is not None and high is not None and value > high:
            raise UsageError(f"{path}: {key!r} is {value}, more than {high} epochs; fix the file or pass --epochs N")
    try:
        task = get_task(doc["task"], allow_module=allow_module, source=" in the params file")
        doc["task_options"] = task_options(task, doc.get("task_options") or {})
        if doc.get("space") is not None:  # the exported snapshot: checked in plain Python
            space = check_space(doc["space"], path)
            doc["params"] = validate_against_space(doc["params"], space, f"task {task.name!r}")
        else:  # a hand-written file: the task's own search_space, on a plain-Python RecordingTrial
            doc["params"] = validate_params(task, doc["params"])
    except TaskError as e:
        raise UsageError(f"{path}: {e}") from None
    return doc, task


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)

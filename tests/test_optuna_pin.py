"""hpsearch uses some of Optuna's private APIs (storage/_rdb.py ``OPTUNA_PRIVATE_APIS``); this
test fails loudly on an Optuna release they were not checked against, naming them."""

from __future__ import annotations

import importlib
from importlib.metadata import requires
from importlib.metadata import version

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from hpsearch.storage._rdb import OPTUNA_PRIVATE_APIS

# Optuna releases whose private APIs (below) and storage suite (tests/contract/) were checked.
CHECKED = ("5.0", "5.1")


def _resolve(path: str) -> object:
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                annotations = getattr(obj, "__annotations__", {})
                init = getattr(obj, "__init__", None)
                code = getattr(init, "__code__", None)
                if name in annotations or (code is not None and name in code.co_names):
                    return name  # an instance attribute set in __init__
                raise AttributeError(f"{'.'.join(parts[:i])} has no {name!r}")
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def test_installed_optuna_is_one_whose_private_apis_were_checked() -> None:
    v = Version(version("optuna"))
    assert f"{v.major}.{v.minor}" in CHECKED, (
        f"optuna {v} is not one of the checked releases {CHECKED}: re-check hpsearch's use of "
        f"{', '.join(OPTUNA_PRIVATE_APIS)}, run tests/contract/optuna_suite.py, then extend CHECKED "
        "and the optuna pin in pyproject.toml"
    )


def test_pyproject_pins_optuna_to_the_checked_releases() -> None:
    spec = next(r for r in requires("hpsearch") or [] if r.split(">")[0].split("<")[0].strip() == "optuna")
    specifiers = SpecifierSet(spec[len("optuna") :].split(";")[0])
    assert all(f"{c}.0" in specifiers for c in CHECKED), spec
    major, minor = map(int, CHECKED[-1].split("."))
    assert f"{major}.{minor + 1}.0" not in specifiers, f"{spec}: no upper bound below an unchecked release"


def test_every_private_optuna_api_hpsearch_uses_is_there() -> None:
    missing = []
    for path in OPTUNA_PRIVATE_APIS:
        try:
            _resolve(path)
        except (ImportError, AttributeError) as e:
            missing.append(f"{path} ({e})")
    assert not missing, f"optuna {version('optuna')} lacks private APIs hpsearch uses: {'; '.join(missing)}"

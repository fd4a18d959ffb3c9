"""Optuna's own storage test suite (from the pinned release's sdist) on hpsearch's storage.

A CI step of its own (``pytest -m contract``; minutes per backend), not in the default run."""

from __future__ import annotations

from pathlib import Path
import sys

import pytest

sys.path.insert(0, str(Path(__file__).parent / "contract"))
import optuna_suite  # noqa: E402

pytestmark = [pytest.mark.contract, pytest.mark.slow]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_optuna_storage_suite_passes_on_hpsearch_storage(backend: str, request: pytest.FixtureRequest) -> None:
    if backend != "sqlite":
        request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")  # skips if the server is down
    counts = optuna_suite.run(backend, "hpsearch")
    print(f"optuna storage suite on {backend}: {counts}")
    assert counts["passed"] > 200 and counts["failed"] == 0 and counts["errors"] == 0, counts

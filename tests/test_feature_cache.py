"""The frozen-backbone feature cache: used when allowed, reused, invalidated, safe for several workers."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

from conftest import ROOT
from conftest import SHARED
from conftest import need
import numpy as np
import optuna
import pytest
from test_tasks import copy_subset

from hpsearch.objectives import _feature_cache
from hpsearch.objectives import get_task

SMALL = {"weights": "none", "image_size": 32}
FROZEN = {
    "augment": False,
    "pooling": "avg",
    "dense_units": 32,
    "dropout": 0.0,
    "learning_rate": 1e-3,
    "batch_size": 16,
    "fine_tune": False,
}


@pytest.fixture
def cats(tmp_path: Path) -> Path:
    src = need(SHARED / "cats-and-dogs-small")
    root = tmp_path / "cats"
    for split in ("train", "validation"):
        copy_subset(src / split, root / split, per_class=12)
    return root


def _trial(task, data, params):  # type: ignore[no-untyped-def]
    from hpsearch._objective import TrialRunner

    trial = optuna.trial.FixedTrial(params)
    value = TrialRunner(task, data, max_epochs=1, seed=0)(trial)
    return value, trial.user_attrs


def test_cache_is_used_only_when_allowed_and_reused(
    cats: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    task = get_task("cats_vs_dogs")
    data = task.load_data(str(cats), seed=0, options=SMALL)
    _, attrs = _trial(task, data, FROZEN)
    assert attrs.get("feature_cache") is True
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    feats = np.load(entries[0] / "train.npy")
    assert feats.shape[0] == data.sizes["train"] and feats.dtype == np.float16
    stamp = (entries[0] / "train.npy").stat().st_mtime_ns
    loaded = _feature_cache._loaded["train"]
    np.testing.assert_array_equal(loaded, feats.astype(np.float32))  # the worker's float32 copy
    _trial(task, data, {**FROZEN, "learning_rate": 1e-2})  # another head on the same features
    assert (entries[0] / "train.npy").stat().st_mtime_ns == stamp  # reused, not recomputed
    assert _feature_cache._loaded["train"] is loaded  # and not read and converted again
    # augmentation or fine-tuning on, or the cache off: end to end
    for params, options in (
        ({**FROZEN, "augment": True, "flip": "horizontal", "rotation": 0.1}, SMALL),
        ({**FROZEN, "fine_tune": True, "fine_tune_layers": 10}, SMALL),
        (FROZEN, {**SMALL, "feature_cache": "off"}),
    ):
        d = data if options is SMALL else task.load_data(str(cats), seed=0, options=options)
        assert "feature_cache" not in _trial(task, d, params)[1]


def test_key_changes_with_files_size_backbone_and_weights(cats: Path, tmp_path: Path) -> None:
    task = get_task("cats_vs_dogs")
    data = task.load_data(str(cats), seed=0, options=SMALL)
    key = _feature_cache.cache_key(data, "MobileNetV2", 32, "none")
    assert key == _feature_cache.cache_key(data, "MobileNetV2", 32, "none")
    assert key != _feature_cache.cache_key(data, "MobileNetV2", 64, "none")
    assert key != _feature_cache.cache_key(data, "ResNet50", 32, "none")
    assert key != _feature_cache.cache_key(data, "MobileNetV2", 32, "imagenet")
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    k1 = _feature_cache.cache_key(data, "MobileNetV2", 32, str(weights))
    weights.write_bytes(b"xy")
    assert k1 != _feature_cache.cache_key(data, "MobileNetV2", 32, str(weights))
    one = Path(data.paths("train")[0])
    one.write_bytes(one.read_bytes() + b"\0")  # a changed image
    assert key != _feature_cache.cache_key(task.load_data(str(cats), seed=0, options=SMALL), "MobileNetV2", 32, "none")


def test_two_workers_at_once_compute_the_features_once(cats: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.path[:0] = [{tests!r}]\n"
        "from hpsearch.objectives import get_task, _feature_cache\n"
        "t = get_task('cats_vs_dogs'); d = t.load_data({cats!r}, seed=0, options={small!r})\n"
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "f = _feature_cache.features(d, 'MobileNetV2', 32, 'none'); print('rows', f['train'].shape[0])\n"
    ).format(tests=str(ROOT / "tests"), cats=str(cats), small=SMALL)
    env = {**os.environ, "HPSEARCH_CACHE_DIR": str(tmp_path / "shared-cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    n_train = get_task("cats_vs_dogs").load_data(str(cats), seed=0, options=SMALL).sizes["train"]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(o.count("computing MobileNetV2 features") for o in outs) == 1  # one computed, one waited
    assert all(f"rows {n_train}" in o for o in outs)
    assert len([p for p in (tmp_path / "shared-cache").iterdir() if p.is_dir()]) == 1


def test_a_cached_trial_learns_what_the_end_to_end_trial_learns(
    cats: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, same head: per-epoch training and validation losses agree up to the float16
    storage of the features (and the head's several steps per graph call change nothing)."""
    from hpsearch._objective import TrialRunner

    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    task = get_task("cats_vs_dogs")
    params = {**FROZEN, "pooling": "flatten", "batch_size": 16}
    histories = []
    for options in ({**SMALL, "feature_cache": "off"}, SMALL):
        trial = optuna.trial.FixedTrial(params)
        TrialRunner(task, task.load_data(str(cats), seed=0, options=options), max_epochs=3, seed=0)(trial)
        histories.append(trial.user_attrs)
    e2e, cached = histories
    assert "feature_cache" not in e2e and cached["feature_cache"] is True
    for key in ("loss", "val_loss"):
        assert len(e2e["history"][key]) == len(cached["history"][key]) == 3
        np.testing.assert_allclose(cached["history"][key], e2e["history"][key], atol=2e-3, err_msg=key)
    # the losses moved: a check that could not fail on a head that never trained
    assert e2e["history"]["loss"][0] != e2e["history"]["loss"][-1]

"""Frozen-backbone feature cache for the backbone tasks (cats_vs_dogs, celeba_gender, image_folder).

When a trial's augmentation is off and its backbone frozen, every epoch pushes the same images
through the same fixed backbone; only the head learns. So the backbone's output feature maps are
computed once per (data set files, backbone, image size, weights) and the trial trains the head
alone on them. Nothing in Keras or Optuna does this, hence this module.

The cache lives on disk (``$HPSEARCH_CACHE_DIR``, default ``~/.cache/hpsearch/features``), one
folder per key: ``train.npy``, ``val.npy``, ``test.npy`` (float16 feature maps, memory-mapped on
load) and ``meta.json``. The key hashes every file path with its size and modification time, the
split and labels, the backbone, the image size and the weights (for a weights file: its path,
size and modification time), so a change of any of them makes a new entry. Several workers at
once: one computes under an exclusive file lock while the others wait for it, and an entry
appears only complete (written to a temporary folder, then renamed into place).
"""

from __future__ import annotations

from collections.abc import Mapping
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
import shutil
import time
from typing import Any

import numpy as np

from ._base import FileData
from ._base import FitInputs

_logger = logging.getLogger("hpsearch")
FORMAT = 1
SPLITS = ("train", "val", "test")


def cache_root() -> Path:
    return Path(os.environ.get("HPSEARCH_CACHE_DIR", Path.home() / ".cache" / "hpsearch" / "features"))


def cacheable(params: dict[str, Any], options: dict[str, Any]) -> bool:
    """Head-only training gives the same model: no augmentation, frozen backbone, cache on."""
    if str(options.get("feature_cache", "on")) == "off":
        return False
    augment = params.get("augment", params.get("flip", "none") != "none" or float(params.get("rotation", 0)) > 0)
    return not augment and int(params.get("fine_tune_layers", 0)) == 0


def _file_id(path: str) -> list[Any]:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def cache_key(data: Any, backbone: str, image_size: int, weights: Any) -> str:
    h = hashlib.sha256()
    w = str(weights)
    weights_id: Any = w if w in ("imagenet", "none", "None") else _file_id(w)
    h.update(
        json.dumps(
            {"format": FORMAT, "backbone": backbone, "image_size": int(image_size), "weights": weights_id},
            sort_keys=True,
        ).encode()
    )
    for split in SPLITS:
        h.update(split.encode())
        h.update(np.asarray(data.labels(split), dtype="int64").tobytes())
        for p in data.paths(split):
            h.update(json.dumps(_file_id(p)).encode())
    return h.hexdigest()[:32]


def _compute(data: Any, backbone: str, image_size: int, weights: Any, dest: Path) -> None:
    import keras

    from . import _backbones

    keras.backend.clear_session()
    base = _backbones.build_backbone(backbone, image_size, weights, 0)
    inputs = keras.Input((image_size, image_size, 3))
    x = _backbones.preprocess_layer(backbone)(inputs)
    extractor = keras.Model(inputs, base(x, training=False))
    t0 = time.perf_counter()
    for split in SPLITS:
        feats = extractor.predict(data.inputs(split, 64).x, verbose=0)
        np.save(dest / f"{split}.npy", feats.astype("float16"))
    meta = {
        "format": FORMAT,
        "backbone": backbone,
        "image_size": image_size,
        "weights": str(weights),
        "sizes": data.sizes,
        "feature_shape": list(feats.shape[1:]),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (dest / "meta.json").write_text(json.dumps(meta, indent=2))
    keras.backend.clear_session()


def features(data: Any, backbone: str, image_size: int, weights: Any) -> dict[str, np.memmap]:
    """The cached feature maps per split (computing them once, under a lock, if needed)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(data, backbone, image_size, weights)
    entry = root / key
    if not (entry / "meta.json").is_file():
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker computes; the others wait, then load
            if not (entry / "meta.json").is_file():
                tmp = root / f".{key}.{os.getpid()}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                try:
                    _logger.info("computing %s features of %s once (cache %s)", backbone, data.description, entry)
                    _compute(data, backbone, image_size, weights, tmp)
                    os.replace(tmp, entry)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
    return {s: np.load(entry / f"{s}.npy", mmap_mode="r") for s in SPLITS}


# A head step on cached features takes milliseconds, so several run per call into the graph.
HEAD_STEPS_PER_EXECUTION = 16


def head_model(params: dict[str, Any], feature_shape: tuple[int, ...], spec: Any) -> Any:
    """The backbone tasks' head alone, on feature maps: the same layers as ``classifier``'s head."""
    import keras

    from ._backbones import compile_head
    from ._backbones import head_layers

    inputs = keras.Input(feature_shape)
    return compile_head(
        keras.Model(inputs, head_layers(inputs, params, spec)),
        params,
        spec,
        steps_per_execution=HEAD_STEPS_PER_EXECUTION,
    )


# The float32 copies of the last entry's train and validation features, kept by the worker so
# that its later trials skip reading and converting them (one entry: a worker searches one task).
_loaded: dict[str, Any] = {}


def _float32(entry_key: str, feats: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if _loaded.get("key") != entry_key:
        _loaded.clear()
        _loaded.update(
            key=entry_key,
            train=np.asarray(feats["train"], dtype="float32"),
            val=np.asarray(feats["val"], dtype="float32"),
        )
    return _loaded["train"], _loaded["val"]


def head_trial(
    params: dict[str, Any], data: Any, backbone: str, *, seed: int
) -> tuple[Any, FitInputs, FitInputs] | None:
    """``(head model, train, val)`` on cached features when the trial allows it, else None."""
    opts = data.spec.options
    if not cacheable(params, opts) or not isinstance(data, FileData):
        return None
    size = int(opts.get("image_size", data.spec.input_shape[0]))
    weights = opts.get("weights", "imagenet")
    feats = features(data, backbone, size, weights)
    x_train, x_val = _float32(str(Path(str(feats["train"].filename)).parent), feats)
    bs = int(params["batch_size"])
    train = FitInputs(x=x_train, y=data.labels("train"), batch_size=bs)
    val = FitInputs(x=x_val, y=data.labels("val"), batch_size=bs)
    return head_model(params, tuple(feats["train"].shape[1:]), data.spec), train, val

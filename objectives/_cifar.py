"""CIFAR-10 loading for ``cifar10_cnn``.

Sources:
1. ``data_dir`` given: the official ``cifar-10-batches-py`` layout (pickled ``data_batch_1`` ...
   ``data_batch_5``, ``test_batch``, ``batches.meta``); ``data_dir`` may be that folder or its
   parent. Whatever ``data_batch_*`` files are there are the training images, so a subset such as
   ``data_batch_1`` alone (10,000 images) works.
2. no ``data_dir``: ``keras.datasets.cifar10`` (downloads once into ``~/.keras/datasets``).

Split: the validation set is a seeded ``VAL_FRACTION`` of the training images (5,000 of the
50,000; 1,000 of ``data_batch_1``'s 10,000), the rest is the training set, and the official
``test_batch`` (10,000 images) is the test set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
import pickle
from typing import Any

import numpy as np

from ._base import ArrayData
from ._base import OptionValue
from ._base import TaskError
from ._base import brief
from ._base import named
from ._base import resolve_class_names
from ._base import seeded_split

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VAL_FRACTION = 0.1


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise TaskError(f"cannot read CIFAR-10 batch {path}: {e}; re-download cifar-10-python.tar.gz") from None


def _batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    try:
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
        x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # RGB planes -> HWC
    except (KeyError, ValueError) as e:
        raise TaskError(f"{path} is not a CIFAR-10 python batch ({e}); re-download cifar-10-python.tar.gz") from None
    if len(x) != len(labels):
        raise TaskError(f"{path}: {len(x)} images but {len(labels)} labels; re-download it")
    return x, labels


def find_batches_dir(data_dir: Path) -> Path:
    for d in (data_dir, data_dir / "cifar-10-batches-py"):
        if (d / "test_batch").is_file() or any(d.glob("data_batch_*")):
            return d
    raise TaskError(
        f"no CIFAR-10 batches in {data_dir}: expected cifar-10-batches-py/ (data_batch_1..5, test_batch) "
        "there or in its cifar-10-batches-py/ folder; extract cifar-10-python.tar.gz into it"
    )


def load_arrays(
    data_dir: str | None, *, seed: int
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...], str]:
    """``{"train": (x, y), "val": ..., "test": ...}`` with x uint8 (N, 32, 32, 3), class names, a description."""
    names = CLASS_NAMES
    if data_dir is None:
        import keras

        try:
            (x_tr, y_tr), (x_te, y_te) = keras.datasets.cifar10.load_data()
        except Exception as e:
            raise TaskError(
                f"cannot download CIFAR-10 ({brief(e)}); give --data-dir with the cifar-10-batches-py folder"
            ) from None
        source = "keras.datasets.cifar10"
        y_tr, y_te = y_tr.reshape(-1), y_te.reshape(-1)
    else:
        d = find_batches_dir(Path(data_dir))
        train_files = sorted(d.glob("data_batch_*"), key=lambda p: p.name)
        if not train_files:
            raise TaskError(
                f"no data_batch_* files in {d}; extract the training batches of cifar-10-python.tar.gz there"
            )
        if not (d / "test_batch").is_file():
            raise TaskError(f"no test_batch in {d}; extract the test batch of cifar-10-python.tar.gz there")
        xs, ys = zip(*(_batch(p) for p in train_files))
        x_tr, y_tr = np.concatenate(xs), np.concatenate(ys)
        x_te, y_te = _batch(d / "test_batch")
        if (d / "batches.meta").is_file():
            meta = _unpickle(d / "batches.meta")
            if len(meta.get(b"label_names", [])) == 10:
                names = tuple(n.decode() for n in meta[b"label_names"])
        source = f"{d} ({', '.join(p.name for p in train_files)})"
    n_val = round(len(x_tr) * VAL_FRACTION)
    tr, va = seeded_split(len(x_tr), (len(x_tr) - n_val, n_val), seed)
    splits = {"train": (x_tr[tr], y_tr[tr]), "val": (x_tr[va], y_tr[va]), "test": (x_te, y_te)}
    desc = (
        f"CIFAR-10 {source}: {len(tr)} train / {n_val} val (seeded {VAL_FRACTION:.0%} of the training "
        f"images, seed {seed}) / {len(x_te)} official test"
    )
    return splits, names, desc


def load(data_dir: str | None, *, seed: int, options: Mapping[str, OptionValue] | None = None) -> ArrayData:
    splits, names, desc = load_arrays(data_dir, seed=seed)
    names, source = resolve_class_names(names, [y for _, y in splits.values()], options, data_dir)
    desc = named(desc, names, source)

    def prep(x: np.ndarray) -> np.ndarray:
        return x.astype("float32") / 255.0

    return ArrayData(
        x_train=prep(splits["train"][0]),
        y_train=splits["train"][1],
        x_val=prep(splits["val"][0]),
        y_val=splits["val"][1],
        x_test=prep(splits["test"][0]),
        y_test=splits["test"][1],
        class_names=names,
        description=desc,
        options=options,
    )

"""MNIST loading shared by ``mnist_mlp`` and ``mnist_cnn``.

Sources, in order:
1. ``data_dir`` given: ``mnist.npz`` (Keras' file), or the four IDX files (``train-images-idx3-ubyte``
   ..., gzipped or not). If only the ``t10k`` files are there (the 10,000-image test set), they are
   split with a seeded permutation into 8,000 train / 1,000 validation / 1,000 test.
2. no ``data_dir``: ``keras.datasets.mnist`` (downloads once into ``~/.keras/datasets``).

Class names: the digits, unless ``--option class_names=A,B,...`` or a ``classes.txt`` beside the
files (one name a line) names them; IDX labels beyond 9 (another alphabet) make more classes.

With the full data set the official 10,000 test images are the test set and the last
``VAL_SIZE`` of a seeded permutation of the 60,000 training images is the validation set.
"""

from __future__ import annotations

from collections.abc import Mapping
import gzip
from pathlib import Path
import struct

import numpy as np

from ._base import ArrayData
from ._base import OptionValue
from ._base import TaskError
from ._base import named
from ._base import resolve_class_names
from ._base import seeded_split

CLASS_NAMES = tuple(str(i) for i in range(10))
T10K_SPLIT = (8000, 1000, 1000)  # train / val / test of the t10k-only split
VAL_SIZE = 6000  # validation images carved out of the 60,000 training images


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise TaskError(f"cannot read IDX file {path}: {e}; re-download it or remove it") from None


def _find(data_dir: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = data_dir / name
        if p.is_file():
            return p
    return None


def load_arrays(data_dir: str | None, *, seed: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """``{"train": (x, y), "val": ..., "test": ...}`` with x uint8 (N, 28, 28), and a description."""
    if data_dir is None:
        import keras

        try:
            (x_tr, y_tr), (x_te, y_te) = keras.datasets.mnist.load_data()
        except Exception as e:
            raise TaskError(f"cannot download MNIST ({e}); give --data-dir with mnist.npz or the IDX files") from None
        return _full(x_tr, y_tr, x_te, y_te, seed, "keras.datasets.mnist")
    d = Path(data_dir)
    if not d.is_dir():
        raise TaskError(
            f"data directory {d} does not exist; give --data-dir a folder with mnist.npz or the MNIST IDX files"
        )
    if (d / "mnist.npz").is_file():
        try:
            with np.load(d / "mnist.npz") as f:
                x_tr, y_tr, x_te, y_te = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        except (OSError, KeyError, ValueError) as e:
            raise TaskError(f"cannot read {d / 'mnist.npz'}: {e}; re-download it") from None
        return _full(x_tr, y_tr, x_te, y_te, seed, f"{d / 'mnist.npz'}")
    files = {
        k: _find(d, k)
        for k in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    if files["t10k-images-idx3-ubyte"] is None or files["t10k-labels-idx1-ubyte"] is None:
        raise TaskError(
            f"no MNIST data in {d}: expected mnist.npz or t10k-images-idx3-ubyte[.gz] and "
            "t10k-labels-idx1-ubyte[.gz] (plus the train-* files for the full set)"
        )
    x_te, y_te = _read_idx(files["t10k-images-idx3-ubyte"]), _read_idx(files["t10k-labels-idx1-ubyte"])
    if len(x_te) != len(y_te):
        raise TaskError(f"{d}: {len(x_te)} test images but {len(y_te)} labels; the files do not match")
    if files["train-images-idx3-ubyte"] and files["train-labels-idx1-ubyte"]:
        x_tr, y_tr = _read_idx(files["train-images-idx3-ubyte"]), _read_idx(files["train-labels-idx1-ubyte"])
        return _full(x_tr, y_tr, x_te, y_te, seed, f"{d} (IDX)")
    tr, va, te = seeded_split(len(x_te), T10K_SPLIT, seed)
    splits = {"train": (x_te[tr], y_te[tr]), "val": (x_te[va], y_te[va]), "test": (x_te[te], y_te[te])}
    desc = (
        f"MNIST t10k only ({d}): seeded split (seed {seed}) "
        f"{T10K_SPLIT[0]} train / {T10K_SPLIT[1]} val / {T10K_SPLIT[2]} test"
    )
    return splits, desc


def _full(x_tr, y_tr, x_te, y_te, seed, source):  # type: ignore[no-untyped-def]
    tr, va = seeded_split(len(x_tr), (len(x_tr) - VAL_SIZE, VAL_SIZE), seed)
    splits = {"train": (x_tr[tr], y_tr[tr]), "val": (x_tr[va], y_tr[va]), "test": (x_te, y_te)}
    desc = f"MNIST {source}: {len(tr)} train / {len(va)} val (seed {seed}) / {len(x_te)} official test"
    return splits, desc


def load(
    data_dir: str | None, *, seed: int, channels: bool, options: Mapping[str, OptionValue] | None = None
) -> ArrayData:
    splits, desc = load_arrays(data_dir, seed=seed)
    names, source = resolve_class_names(CLASS_NAMES, [y for _, y in splits.values()], options, data_dir)
    if names != CLASS_NAMES:  # IDX files of another alphabet, or named classes: not (necessarily) MNIST
        desc = desc.replace("MNIST", "MNIST-format", 1) + f", {len(names)} classes"
    desc = named(desc, names, source)

    def prep(x: np.ndarray) -> np.ndarray:
        x = x.astype("float32") / 255.0
        return x[..., None] if channels else x

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

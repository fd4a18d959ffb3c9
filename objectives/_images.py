"""Image files as a task's ``Data``: folders of class sub-folders (and CelebA's lists) in, ``tf.data`` out.

``ImageFolderData`` holds, per split, a list of files and their integer labels. Its pipelines
decode and resize in parallel (``num_parallel_calls=AUTOTUNE``), keep the decoded uint8 images
in memory (``Dataset.cache``) when all splits fit in ``CACHE_FRACTION`` of the machine's memory,
shuffle with the trial's seed, batch and prefetch. Models get float32 RGB pixels in [0, 255];
each model does its own rescaling (``preprocess_input`` of its backbone).

Every file is decoded once up front (``check_images``) with the decoder the pipeline uses;
a corrupt or unreadable image (or a format TensorFlow cannot decode) is dropped and the count
is logged as a warning on the ``hpsearch`` logger, so training never stops on a bad file.
(This is why ``keras.utils.image_dataset_from_directory`` is not used as is: it has no such
check, and one bad JPEG ends the epoch with an error. Its conventions are kept: class names
are the sorted sub-folder names, sub-folders of a class folder are searched too, the same
extensions are read, and images are resized bilinearly without keeping the aspect ratio.)

Folder layouts (``image_splits``):

- split folders, named (case-insensitively) ``train``/``training``/``training_set``,
  ``val``/``valid``/``validation``, ``test``/``test_set`` (``SPLIT_FOLDERS``; Kaggle's doubled
  ``training_set/training_set/`` too), each holding the same ``<class>/`` folders: those splits;
  without a test folder, the test set is a seeded fifth of the validation images (the
  cats-vs-dogs notebook's ``validation_dataset.take(len // 5)``); without a validation folder,
  seeded 10% of the training images are the validation set (and 10% more the test set when there
  is no test folder either). A test or validation folder without a training folder is an error;
  other folders beside the split folders are ignored with a warning.
- ``D/<class>/...`` only: a seeded 80% / 10% / 10% split. When every such "class" folder holds
  the same sub-folders (``a/{cats,dogs}``, ``b/{cats,dogs}``) they look like splits, and a warning
  says how to name them.

The data line (``description``) names the class names found and counts the images of each split
after unreadable ones were dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._base import Data
from ._base import DataSpec
from ._base import FitInputs
from ._base import TaskError
from ._base import seeded_split

_logger = logging.getLogger("hpsearch")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # what tf.io.decode_image reads
# split folder names, matched case-insensitively (the first of each role is the canonical one)
SPLIT_FOLDERS = {
    "train": ("train", "training", "training_set", "train_set", "trainset"),
    "val": ("validation", "val", "valid", "validation_set", "val_set", "valid_set"),
    "test": ("test", "testing", "test_set", "testset"),
}
VAL_FOLDERS = SPLIT_FOLDERS["val"]
IGNORED_FOLDERS = ("__macosx",)  # what zip tools leave beside the data
CACHE_FRACTION = 0.25  # cache decoded images when they take at most this share of the memory
CARVE_FRACTION = 0.1  # share of the training images taken for val (and test) when no folder exists
TEST_SHARE_OF_VAL = 5  # without test/, test = one fifth of validation (as in the cats-vs-dogs notebook)

Splits = dict[str, tuple[list[str], np.ndarray]]


# -- listing -----------------------------------------------------------------------------------
def class_folders(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))


def list_class_images(
    folder: Path, class_names: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Image files under ``folder/<class>/`` (sorted), their labels, and the class names.

    An empty class folder, or a folder without class sub-folders, is a ``TaskError``.
    """
    found = class_folders(folder)
    if not found:
        raise TaskError(
            f"{folder} has no class sub-folders; put each class's images in its own folder ({folder}/<class>/image.jpg)"
        )
    names = tuple(class_names) if class_names is not None else found
    if class_names is not None and set(found) != set(names):
        raise TaskError(
            f"{folder} has classes {', '.join(found)} but the training folder has {', '.join(names)}; "
            "give every split the same class folders"
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        files = sorted(
            str(p)
            for p in (folder / name).rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise TaskError(
                f"class folder {folder / name} has no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}); "
                "add images to it or remove the folder"
            )
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype="int64"), names


def _take(paths: list[str], labels: np.ndarray, idx: np.ndarray) -> tuple[list[str], np.ndarray]:
    idx = np.sort(idx)
    return [paths[i] for i in idx], labels[idx]


def _role(name: str) -> str | None:
    low = name.lower()
    for role, names in SPLIT_FOLDERS.items():
        if low in names:
            return role
    return None


def _unnest(folder: Path) -> Path:
    """Kaggle's ``training_set/training_set/<class>/``: a split folder holding only itself."""
    subs = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(subs) == 1 and subs[0].is_dir() and subs[0].name.lower() == folder.name.lower():
        return subs[0]
    return folder


def split_folders(data_dir: Path) -> dict[str, Path]:
    """The split sub-folders of ``data_dir`` by role (``train`` / ``val`` / ``test``).

    Names are matched case-insensitively against ``SPLIT_FOLDERS`` (``train``, ``training_set``,
    ``val``, ``valid``, ``validation``, ``test``, ``test_set``...). Two folders of one role (``val/``
    and ``validation/``) are a ``TaskError``.
    """
    found: dict[str, Path] = {}
    for name in class_folders(data_dir):
        role = _role(name)
        if role is None:
            continue
        if role in found:
            raise TaskError(
                f"{data_dir} has two {role} folders, {found[role].name}/ and {name}/; keep one of them (merge their images)"
            )
        found[role] = _unnest(data_dir / name)
    return found


def _names(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _warn_if_splits(data_dir: Path, names: Sequence[str]) -> None:
    """Loudly warn when the "class" folders all hold the same sub-folders: they look like splits."""
    if len(names) < 2:
        return
    subs = []
    for name in names:
        entries = [p for p in (data_dir / name).iterdir() if not p.name.startswith(".")]
        if any(p.is_file() for p in entries):
            return  # images directly in a class folder: a class
        subs.append(tuple(sorted(p.name for p in entries if p.is_dir())))
    if len(subs[0]) >= 2 and all(s == subs[0] for s in subs):
        _logger.warning(
            "the class folders of %s (%s) each hold the same sub-folders (%s): they look like splits, not "
            "classes, and every class would mix all of them. If they are splits, rename them train/ and "
            "test/ (or training_set/ and test_set/, val/ or validation/)",
            data_dir,
            _names(names),
            _names(subs[0]),
        )


def image_splits(data_dir: Path, *, seed: int) -> tuple[Splits, tuple[str, ...], dict[str, str]]:
    """Train / val / test file lists of an image-folder data set (see the module docstring), the class
    names, and where each split came from (``{"train": "training_set/", ...}``)."""
    if not data_dir.is_dir():
        raise TaskError(f"data directory {data_dir} does not exist; fix --data-dir")
    dirs = split_folders(data_dir)
    if not dirs:
        paths, labels, names = list_class_images(data_dir)
        _warn_if_splits(data_dir, names)
        n = len(paths)
        n_val = n_test = max(1, round(n * CARVE_FRACTION))
        tr, va, te = seeded_split(n, (n - n_val - n_test, n_val, n_test), seed)
        splits = {"train": _take(paths, labels, tr), "val": _take(paths, labels, va), "test": _take(paths, labels, te)}
        how = f"seeded split of the class folders, seed {seed}"
        return splits, names, {"train": how, "val": how, "test": how}
    if "train" not in dirs:
        raise TaskError(
            f"{data_dir} has {', '.join(p.name + '/' for p in dirs.values())} but no training folder; "
            "put the training images in train/<class>/ (or training_set/<class>/)"
        )
    others = [n for n in class_folders(data_dir) if _role(n) is None and n.lower() not in IGNORED_FOLDERS]
    if others:
        _logger.warning(
            "%s: reading the split folders %s and ignoring %s, which are not splits (split folders: "
            "train/ or training_set/, val/ valid/ or validation/, test/ or test_set/); move class folders into train/",
            data_dir,
            ", ".join(p.name + "/" for p in dirs.values()),
            ", ".join(n + "/" for n in others),
        )
    train_dir = dirs["train"]
    train = list_class_images(train_dir)
    names = train[2]
    val_dir, test_dir = dirs.get("val"), dirs.get("test")
    rel = {k: str(p.relative_to(data_dir)) + "/" for k, p in dirs.items()}
    test = list_class_images(test_dir, names)[:2] if test_dir else None
    notes = {"train": rel["train"]}
    if val_dir is not None:
        val = list_class_images(val_dir, names)[:2]
        splits = {"train": train[:2]}
        if test is None:
            n = len(val[0])
            n_test = max(1, n // TEST_SHARE_OF_VAL)
            te, va = seeded_split(n, (n_test, n - n_test), seed)
            splits["val"], splits["test"] = _take(*val, va), _take(*val, te)
            notes["val"] = f"{rel['val']} less the test images"
            notes["test"] = f"seeded {TEST_SHARE_OF_VAL}th of {rel['val']}, seed {seed}"
        else:
            splits["val"], splits["test"] = val, test
            notes["val"], notes["test"] = rel["val"], rel["test"]
    else:
        n = len(train[0])
        n_val = max(1, round(n * CARVE_FRACTION))
        n_test = 0 if test is not None else n_val
        tr, va, te = seeded_split(n, (n - n_val - n_test, n_val, n_test), seed)
        splits = {"train": _take(*train[:2], tr), "val": _take(*train[:2], va)}
        splits["test"] = test if test is not None else _take(*train[:2], te)
        notes["train"] = f"{rel['train']} less the val images"
        notes["val"] = f"seeded {CARVE_FRACTION:.0%} of {rel['train']}, seed {seed}"
        notes["test"] = (
            rel["test"] if test is not None else f"seeded {CARVE_FRACTION:.0%} of {rel['train']}, seed {seed}"
        )
    return splits, names, notes


def split_line(splits: Splits, notes: dict[str, str]) -> str:
    """``598 train (train/) / 160 val (validation/) / 40 test (test/)``: counts as they are now."""
    return " / ".join(f"{len(splits[k][0])} {k} ({notes[k]})" for k in ("train", "val", "test"))


# -- checking ----------------------------------------------------------------------------------
def _decodes(path: str) -> bool:
    import tensorflow as tf

    try:
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return bool(img.shape[0]) and bool(img.shape[1])
    except Exception:  # tf.errors.*, OSError: anything unreadable is skipped, never fatal
        return False


def check_images(splits: Splits, where: str) -> tuple[Splits, int]:
    """Drop the files TensorFlow cannot decode; log how many (and a few names) as a warning."""
    all_paths = [p for paths, _ in splits.values() for p in paths]
    from .._quiet import IMAGE_NOISE
    from .._quiet import native_stderr_filtered

    # libjpeg prints its complaints about a corrupt file to fd 2 itself; the count below says it
    with native_stderr_filtered(IMAGE_NOISE), ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as ex:
        ok = dict(zip(all_paths, ex.map(_decodes, all_paths)))
    bad = [p for p in all_paths if not ok[p]]
    if not bad:
        return splits, 0
    out: Splits = {}
    for split, (paths, labels) in splits.items():
        keep = np.asarray([ok[p] for p in paths], dtype=bool)
        out[split] = ([p for p, k in zip(paths, keep) if k], labels[keep] if len(keep) else labels)
    examples = ", ".join(Path(p).name for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
    _logger.warning("skipped %d corrupt or unreadable image(s) in %s (%s)", len(bad), where, examples)
    for split, (paths, _) in out.items():
        if not paths:
            raise TaskError(f"no readable images left in the {split} split of {where}; replace the corrupt files")
    return out, len(bad)


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


# -- the Data ----------------------------------------------------------------------------------
class ImageFolderData(Data):
    """Image files with integer labels per split, fed to Keras as ``tf.data`` pipelines.

    ``inputs`` returns ``FitInputs(x=dataset of (image, label) batches)``; images are float32
    RGB in [0, 255] of shape ``(image_size, image_size, 3)``.
    """

    def __init__(
        self,
        splits: Splits,
        *,
        class_names: Sequence[str],
        image_size: int,
        description: str,
        options: dict[str, Any] | None = None,
        skipped: int = 0,
        cache: bool | None = None,
    ) -> None:
        self._splits = {k: (list(v[0]), np.asarray(v[1], dtype="int64")) for k, v in splits.items()}
        self.image_size = int(image_size)
        self.skipped = skipped
        self.spec = DataSpec(
            input_shape=(self.image_size, self.image_size, 3),
            num_classes=len(class_names),
            class_names=tuple(class_names),
            options=dict(options or {}),
        )
        self.sizes = {k: len(v[0]) for k, v in self._splits.items()}
        decoded = sum(self.sizes.values()) * self.image_size * self.image_size * 3
        self.cached = cache if cache is not None else decoded <= CACHE_FRACTION * _memory_bytes()
        self._raw_description = description
        self.description = (
            description
            + (f"; {skipped} unreadable image(s) skipped" if skipped else "")
            + (
                f"; decoded images cached in memory ({decoded / 2**20:.0f} MiB)"
                if self.cached
                else "; no cache (too big)"
            )
        )
        self._base: dict[str, Any] = {}

    # the pipeline
    def _decode_fn(self) -> Any:
        import tensorflow as tf

        size = (self.image_size, self.image_size)

        def decode(path: Any, label: Any) -> tuple[Any, Any]:
            img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            img = tf.image.resize(img, size, method="bilinear")
            img = tf.cast(tf.clip_by_value(tf.round(img), 0.0, 255.0), tf.uint8)
            img.set_shape((*size, 3))
            return img, label

        return decode

    def _files(self, split: str) -> Any:
        import tensorflow as tf

        paths, labels = self._splits[split]
        return tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=str), labels))

    def _decoded(self, split: str) -> Any:
        """The decoded uint8 images of a split, in file order; one cache shared by all trials."""
        import tensorflow as tf

        if split not in self._base:
            ds = self._files(split).map(self._decode_fn(), num_parallel_calls=tf.data.AUTOTUNE)
            self._base[split] = ds.cache() if self.cached else ds
        return self._base[split]

    def inputs(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> FitInputs:
        import tensorflow as tf

        n = self.sizes[split]
        if shuffle and not self.cached:
            # shuffle the (small) file list, then decode: the buffer never holds images
            ds = self._files(split).shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.map(self._decode_fn(), num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = self._decoded(split)
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = (
            ds.batch(int(batch_size))
            .map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
        return FitInputs(x=ds, y=None, batch_size=None)

    def labels(self, split: str) -> np.ndarray:
        return self._splits[split][1]

    def paths(self, split: str) -> list[str]:
        return list(self._splits[split][0])

    def images(self, split: str, indices: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        decode = self._decode_fn()
        paths, labels = self._splits[split]
        out = [decode(tf.constant(paths[int(i)]), labels[int(i)])[0].numpy() for i in np.asarray(indices).ravel()]
        return np.stack(out) if out else np.zeros((0, self.image_size, self.image_size, 3), dtype=np.uint8)

    def _copy(self, splits: Splits, description: str) -> ImageFolderData:
        return ImageFolderData(
            splits,
            class_names=self.spec.class_names,
            image_size=self.image_size,
            description=description,
            options=dict(self.spec.options),
            skipped=self.skipped,
            cache=None,
        )

    def merged(self, splits: tuple[str, ...]) -> ImageFolderData:
        """A copy whose ``train`` is the concatenation of ``splits`` (``train --train-on train+val``)."""
        paths = [p for s in splits for p in self._splits[s][0]]
        labels = np.concatenate([self._splits[s][1] for s in splits])
        new = {**self._splits, "train": (paths, labels)}
        return self._copy(new, self._raw_description + f"; trained on {'+'.join(splits)}")

    def head(self, n: int | dict[str, int]) -> ImageFolderData:
        """A copy with only the first ``n`` files of each split (tests, benchmarks)."""
        sizes = n if isinstance(n, dict) else {k: n for k in self._splits}
        new = {k: (v[0][: sizes.get(k, len(v[0]))], v[1][: sizes.get(k, len(v[0]))]) for k, v in self._splits.items()}
        return self._copy(new, self._raw_description + f"; first {sizes} files per split")


def folder_data(
    data_dir: Path, *, seed: int, image_size: int, options: dict[str, Any] | None, what: str
) -> ImageFolderData:
    """``image_splits`` + ``check_images`` -> ``ImageFolderData``."""
    splits, names, notes = image_splits(data_dir, seed=seed)
    if len(names) < 2:
        raise TaskError(f"{data_dir} has one class ({names[0]}); a classifier needs at least two class folders")
    splits, skipped = check_images(splits, str(data_dir))
    # counts after the unreadable images were dropped
    desc = f"{what} {data_dir}: {split_line(splits, notes)}; {len(names)} classes ({_names(names)}), {image_size}x{image_size}"
    return ImageFolderData(
        splits, class_names=names, image_size=image_size, description=desc, options=options, skipped=skipped
    )

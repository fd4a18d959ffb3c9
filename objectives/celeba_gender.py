"""CelebA gender (attribute ``Male``) with a frozen VGG16 (the CelebA notebook: 0.933 accuracy).

Data (``--data-dir``): CelebA's aligned images ``img_align_celeba/*.jpg`` (Kaggle's nested
``img_align_celeba/img_align_celeba/`` and the official ``Img/``, ``Anno/``, ``Eval/`` folders
work too) with ``list_attr_celeba.txt`` (official: a count line, a line of 40 attribute names,
then ``000001.jpg -1 1 ...``) or ``list_attr_celeba.csv`` (Kaggle: ``image_id,...`` header,
-1/1 values). Classes: ``female`` (Male = -1) and ``male`` (Male = 1).

Split: with ``list_eval_partition.txt`` / ``.csv`` (``000001.jpg 0``; 0 train / 1 val / 2 test),
the official partition, each split cut to its first 80% / 10% / 10% of ``max_images``; without
it, the notebook's split: the first ``max_images`` images of the attribute file in order, the
first 80% train, the next 10% validation, the last 10% test (24,000 / 3,000 / 3,000 by default).
``max_images=0`` uses every image. Listed images missing on disk, and unreadable ones, are
skipped and counted.

Model: VGG16 ``preprocess_input`` -> VGG16 without top (``weights`` option; frozen, or top
``fine_tune_layers`` trainable) -> ``pooling`` -> [Dense(``dense_units``, relu)] ->
Dropout(``dropout``) -> Dense(2, softmax); adam, or SGD with momentum 0.9.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from . import _backbones
from ._base import Data
from ._base import DataSpec
from ._base import FitInputs
from ._base import OptionValue
from ._base import Params
from ._base import SuggestTrial
from ._base import TaskError
from ._base import TaskOption
from ._base import int_option
from ._base import resolve_options
from ._base import str_option
from ._celeba import ATTRIBUTE as ATTRIBUTE
from ._celeba import SPLIT_FRACTIONS as SPLIT_FRACTIONS
from ._celeba import celeba_splits

if TYPE_CHECKING:
    import keras

name = "celeba_gender"
mixed_precision = True  # mixed_float16 on GPUs (objectives/_fit.py); float32 on CPU
description = "CelebA faces, gender (attribute Male), frozen VGG16 + dense head (CelebA notebook)"

BACKBONE = "VGG16"
CLASS_NAMES = ("female", "male")
MAX_IMAGES = 30_000  # the notebook's first 30,000 images


def _parse_max_images(text: str) -> int:
    n = int(text)
    if n < 0:
        raise ValueError("max_images must be >= 0 (0 = every image)")
    return n


OPTIONS = {
    **_backbones.backbone_options(224),
    "max_images": TaskOption(
        MAX_IMAGES,
        f"images used at most, split 80/10/10 (default {MAX_IMAGES:,}, the notebook's); 0 = all",
        parse=_parse_max_images,
    ),
}
options = OPTIONS

# The notebook's configuration: frozen VGG16, flatten -> Dense 2 softmax, adam lr 1e-4, batch 64:
# 0.933 test accuracy.
baselines: list[dict[str, Any]] = [
    {
        "learning_rate": 1e-4,
        "batch_size": 64,
        "optimizer": "adam",
        "pooling": "flatten",
        "dense_units": 0,
        "dropout": 0.0,
    },
]


def search_space(trial: SuggestTrial) -> Params:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "batch_size": trial.suggest_int("batch_size", 8, 64, log=True),
        "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),  # sgd: momentum 0.9
        "pooling": trial.suggest_categorical("pooling", ["flatten", "avg"]),
        "dense_units": trial.suggest_int("dense_units", 0, 512, step=64),  # 0 = no hidden dense layer
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


def load_data(data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None) -> Data:
    import logging

    from ._images import ImageFolderData
    from ._images import check_images

    opts = resolve_options(name, OPTIONS, options or {})
    if data_dir is None:
        raise TaskError(
            "celeba_gender needs --data-dir: a folder with img_align_celeba/ and list_attr_celeba.txt "
            "(CelebA cannot be downloaded automatically)"
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise TaskError(f"data directory {root} does not exist; fix --data-dir")
    splits, missing, how = celeba_splits(root, max_images=int_option(opts, "max_images"))
    _backbones.check_weights(BACKBONE, int_option(opts, "image_size"), str_option(opts, "weights"))  # before decoding
    if missing:
        logging.getLogger("hpsearch").warning(
            "skipped %d image(s) listed in the attribute file but missing in %s", missing, root
        )
    splits, bad = check_images(splits, str(root))
    sizes = {k: len(v[0]) for k, v in splits.items()}
    desc = (
        f"{how}: {sizes['train']} train / {sizes['val']} val / {sizes['test']} test, "
        f"{opts['image_size']}x{opts['image_size']}" + (f"; {missing} listed image(s) missing" if missing else "")
    )
    data = ImageFolderData(
        splits,
        class_names=CLASS_NAMES,
        image_size=int_option(opts, "image_size"),
        description=desc,
        options=opts,
        skipped=bad,
    )
    return data


def build_model(params: Params, spec: DataSpec) -> keras.Model:
    return _backbones.classifier(params, spec, BACKBONE)


def search_model(params: Params, data: Data, *, seed: int) -> tuple[keras.Model, FitInputs, FitInputs] | None:
    """The backbone is always frozen and nothing is augmented: heads train on cached VGG16 features
    (objectives/_feature_cache.py) unless the option feature_cache=off."""
    from ._feature_cache import head_trial

    return head_trial(params, data, BACKBONE, seed=seed)

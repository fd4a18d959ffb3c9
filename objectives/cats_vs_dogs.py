"""Cats vs dogs with a frozen MobileNetV2 (the transfer-learning notebook: 97% validation accuracy).

Data: ``train/{cats,dogs}`` and ``validation/{cats,dogs}`` (the ``cats_and_dogs_filtered`` layout;
``--data-dir`` may also be its parent), or Kaggle's ``training_set/`` + ``test_set/``; split folder
names are matched case-insensitively (``objectives/_images.py``). The test set is a seeded fifth of the validation images,
as in the notebook, unless a ``test/`` folder exists. Without ``--data-dir`` the notebook's
``cats_and_dogs_filtered.zip`` is downloaded once by ``keras.utils.get_file``. Images are
resized to ``image_size`` (default 160, the notebook's); unreadable files are skipped and counted.

Model: RandomFlip(``flip``) -> RandomRotation(``rotation``) -> MobileNetV2 ``preprocess_input``
-> MobileNetV2 without top (``weights`` option; frozen, or its top ``fine_tune_layers`` layers
trainable) -> ``pooling`` (flatten | global average) -> [Dense(``dense_units``, relu)] ->
Dropout(``dropout``) -> Dense(classes, softmax); adam.
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
from ._base import int_option
from ._base import resolve_options
from ._base import str_option

if TYPE_CHECKING:
    import keras
from ._base import brief

name = "cats_vs_dogs"
description = (
    "cats vs dogs photos (image folders), frozen MobileNetV2 + augmentation + head (transfer-learning notebook)"
)

BACKBONE = "MobileNetV2"
mixed_precision = True  # mixed_float16 on GPUs (objectives/_fit.py); float32 on CPU
URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"

OPTIONS = _backbones.backbone_options(160)
options = OPTIONS

# The notebook's configuration: flip horizontal + rotation 0.2, frozen MobileNetV2, flatten,
# Dense 64 relu, Dense 2; adam (Keras' default learning rate 1e-3), batch 32 (the notebook's
# BATCH_SIZE), 20 epochs (the study's --max-epochs): 97% validation accuracy.
baselines: list[dict[str, Any]] = [
    {
        "augment": True,
        "flip": "horizontal",
        "rotation": 0.2,
        "pooling": "flatten",
        "dense_units": 64,
        "dropout": 0.0,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "fine_tune": False,
    },
]


def search_space(trial: SuggestTrial) -> Params:
    """Augmentation and fine-tuning are switched on or off as a whole, so that trials with neither
    (a sizeable share) train on cached backbone features (objectives/_feature_cache.py)."""
    params: dict[str, Any] = {"augment": trial.suggest_categorical("augment", [True, False])}
    if params["augment"]:
        params["flip"] = trial.suggest_categorical("flip", ["none", "horizontal", "horizontal_and_vertical"])
        params["rotation"] = trial.suggest_float("rotation", 0.0, 0.3)
    params.update(
        {
            "pooling": trial.suggest_categorical("pooling", ["flatten", "avg"]),
            "dense_units": trial.suggest_int("dense_units", 0, 256, step=32),  # 0 = no hidden dense layer
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
            "batch_size": trial.suggest_int("batch_size", 16, 64, log=True),
            "fine_tune": trial.suggest_categorical("fine_tune", [False, True]),  # False = frozen backbone
        }
    )
    if params["fine_tune"]:
        params["fine_tune_layers"] = trial.suggest_int("fine_tune_layers", 10, 60, step=10)
    return params


def _download() -> Path:
    import keras

    try:
        path = keras.utils.get_file("cats_and_dogs_filtered.zip", origin=URL, extract=True)
    except Exception as e:
        raise TaskError(
            f"cannot download cats_and_dogs_filtered.zip ({brief(e)}); give --data-dir "
            "a folder with train/{cats,dogs} and validation/{cats,dogs}"
        ) from None
    p = Path(path)
    for d in (p, p / "cats_and_dogs_filtered", p.parent / "cats_and_dogs_filtered"):
        if (d / "train").is_dir():
            return d
    raise TaskError(f"the downloaded archive at {p} has no train/ folder; give --data-dir instead")


def _has_train(d: Path) -> bool:
    from ._images import split_folders

    return d.is_dir() and "train" in split_folders(d)


def data_root(data_dir: str | None) -> Path:
    """The folder holding the split folders (``train/`` or ``training_set/``..., any case)."""
    if data_dir is None:
        return _download()
    d = Path(data_dir)
    if not _has_train(d) and _has_train(d / "cats_and_dogs_filtered"):
        d = d / "cats_and_dogs_filtered"
    if not _has_train(d):
        raise TaskError(
            f"no train/ folder (nor training_set/) in {d}: expected train/{{cats,dogs}} and validation/{{cats,dogs}} "
            "(the cats_and_dogs_filtered layout) or training_set/{cats,dogs} and test_set/{cats,dogs}; fix --data-dir"
        )
    return d


def load_data(data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None) -> Data:
    from ._images import folder_data

    opts = resolve_options(name, OPTIONS, options or {})
    root = data_root(data_dir)
    _backbones.check_weights(BACKBONE, int_option(opts, "image_size"), str_option(opts, "weights"))  # before decoding
    return folder_data(root, seed=seed, image_size=int_option(opts, "image_size"), options=opts, what="cats vs dogs")


def build_model(params: Params, spec: DataSpec) -> keras.Model:
    return _backbones.classifier(params, spec, BACKBONE)


def search_model(params: Params, data: Data, *, seed: int) -> tuple[keras.Model, FitInputs, FitInputs] | None:
    """Head-only training on cached backbone features when the trial allows it (else None)."""
    from ._feature_cache import head_trial

    return head_trial(params, data, BACKBONE, seed=seed)

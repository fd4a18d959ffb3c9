"""Any image-folder data set with a pretrained ``keras.applications`` backbone.

Data (``--data-dir``, required): one sub-folder per class, either directly (``D/<class>/...``,
seeded 80/10/10 split) or under ``D/train/`` with an optional ``D/validation/`` or ``D/val/``
(else seeded 10% of train) and an optional ``D/test/`` (else a seeded fifth of the validation
images, or 10% of train). See ``objectives/_images.py``. Unreadable images are skipped and counted.

Options: ``backbone`` (MobileNetV2, EfficientNetB0, ResNet50, VGG16), ``weights`` (imagenet |
none | a weights file), ``image_size`` (default 224).

Model: as ``cats_vs_dogs``: RandomFlip(``flip``) -> RandomRotation(``rotation``) -> the backbone's
``preprocess_input`` -> backbone (frozen, or top ``fine_tune_layers`` layers trainable) ->
``pooling`` -> [Dense(``dense_units``, relu)] -> Dropout(``dropout``) -> Dense(classes, softmax); adam.
"""

from __future__ import annotations

from pathlib import Path
import sys
from typing import Any

from . import _backbones
from ._base import DataSpec
from ._base import TaskError
from ._base import TaskOption
from .cats_vs_dogs import search_space as search_space  # the same space as cats_vs_dogs

name = "image_folder"
description = "any folder of class sub-folders, pretrained keras.applications backbone (option backbone) + head"

options = {
    "backbone": TaskOption("MobileNetV2", "pretrained backbone", choices=tuple(_backbones.BACKBONES)),
    **_backbones.backbone_options(224),
}

# A sensible start (Keras' transfer-learning guide): frozen backbone, light augmentation,
# global average pooling, dropout 0.2, linear-probe head; adam 1e-3, batch 32.
baselines: list[dict[str, Any]] = [
    {
        "augment": True,
        "flip": "horizontal",
        "rotation": 0.1,
        "pooling": "avg",
        "dense_units": 0,
        "dropout": 0.2,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "fine_tune": False,
    },
]


def load_data(data_dir: str | None, *, seed: int = 0, options: dict[str, Any] | None = None) -> Any:
    from ._images import folder_data
    from ._registry import task_options

    opts = task_options(sys.modules[__name__], options or {})
    if data_dir is None:
        raise TaskError("image_folder needs --data-dir: a folder with one sub-folder of images per class")
    if not Path(data_dir).is_dir():
        raise TaskError(f"data directory {data_dir} does not exist; fix --data-dir")
    _backbones.check_weights(opts["backbone"], opts["image_size"], opts["weights"])  # before decoding any image
    return folder_data(
        Path(data_dir),
        seed=seed,
        image_size=opts["image_size"],
        options=opts,
        what=f"image folder ({opts['backbone']})",
    )


def build_model(params: dict[str, Any], spec: DataSpec) -> Any:
    return _backbones.classifier(params, spec, spec.options.get("backbone", "MobileNetV2"))


def search_model(params: dict[str, Any], data: Any, *, seed: int) -> Any:
    """Head-only training on cached backbone features when the trial allows it (else None)."""
    from ._feature_cache import head_trial

    return head_trial(params, data, data.spec.options.get("backbone", "MobileNetV2"), seed=seed)

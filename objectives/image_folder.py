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
from ._base import TaskError
from ._base import TaskOption
from ._base import int_option
from ._base import resolve_options
from ._base import str_option
from .cats_vs_dogs import search_space as search_space  # the same space as cats_vs_dogs

if TYPE_CHECKING:
    import keras

name = "image_folder"
mixed_precision = True  # mixed_float16 on GPUs (objectives/_fit.py); float32 on CPU
description = "any folder of class sub-folders, pretrained keras.applications backbone (option backbone) + head"

OPTIONS = {
    "backbone": TaskOption("MobileNetV2", "pretrained backbone", choices=tuple(_backbones.BACKBONES)),
    **_backbones.backbone_options(224),
}
options = OPTIONS

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


def load_data(data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None) -> Data:
    from ._images import folder_data

    opts = resolve_options(name, OPTIONS, options or {})
    if data_dir is None:
        raise TaskError("image_folder needs --data-dir: a folder with one sub-folder of images per class")
    if not Path(data_dir).is_dir():
        raise TaskError(f"data directory {data_dir} does not exist; fix --data-dir")
    _backbones.check_weights(str_option(opts, "backbone"), int_option(opts, "image_size"), str_option(opts, "weights"))
    return folder_data(
        Path(data_dir),
        seed=seed,
        image_size=int_option(opts, "image_size"),
        options=opts,
        what=f"image folder ({opts['backbone']})",
    )


def build_model(params: Params, spec: DataSpec) -> keras.Model:
    return _backbones.classifier(params, spec, str(spec.options.get("backbone", "MobileNetV2")))


def search_model(params: Params, data: Data, *, seed: int) -> tuple[keras.Model, FitInputs, FitInputs] | None:
    """Head-only training on cached backbone features when the trial allows it (else None)."""
    from ._feature_cache import head_trial

    return head_trial(params, data, str(data.spec.options.get("backbone", "MobileNetV2")), seed=seed)

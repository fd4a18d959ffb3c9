"""Pretrained backbones from ``keras.applications``: the model, its ``preprocess_input``, its weights.

``build_backbone(name, image_size, weights, trainable_layers)`` returns the backbone without its
top, frozen (``trainable_layers=0``) or with its top N layers trainable. ``weights`` is a study
option: ``imagenet`` (downloaded once by Keras into ``~/.keras/models``), ``none`` (random
initialisation: offline tests, or training from scratch) or a path to a weights file (the
no-top ``.h5`` file downloaded elsewhere, or a Keras ``.weights.h5``).

``check_weights`` builds the backbone once in ``load_data``, so a missing download or a wrong
weights file stops the study before any trial, with a ``TaskError`` naming the offline options.

Models take raw RGB pixels in [0, 255]; the backbone's own ``preprocess_input`` runs inside the
model (``BackbonePreprocess``, registered so ``model.keras`` reloads), so a saved model needs no
preprocessing outside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._base import TaskError
from ._base import TaskOption
from ._base import brief

# name -> (keras.applications module, constructor, ImageNet no-top weights file (MobileNetV2: at 224 px;
# see weights_file) for the error message)
BACKBONES: dict[str, tuple[str, str, str]] = {
    "MobileNetV2": ("mobilenet_v2", "MobileNetV2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    "EfficientNetB0": ("efficientnet", "EfficientNetB0", "efficientnetb0_notop.h5"),
    "ResNet50": ("resnet", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "VGG16": ("vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}
SGD_MOMENTUM = 0.9  # "sgd" in the backbone tasks' spaces is SGD with this momentum
MIN_IMAGE_SIZE = 32  # keras.applications' smallest input without the top


def parse_image_size(text: str) -> int:
    size = int(text)
    if size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be an integer >= {MIN_IMAGE_SIZE}, got {size}")
    return size


def backbone_options(image_size: int) -> dict[str, TaskOption]:
    """The options every backbone task has: ``weights`` and ``image_size``."""
    return {
        "weights": TaskOption(
            "imagenet",
            "backbone weights: imagenet (downloaded once into ~/.keras/models), none (random "
            "initialisation, works offline: for plumbing tests, a frozen random backbone learns "
            "nothing), or a path to a weights file",
        ),
        "image_size": TaskOption(
            image_size,
            f"square input size in pixels, >= {MIN_IMAGE_SIZE} (default {image_size})",
            parse=parse_image_size,
        ),
        "feature_cache": TaskOption(
            "on",
            "on: trials without augmentation and with a frozen backbone train the head on cached "
            "backbone features (objectives/_feature_cache.py); off: always end to end",
            choices=("on", "off"),
        ),
    }


def resolve_weights(value: Any) -> str | None:
    """``imagenet`` | ``None`` (for ``none``) | an existing file's absolute path; else ``TaskError``."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() == "imagenet":
        return "imagenet"
    if text.lower() in ("none", "random", ""):
        return None
    p = Path(text).expanduser()
    if not p.is_file():
        raise TaskError(
            f"weights file {text} not found; pass --weights imagenet, --weights none, or the path of "
            "an existing weights file"
        )
    return str(p.resolve())


MOBILENET_SIZES = (96, 128, 160, 192, 224)  # sizes MobileNetV2 has ImageNet weights for (else 224's)


def weights_file(name: str, image_size: int) -> str:
    """The ImageNet no-top weights file Keras downloads for backbone ``name`` at ``image_size``."""
    if name == "MobileNetV2":
        rows = image_size if image_size in MOBILENET_SIZES else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    return BACKBONES[name][2]


def _constructor(name: str) -> Any:
    import importlib

    if name not in BACKBONES:
        raise TaskError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    module, ctor, _ = BACKBONES[name]
    return getattr(importlib.import_module(f"keras.applications.{module}"), ctor)


def build_backbone(name: str, image_size: int, weights: Any, trainable_layers: int = 0) -> Any:
    """The no-top ``keras.applications`` model; frozen, or its top ``trainable_layers`` trainable."""
    ctor = _constructor(name)
    w = resolve_weights(weights)
    shape = (int(image_size), int(image_size), 3)
    try:
        base = ctor(include_top=False, weights=w, input_shape=shape)
    except ValueError as e:
        if w not in (None, "imagenet"):
            raise TaskError(
                f"weights file {w} does not fit {name} without its top at {shape}: {e}; pass the "
                f"no-top file ({weights_file(name, int(image_size))}) or --weights none"
            ) from None
        raise TaskError(f"cannot build {name} for input {shape}: {e}; choose another image_size") from None
    except Exception as e:
        if w == "imagenet":
            file = weights_file(name, int(image_size))
            raise TaskError(
                f"cannot download ImageNet weights for {name} ({brief(e)}); without network use --weights "
                f"none (random initialisation), or download {file} elsewhere and put it in "
                f"~/.keras/models/, or pass --weights /path/to/file.h5"
            ) from None
        if w is not None:
            raise TaskError(
                f"cannot load weights file {w} into {name}: {e}; pass a {name} no-top weights file or --weights none"
            ) from None
        raise
    n = int(trainable_layers)
    if n <= 0:
        base.trainable = False
    else:
        base.trainable = True
        for layer in base.layers[: max(0, len(base.layers) - n)]:
            layer.trainable = False
    return base


def check_weights(name: str, image_size: int, weights: Any) -> None:
    """Build the backbone once (downloads ImageNet weights if needed): errors before any trial."""
    import keras

    build_backbone(name, image_size, weights)
    keras.backend.clear_session()


def preprocess_layer(name: str) -> Any:
    return _preprocess_class()(backbone=name)


_PREPROCESS_CLS: Any = None


def _preprocess_class() -> Any:
    """Defined on first use so that importing this module never imports Keras."""
    global _PREPROCESS_CLS
    if _PREPROCESS_CLS is not None:
        return _PREPROCESS_CLS
    import importlib

    import keras

    @keras.saving.register_keras_serializable(package="hpsearch")
    class BackbonePreprocess(keras.layers.Layer):
        """The backbone's ``keras.applications.<module>.preprocess_input`` as a layer."""

        def __init__(self, backbone: str = "MobileNetV2", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.backbone = backbone
            self._fn = importlib.import_module(f"keras.applications.{BACKBONES[backbone][0]}").preprocess_input

        def call(self, inputs: Any) -> Any:
            return self._fn(inputs)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "backbone": self.backbone}

    _PREPROCESS_CLS = BackbonePreprocess
    return _PREPROCESS_CLS


def augmentation(x: Any, flip: str, rotation: float, *, seed: int | None = None) -> Any:
    """Random flip / rotation layers (active in ``fit`` only)."""
    import keras

    if flip != "none":
        x = keras.layers.RandomFlip(flip, seed=seed)(x)
    if rotation > 0:
        x = keras.layers.RandomRotation(rotation, seed=seed)(x)
    return x


def classifier(params: dict[str, Any], spec: Any, backbone: str) -> Any:
    """The backbone tasks' model: augmentation -> preprocess_input -> backbone -> head.

    Head: ``pooling`` (``flatten`` | ``avg``) -> optional Dense(``dense_units``, relu) ->
    Dropout(``dropout``) -> Dense(classes, softmax). ``fine_tune_layers`` top backbone layers are
    trainable (0 = frozen); the backbone runs in inference mode (``training=False``) so its batch
    norm statistics stay as loaded, as in Keras' transfer-learning guide.
    """
    import keras

    size = int(spec.options.get("image_size", spec.input_shape[0]))
    base = build_backbone(
        backbone, size, spec.options.get("weights", "imagenet"), int(params.get("fine_tune_layers", 0))
    )
    inputs = keras.Input(spec.input_shape)
    x = augmentation(inputs, params.get("flip", "none"), float(params.get("rotation", 0.0)))
    x = preprocess_layer(backbone)(x)
    x = base(x, training=False)
    return compile_head(keras.Model(inputs, head_layers(x, params, spec)), params, spec)


def head_layers(x: Any, params: dict[str, Any], spec: Any) -> Any:
    """pooling -> [Dense(dense_units, relu)] -> [Dropout] -> Dense(classes, softmax), on a feature map.

    Shared by the full model and the feature cache's head-only model (objectives/_feature_cache.py).
    """
    import keras

    x = (
        keras.layers.Flatten()(x)
        if params.get("pooling", "flatten") == "flatten"
        else keras.layers.GlobalAveragePooling2D()(x)
    )
    if int(params.get("dense_units", 0)) > 0:
        x = keras.layers.Dense(int(params["dense_units"]), activation="relu")(x)
    if float(params.get("dropout", 0.0)) > 0:
        x = keras.layers.Dropout(float(params["dropout"]))(x)
    # float32 under a mixed_float16 policy too (objectives/_fit.py): a float16 softmax and loss
    # lose precision; a no-op under the default float32 policy.
    return keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32")(x)


def compile_head(model: Any, params: dict[str, Any], spec: Any, *, steps_per_execution: int = 1) -> Any:
    from ._keras import compile_classifier

    compile_params = {**params, "optimizer": params.get("optimizer", "adam")}  # fixed adam where not searched
    return compile_classifier(
        model,
        compile_params,
        spec.num_classes,
        momentum=SGD_MOMENTUM if compile_params["optimizer"] == "sgd" else 0.0,
        steps_per_execution=steps_per_execution,
    )

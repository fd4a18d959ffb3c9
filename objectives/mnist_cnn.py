"""MNIST convolutional network (the Keras "simple MNIST convnet" notebook: 99.28% test).

Model: ``n_blocks`` x [Conv2D(``filters_i``, ``kernel_size``, relu) -> MaxPool 2x2] -> Flatten ->
[Dense(``dense_units``, relu) when > 0] -> Dropout(``dropout``) -> Dense(10, softmax).
Convolutions use ``valid`` padding like the notebook while the feature map is large enough;
a block whose input is smaller than the kernel uses ``same`` padding (3 blocks of 5x5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from . import _mnist
from ._base import ArrayData
from ._base import DataSpec
from ._base import OptionValue
from ._base import Params
from ._base import SuggestTrial

if TYPE_CHECKING:
    import keras
from ._base import class_names_option

name = "mnist_cnn"
description = "MNIST 28x28x1 digits, 1-3 conv/pool blocks + dropout + optional dense (Keras MNIST convnet notebook)"

# The notebook's own configuration, enqueued as a new study's first trial:
# Conv 32 3x3 -> pool -> Conv 64 3x3 -> pool -> flatten -> dropout 0.5 -> Dense 10;
# adam (lr 1e-3), batch 128, 15 epochs (the study's --max-epochs): 99.28% test accuracy.
cpu_bfloat16 = True  # mixed_bfloat16 on CPUs with AMX-BF16 (objectives/_fit.py); float32 elsewhere
options = {"class_names": class_names_option()}  # or classes.txt beside the data

baselines: list[dict[str, Any]] = [
    {
        "n_blocks": 2,
        "filters_0": 32,
        "filters_1": 64,
        "kernel_size": 3,
        "dropout": 0.5,
        "dense_units": 0,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 128,
    },
]


def search_space(trial: SuggestTrial) -> Params:
    n_blocks = trial.suggest_int("n_blocks", 1, 3)
    params: dict[str, Any] = {"n_blocks": n_blocks}
    for i in range(n_blocks):
        params[f"filters_{i}"] = trial.suggest_int(f"filters_{i}", 16, 128, log=True)
    params["kernel_size"] = trial.suggest_categorical("kernel_size", [3, 5])
    params["dropout"] = trial.suggest_float("dropout", 0.0, 0.6)
    params["dense_units"] = trial.suggest_int("dense_units", 0, 256, step=32)  # 0 = no hidden dense layer
    params["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"])
    params["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    params["batch_size"] = trial.suggest_int("batch_size", 32, 256, log=True)
    return params


def load_data(data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None) -> ArrayData:
    return _mnist.load(data_dir, seed=seed, channels=True, options=options)


def conv_blocks(
    x: Any,
    filters: list[int],
    kernel_size: int,
    *,
    batch_norm: bool = False,
    pool_last: bool = True,
    padding: str = "valid",
) -> Any:
    """Conv(relu) [-> BatchNorm] -> MaxPool 2x2 per block; ``valid`` falls back to ``same`` when too small."""
    import keras

    size = int(x.shape[1])
    for i, f in enumerate(filters):
        pad = padding if padding == "same" or size >= kernel_size + 1 else "same"
        x = keras.layers.Conv2D(f, kernel_size, padding=pad, activation="relu")(x)
        size = size if pad == "same" else size - kernel_size + 1
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        if (i < len(filters) - 1 or pool_last) and size >= 2:
            x = keras.layers.MaxPooling2D(2)(x)
            size //= 2
    return x


def build_model(params: dict[str, Any], spec: DataSpec) -> keras.Model:  # values: see search_space
    import keras

    from ._keras import compile_classifier

    inputs = keras.Input(spec.input_shape)
    filters = [int(params[f"filters_{i}"]) for i in range(int(params["n_blocks"]))]
    x = conv_blocks(inputs, filters, int(params["kernel_size"]))
    x = keras.layers.Flatten()(x)
    if int(params.get("dense_units", 0)) > 0:
        x = keras.layers.Dense(int(params["dense_units"]), activation="relu")(x)
    if float(params["dropout"]) > 0:
        x = keras.layers.Dropout(float(params["dropout"]))(x)
    # float32 under a mixed policy too (objectives/_fit.py): a bfloat16 softmax and loss lose precision
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32")(x)
    return compile_classifier(keras.Model(inputs, outputs), params, spec.num_classes)

"""CIFAR-10 convolutional network (the CIFAR-10 CNN notebook: 71.03% -> 74.50% test).

Model: [augmentation: RandomFlip horizontal + RandomTranslation 0.1, when ``augment``] ->
``n_blocks`` x [Conv2D(3x3, relu, ``padding``) -> BatchNorm (``batch_norm``) -> MaxPool 2x2] ->
Flatten -> Dropout(``dropout``) -> ``n_dense`` x [Dense(``dense_units``, relu) -> Dropout] ->
Dense(10, softmax).

Filters: block ``i`` has ``min(base_filters * 2**i, filters_cap)`` filters: they double per block
until the cap. The cap is what makes the notebook's final model, 32/64/128/128, exactly
representable (``base_filters=32, filters_cap=128``); ``filters_cap=512`` never binds (no cap).
``pool_last=False`` leaves out the last block's pooling, as in the notebook's starting model
(TensorFlow's CNN tutorial: Conv 32 -> pool -> Conv 64 -> pool -> Conv 64 -> Flatten).
``sgd`` is SGD with momentum 0.9.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from . import _cifar
from ._base import ArrayData
from ._base import DataSpec
from ._base import OptionValue
from ._base import Params
from ._base import SuggestTrial

if TYPE_CHECKING:
    import keras
from ._base import class_names_option

name = "cifar10_cnn"
description = (
    "CIFAR-10 32x32x3, 2-4 conv blocks (optional batch norm, augmentation) + 0-2 dense (CIFAR-10 CNN notebook)"
)

SGD_MOMENTUM = 0.9

# The notebook's configurations, enqueued as a new study's first trials (batch size: Keras'
# default 32, which the notebook used; epochs: the study's --max-epochs).
cpu_bfloat16 = True  # mixed_bfloat16 on CPUs with AMX-BF16 (objectives/_fit.py); float32 elsewhere
options = {"class_names": class_names_option()}  # or classes.txt beside the data
# A CNN trained from scratch ranks configurations poorly in its first epochs: over the 18 distinct
# unpruned 15-epoch curves on record, Spearman's rank correlation of val accuracy with the curve's
# best is 0.32 after epoch 1 and 0.63 after epoch 4 (mnist_mlp: 0.94 after epoch 1); of the top
# quarter, 1 of 5 is in the top quarter after epoch 1, 3 of 5 after epoch 4
# (benchmarks/curve_ranks.py). So no pruner stops a trial before its 4th epoch ends.
prune_after_epochs = 4

baselines: list[dict[str, Any]] = [
    # (a) final model: Conv 32/64/128/128 3x3 + batch norm + max-pool, flatten, dropout 0.2,
    #     2 x Dense 128 with dropout 0.2, adam, 10 epochs: 74.50% test.
    {
        "n_blocks": 4,
        "base_filters": 32,
        "filters_cap": 128,
        "batch_norm": True,
        "padding": "same",
        "pool_last": True,
        "dropout": 0.2,
        "n_dense": 2,
        "dense_units": 128,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 32,
        "augment": False,
    },
    # (b) starting model: Conv 32 -> pool -> Conv 64 -> pool -> Conv 64 (valid padding), flatten,
    #     Dense 64, adam, 10 epochs: 71.03% test.
    {
        "n_blocks": 3,
        "base_filters": 32,
        "filters_cap": 64,
        "batch_norm": False,
        "padding": "valid",
        "pool_last": False,
        "dropout": 0.0,
        "n_dense": 1,
        "dense_units": 64,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 32,
        "augment": False,
    },
]


def search_space(trial: SuggestTrial) -> Params:
    params: dict[str, Any] = {}
    params["n_blocks"] = trial.suggest_int("n_blocks", 2, 4)
    params["base_filters"] = trial.suggest_int("base_filters", 16, 64, log=True)
    params["filters_cap"] = trial.suggest_categorical("filters_cap", [64, 128, 256, 512])
    params["batch_norm"] = trial.suggest_categorical("batch_norm", [False, True])
    params["padding"] = trial.suggest_categorical("padding", ["same", "valid"])
    params["pool_last"] = trial.suggest_categorical("pool_last", [True, False])
    params["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    params["n_dense"] = trial.suggest_int("n_dense", 0, 2)
    if params["n_dense"]:
        params["dense_units"] = trial.suggest_int("dense_units", 64, 256, log=True)
    params["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "sgd"])
    params["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    params["batch_size"] = trial.suggest_int("batch_size", 32, 256, log=True)
    params["augment"] = trial.suggest_categorical("augment", [False, True])
    return params


def block_filters(params: dict[str, Any]) -> list[int]:
    return [min(int(params["base_filters"]) * 2**i, int(params["filters_cap"])) for i in range(int(params["n_blocks"]))]


def load_data(data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None) -> ArrayData:
    return _cifar.load(data_dir, seed=seed, options=options)


def build_model(params: dict[str, Any], spec: DataSpec) -> keras.Model:  # values: see search_space
    import keras

    from ._keras import compile_classifier
    from .mnist_cnn import conv_blocks

    inputs = keras.Input(spec.input_shape)
    x = inputs
    if params.get("augment"):
        x = keras.layers.RandomFlip("horizontal")(x)
        x = keras.layers.RandomTranslation(0.1, 0.1)(x)
    x = conv_blocks(
        x,
        block_filters(params),
        3,
        batch_norm=bool(params["batch_norm"]),
        pool_last=bool(params["pool_last"]),
        padding=params["padding"],
    )
    x = keras.layers.Flatten()(x)
    dropout = float(params["dropout"])
    if dropout > 0:
        x = keras.layers.Dropout(dropout)(x)
    for _ in range(int(params["n_dense"])):
        x = keras.layers.Dense(int(params["dense_units"]), activation="relu")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    # float32 under a mixed policy too (objectives/_fit.py): a bfloat16 softmax and loss lose precision
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32")(x)
    momentum = SGD_MOMENTUM if params["optimizer"] == "sgd" else 0.0
    return compile_classifier(keras.Model(inputs, outputs), params, spec.num_classes, momentum=momentum)

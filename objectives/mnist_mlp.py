"""MNIST multi-layer perceptron (SYDE 522 A4 part 1; CAP 6619 P1 part 1)."""

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

name = "mnist_mlp"
description = "MNIST 28x28 digits, Flatten + 0-3 Dense layers (SYDE 522 / CAP 6619 MLP notebooks)"

# The notebooks' own configurations, enqueued as a new study's first trials.
options = {"class_names": class_names_option()}  # or classes.txt beside the data

baselines: list[dict[str, Any]] = [
    # (a) 2 x Dense 128 relu, dropout 0.2, adam 1e-3, batch 32, 10 epochs: 98.05% test.
    {
        "n_layers": 2,
        "units_0": 128,
        "units_1": 128,
        "activation": "relu",
        "dropout": 0.2,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 32,
        "loss": "crossentropy",
    },
    # (b) Dense 64 sigmoid, SGD lr 0.01, mean squared error, batch 128: ~89.5% after 500 epochs.
    {
        "n_layers": 1,
        "units_0": 64,
        "activation": "sigmoid",
        "dropout": 0.0,
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "batch_size": 128,
        "loss": "mse",
    },
]


def search_space(trial: SuggestTrial) -> Params:
    n_layers = trial.suggest_int("n_layers", 0, 3)
    params: dict[str, Any] = {"n_layers": n_layers}
    for i in range(n_layers):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", 16, 512, log=True)
    if n_layers:
        params["activation"] = trial.suggest_categorical("activation", ["relu", "sigmoid", "tanh"])
        params["dropout"] = trial.suggest_float("dropout", 0.0, 0.6)
    params["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop", "adadelta"])
    params["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    params["batch_size"] = trial.suggest_int("batch_size", 16, 256, log=True)
    params["loss"] = trial.suggest_categorical("loss", ["crossentropy", "mse"])
    return params


def load_data(data_dir: str | None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None) -> ArrayData:
    return _mnist.load(data_dir, seed=seed, channels=False, options=options)


def build_model(params: Params, spec: DataSpec) -> keras.Model:
    from ._keras import mlp_classifier  # imports Keras: lazily, so `hpsearch tasks` stays fast

    return mlp_classifier(params, spec)

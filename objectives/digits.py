"""scikit-learn's bundled 8x8 digits: real data that needs no download (demos, fast tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from ._base import ArrayData
from ._base import DataSpec
from ._base import OptionValue
from ._base import Params
from ._base import SuggestTrial
from ._base import class_names_option
from ._base import named
from ._base import resolve_class_names
from ._base import seeded_split

if TYPE_CHECKING:
    import keras

name = "digits"
description = "scikit-learn's bundled 8x8 digits (1,797 images, no download), small MLP; for demos and tests"

options = {"class_names": class_names_option()}

SPLIT = (1257, 270, 270)  # train / val / test of a seeded permutation of the 1,797 images

baselines: list[dict[str, Any]] = [
    {
        "n_layers": 1,
        "units_0": 64,
        "activation": "relu",
        "dropout": 0.1,
        "optimizer": "adam",
        "learning_rate": 1e-2,
        "batch_size": 32,
    },
]


def search_space(trial: SuggestTrial) -> Params:
    n_layers = trial.suggest_int("n_layers", 0, 2)
    params: dict[str, Any] = {"n_layers": n_layers}
    for i in range(n_layers):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", 8, 128, log=True)
    if n_layers:
        params["activation"] = trial.suggest_categorical("activation", ["relu", "tanh"])
        params["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    params["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "sgd"])
    params["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    params["batch_size"] = trial.suggest_int("batch_size", 16, 128, log=True)
    return params


def load_data(
    data_dir: str | None = None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None
) -> ArrayData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype("float32")  # (1797, 8, 8), pixel values 0..16
    y = bunch.target
    tr, va, te = seeded_split(len(x), SPLIT, seed)
    names, source = resolve_class_names(tuple(str(i) for i in range(10)), [y], options, data_dir)
    return ArrayData(
        x_train=x[tr],
        y_train=y[tr],
        x_val=x[va],
        y_val=y[va],
        x_test=x[te],
        y_test=y[te],
        class_names=names,
        description=named(
            f"sklearn digits: seeded split (seed {seed}) {SPLIT[0]}/{SPLIT[1]}/{SPLIT[2]}", names, source
        ),
        options=options,
    )


def build_model(params: Params, spec: DataSpec) -> keras.Model:
    from ._keras import mlp_classifier  # imports Keras: lazily, so `hpsearch tasks` stays fast

    return mlp_classifier(params, spec)

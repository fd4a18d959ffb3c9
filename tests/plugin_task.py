"""A plug-in task for the tests: digits 0 vs 1 of scikit-learn's bundled 8x8 digits.

Run it with ``PYTHONPATH=tests hpsearch run --task plugin_task ...`` (a module is a task) or
``--task plugin_task:TASK`` (an object in it); see docs/own-task.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from hpsearch.objectives import ArrayData
from hpsearch.objectives import DataSpec
from hpsearch.objectives import OptionValue
from hpsearch.objectives import Params
from hpsearch.objectives import SuggestTrial

name = "plugin_task"
description = "digits 0 vs 1 (scikit-learn, no download), logistic regression or one hidden layer; a plug-in example"

baselines: list[Params] = [{"units": 8, "learning_rate": 0.01, "batch_size": 16}]


def search_space(trial: SuggestTrial) -> Params:
    return {
        "units": trial.suggest_int("units", 0, 32),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
        "batch_size": trial.suggest_int("batch_size", 8, 64, log=True),
    }


def load_data(
    data_dir: str | None = None, *, seed: int = 0, options: Mapping[str, OptionValue] | None = None
) -> ArrayData:
    from sklearn.datasets import load_digits

    x, y = load_digits(n_class=2, return_X_y=True)  # 360 images of 0 and 1
    x = (x.reshape(-1, 8, 8) / 16.0).astype("float32")
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, va, te = perm[:240], perm[240:300], perm[300:]
    return ArrayData(
        x_train=x[tr],
        y_train=y[tr],
        x_val=x[va],
        y_val=y[va],
        x_test=x[te],
        y_test=y[te],
        class_names=("zero", "one"),
        description=f"digits 0/1, seeded split (seed {seed}) 240/60/60",
        options=options,
    )


def build_model(params: Params, spec: DataSpec) -> Any:  # a keras.Model
    import keras

    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    if params["units"]:
        x = keras.layers.Dense(params["units"], activation="relu")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# The same task as one object, for ``--task plugin_task:TASK`` or an entry point.
TASK = SimpleNamespace(
    name=name,
    description=description,
    baselines=baselines,
    search_space=search_space,
    load_data=load_data,
    build_model=build_model,
)

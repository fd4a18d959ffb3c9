"""A plug-in task fed by a Python generator through ``tf.data`` (``--task generator_task``, PYTHONPATH=tests).

For the signal tests: ``tf.data.Dataset.from_generator`` runs the generator on TensorFlow's own
threads, the set-up under which a worker used to deadlock at interpreter shutdown after SIGTERM.
Each batch sleeps ``HPSEARCH_TEST_SLOW_SECONDS`` (default 0.2), so a trial lasts long enough to
be interrupted. Real data: 300 of scikit-learn's digits.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hpsearch.objectives import ArrayData
from hpsearch.objectives import DataSpec
from hpsearch.objectives import FitInputs

name = "generator_task"
description = "test task: 300 digits through tf.data.Dataset.from_generator, slow batches"
baselines: list[dict[str, Any]] = []


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "units": trial.suggest_int("units", 4, 32),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [20]),
    }


def load_data(data_dir: str | None = None, *, seed: int = 0, options: dict[str, Any] | None = None) -> ArrayData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:300] / 16.0).astype("float32").reshape(300, 64)
    y = d.target[:300]
    return ArrayData(
        x_train=x[:200],
        y_train=y[:200],
        x_val=x[200:250],
        y_val=y[200:250],
        x_test=x[250:],
        y_test=y[250:],
        class_names=tuple(map(str, range(10))),
        description="300 sklearn digits through a generator (test task)",
        options=options,
    )


def build_model(params: dict[str, Any], spec: DataSpec) -> Any:
    import keras

    from hpsearch.objectives._keras import compile_classifier

    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Dense(params["units"], activation="relu")(inputs)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    return compile_classifier(keras.Model(inputs, outputs), {**params, "optimizer": "adam"}, spec.num_classes)


def fit_inputs(data: ArrayData, params: dict[str, Any], *, seed: int) -> tuple[FitInputs, FitInputs]:
    import tensorflow as tf

    bs = int(params["batch_size"])
    delay = float(os.environ.get("HPSEARCH_TEST_SLOW_SECONDS", "0.2"))
    x, y = data.inputs("train", bs).x, data.labels("train")

    def batches() -> Any:
        for i in range(0, len(x), bs):
            time.sleep(delay)
            yield x[i : i + bs], y[i : i + bs]

    train = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec(shape=(None, x.shape[1]), dtype=tf.float32),
            tf.TensorSpec(shape=(None,), dtype=tf.int64),
        ),
    ).prefetch(2)
    return FitInputs(x=train), data.inputs("val", bs)

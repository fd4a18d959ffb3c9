"""A tiny plug-in task for the concurrency and failure tests (``--task fault_task``, PYTHONPATH=tests).

Real data (300 of scikit-learn's digits) and a real Keras model, so trials take well under a second.
Faults are injected per trial number through ``HPSEARCH_TEST_FAULTS`` ("0:nan,1:oom,2:slow"):
``nan``   a layer that makes the loss NaN (a real divergence path through Keras)
``dead``  a layer that zeroes the features: the model can learn only the class frequencies, so it
          always gives the same answer (a configuration that never learns)
``oom``   a Dense layer whose weights need 4 TiB: TensorFlow's own ResourceExhaustedError
``error`` an exception in the model builder
``slow``  batches that take ``HPSEARCH_TEST_SLOW_SECONDS`` each (default 0.5), for kill/SIGTERM tests
"""

from __future__ import annotations

import os
import time
from typing import Any

from hpsearch.objectives import ArrayData
from hpsearch.objectives import DataSpec
from hpsearch.objectives import FitInputs
from hpsearch.objectives import Params
from hpsearch.objectives import SuggestTrial

name = "fault_task"
description = "test task: 300 digits, a tiny MLP, injectable faults"
baselines: list[dict[str, Any]] = []


def _fault(number: int) -> str:
    spec = os.environ.get("HPSEARCH_TEST_FAULTS", "")
    faults = dict(item.split(":", 1) for item in spec.split(",") if ":" in item)
    return faults.get(str(number), "none")


# How the trial now being built misbehaves. Not a param: a trial's params are only what
# search_space suggests (hpsearch create refuses other keys), and the fault depends on the trial's
# number, which only search_space sees. The runner calls search_space, then build_model and
# fit_inputs, in the same process; final training (no search_space call) sees "none".
_current_fault = "none"


def search_space(trial: SuggestTrial) -> Params:
    global _current_fault
    _current_fault = _fault(trial.number)
    return {
        "units": trial.suggest_int("units", 4, 32),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32]),  # a constant, suggested
    }


def load_data(data_dir: str | None = None, *, seed: int = 0, options: dict[str, Any] | None = None) -> ArrayData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:300] / 16.0).astype("float32")  # (300, 8, 8): images, so train can plot them
    y = d.target[:300]
    return ArrayData(
        x_train=x[:200],
        y_train=y[:200],
        x_val=x[200:250],
        y_val=y[200:250],
        x_test=x[250:],
        y_test=y[250:],
        class_names=tuple(map(str, range(10))),
        description="300 sklearn digits (test task)",
        options=options,
    )


def build_model(params: Params, spec: DataSpec) -> Any:
    import keras

    from hpsearch.objectives._keras import compile_classifier

    fault = _current_fault
    if fault == "error":
        raise ValueError("injected failure in build_model")
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Dense(params["units"], activation="relu")(keras.layers.Flatten()(inputs))
    if fault == "oom":
        x = keras.layers.Dense(2**20)(keras.layers.Dense(2**20)(x))
    if fault == "nan":
        x = keras.layers.Lambda(lambda t: t * float("nan"))(x)
    if fault == "dead":
        x = keras.layers.Lambda(lambda t: t * 0.0)(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    return compile_classifier(keras.Model(inputs, outputs), {**params, "optimizer": "adam"}, spec.num_classes)


def fit_inputs(data: ArrayData, params: Params, *, seed: int) -> tuple[FitInputs, FitInputs]:
    bs = int(params["batch_size"])
    train, val = data.inputs("train", bs), data.inputs("val", bs)
    if _current_fault != "slow":
        return train, val
    import keras

    delay = float(os.environ.get("HPSEARCH_TEST_SLOW_SECONDS", "0.5"))

    class Slow(keras.utils.PyDataset):
        def __len__(self) -> int:
            return len(train.x) // bs

        def __getitem__(self, i: int) -> tuple[Any, Any]:
            time.sleep(delay)
            return train.x[i * bs : (i + 1) * bs], train.y[i * bs : (i + 1) * bs]

    return FitInputs(x=Slow()), val

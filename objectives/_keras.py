"""Small Keras helpers shared by the task modules.

This module imports Keras at the top; task modules import it inside their functions so that
``hpsearch --help`` and ``hpsearch tasks`` never load TensorFlow.
"""

from __future__ import annotations

from typing import Any

import keras

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adadelta")


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0) -> Any:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


@keras.saving.register_keras_serializable(package="hpsearch")
class OneHotMeanSquaredError(keras.losses.Loss):
    """Mean squared error between a softmax output and the one-hot of integer labels.

    The seed notebooks trained with ``loss="mse"`` on one-hot labels; hpsearch keeps integer labels
    everywhere, so this loss one-hot encodes them itself. Registered so ``model.keras`` reloads.
    """

    def __init__(self, num_classes: int = 10, name: str = "one_hot_mse", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.ops.mean(keras.ops.square(keras.ops.one_hot(labels, self.num_classes) - y_pred), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


def compile_classifier(
    model: Any, params: dict[str, Any], num_classes: int, *, momentum: float = 0.0, steps_per_execution: int = 1
) -> Any:
    """Compile a softmax classifier for integer labels.

    ``params["loss"]``: ``crossentropy`` (default) or ``mse``; ``params["optimizer"]`` and
    ``params["learning_rate"]`` pick the optimizer. ``steps_per_execution`` > 1 runs that many
    batches per call into the traced graph (the same updates; fewer Python round trips per epoch),
    for models whose steps take milliseconds: a signal is handled only between calls.
    """
    loss_name = params.get("loss", "crossentropy")
    if loss_name == "crossentropy":
        loss: Any = keras.losses.SparseCategoricalCrossentropy()
    elif loss_name == "mse":
        loss = OneHotMeanSquaredError(num_classes)
    else:
        raise ValueError(f"unknown loss {loss_name!r}")
    model.compile(
        optimizer=make_optimizer(params["optimizer"], params["learning_rate"], momentum),
        loss=loss,
        metrics=["accuracy"],
        # Graph tracing dominates small trials; XLA compilation would add seconds per trial on CPU.
        jit_compile=False,
        steps_per_execution=steps_per_execution,
    )
    return model


def dense_stack(x: Any, params: dict[str, Any], *, prefix: str = "units") -> Any:
    """``n_layers`` Dense layers of ``{prefix}_{i}`` units with shared activation and dropout."""
    for i in range(params["n_layers"]):
        x = keras.layers.Dense(params[f"{prefix}_{i}"], activation=params.get("activation", "relu"))(x)
        if params.get("dropout", 0.0) > 0:
            x = keras.layers.Dropout(params["dropout"])(x)
    return x


def mlp_classifier(params: dict[str, Any], spec: Any) -> Any:
    """Flatten + ``dense_stack`` + softmax, compiled: the model of ``mnist_mlp`` and ``digits``."""
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = dense_stack(x, params)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    return compile_classifier(keras.Model(inputs, outputs), params, spec.num_classes)

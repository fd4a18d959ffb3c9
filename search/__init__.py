"""hpsearch's search room: the CLI, study creation, the worker loop, export, final training.

``hpsearch.load_model(path)`` reloads a ``model.keras`` written by ``hpsearch train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import HpsearchError
from ._errors import UsageError
from ._errors import WorkerStopped

if TYPE_CHECKING:
    import keras

__all__ = ["HpsearchError", "UsageError", "WorkerStopped", "load_model"]


def load_model(path: str | Path) -> keras.Model:
    """``keras.saving.load_model`` with hpsearch's custom layers and losses registered first.

    They are registered (package ``hpsearch``) when first used, not when ``hpsearch`` is imported,
    so that importing hpsearch never imports TensorFlow; a fresh process needs this call (or
    these imports) before Keras can rebuild a saved model.
    """
    import keras

    from .objectives import _backbones
    from .objectives import _keras  # noqa: F401  (registers OneHotMeanSquaredError)

    _backbones._preprocess_class()  # registers BackbonePreprocess
    return keras.saving.load_model(str(path))

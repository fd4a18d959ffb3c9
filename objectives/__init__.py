"""Tasks: one module per model family, all with the same small contract (see ``_base``).

``get_task(name)`` resolves a built-in name, an installed plug-in (entry-point group
``hpsearch.tasks``) or ``package.module:attr``; ``list_tasks()`` lists what is available without
importing TensorFlow.
"""

from __future__ import annotations

from ._base import ArrayData
from ._base import Data
from ._base import DataSpec
from ._base import FitInputs
from ._base import TaskError
from ._base import TaskOption
from ._registry import get_task
from ._registry import list_tasks
from ._registry import task_options
from ._registry import validate_params

__all__ = [
    "ArrayData",
    "Data",
    "DataSpec",
    "FitInputs",
    "TaskError",
    "TaskOption",
    "get_task",
    "list_tasks",
    "task_options",
    "validate_params",
]

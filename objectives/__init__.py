"""Tasks: one module per model family, all with the same small contract (see ``_base``).

``get_task(name)`` resolves a built-in name, an installed plug-in (entry-point group
``hpsearch.tasks``) or ``package.module:attr``; ``list_tasks()`` lists what is available without
importing TensorFlow.
"""

from __future__ import annotations

from ._base import ArrayData
from ._base import CustomFitInputs
from ._base import Data
from ._base import DataSpec
from ._base import FitInputs
from ._base import HasOptions
from ._base import HasPruneAfter
from ._base import OptionValue
from ._base import Params
from ._base import ParamValue
from ._base import SearchShortcut
from ._base import SuggestTrial
from ._base import Task
from ._base import TaskError
from ._base import TaskOption
from ._base import prune_after_epochs
from ._base import resolve_options
from ._registry import get_task
from ._registry import list_tasks
from ._registry import task_options
from ._registry import validate_params
from ._space import RecordingTrial

__all__ = [
    "ArrayData",
    "CustomFitInputs",
    "Data",
    "DataSpec",
    "FitInputs",
    "HasOptions",
    "HasPruneAfter",
    "OptionValue",
    "ParamValue",
    "Params",
    "RecordingTrial",
    "SearchShortcut",
    "SuggestTrial",
    "Task",
    "TaskError",
    "TaskOption",
    "prune_after_epochs",
    "resolve_options",
    "get_task",
    "list_tasks",
    "task_options",
    "validate_params",
]

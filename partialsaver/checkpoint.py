"""Offline tools on checkpoint files, no graph needed (DESIGN section 7).

::

    resolve_checkpoint(path) -> str
    list_variables(path) -> list[VariableInfo]      # (name, shape, dtype, nbytes), sorted
    load_variable(path, name) -> numpy.ndarray
    rename_variables(src, dst, name_map, *, include, exclude, overwrite, memory_budget) -> dict
    diff_checkpoints(a, b) -> CheckpointDiff

Metadata comes from a checkpoint's ``.index`` alone; tensors are read one at a time
(``load_variable``, ``diff_checkpoints``) or streamed in bounded batches
(``rename_variables``).
"""

from partialsaver._diff import Change, CheckpointDiff, ValueChange, diff_checkpoints
from partialsaver._reading import (
    CheckpointMetadata,
    VariableInfo,
    list_variables,
    load_variable,
    open_reader,
    read_metadata,
    resolve_checkpoint,
)
from partialsaver._rename import DEFAULT_MEMORY_BUDGET, RenamePlan, plan_rename, rename_variables

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "Change",
    "CheckpointDiff",
    "CheckpointMetadata",
    "RenamePlan",
    "ValueChange",
    "VariableInfo",
    "diff_checkpoints",
    "list_variables",
    "load_variable",
    "open_reader",
    "plan_rename",
    "read_metadata",
    "rename_variables",
    "resolve_checkpoint",
]

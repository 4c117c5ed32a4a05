"""Offline tools on checkpoint files: no graph, no TensorFlow needed.

::

    resolve_checkpoint(path) -> str
    list_variables(path) -> list[VariableInfo]      # (name, shape, dtype, nbytes), sorted
    load_variable(path, name) -> numpy.ndarray
    rename_variables(src, dst, name_map, *, include, exclude, overwrite, memory_budget) -> dict
    diff_checkpoints(a, b) -> CheckpointDiff

Metadata comes from a checkpoint's ``.index`` alone; tensors are read one at a time
(``load_variable``, ``diff_checkpoints``), each checked against its crc32c; a rename
rewrites the index and reuses the data files, or copies the kept bytes.
"""

from partialsaver._diff import Change, CheckpointDiff, ValueChange, diff_checkpoints
from partialsaver._reading import (
    CheckpointMetadata,
    VariableInfo,
    list_variables,
    load_variable,
    open_reader,
    read_metadata,
)
from partialsaver._rename import DEFAULT_MEMORY_BUDGET, RenamePlan, destination_prefix, plan_rename, rename_variables
from partialsaver._resolve import resolve_checkpoint

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "Change",
    "CheckpointDiff",
    "CheckpointMetadata",
    "RenamePlan",
    "ValueChange",
    "VariableInfo",
    "destination_prefix",
    "diff_checkpoints",
    "list_variables",
    "load_variable",
    "open_reader",
    "plan_rename",
    "read_metadata",
    "rename_variables",
    "resolve_checkpoint",
]

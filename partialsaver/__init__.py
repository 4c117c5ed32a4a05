"""partialsaver: partial checkpoint restore for TensorFlow 1-style graphs, safe and explicit.

Plan first (what will be restored, what is missing, unused or mismatched), restore
exactly that, initialize exactly the rest.

``import partialsaver`` does not import TensorFlow: the offline checkpoint tools work
without it, and the names that need it (``SmartSaver``, ``RestorePlan``, ...) import it
on first use.

Example:
    >>> from partialsaver import SmartSaver
    >>> saver = SmartSaver(name_map={"v3": "v3_x"})
    >>> print(saver.restore(sess, "train_dir"))                  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from partialsaver.diagnostics import Diagnostic
from partialsaver.errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NameMapError,
    PartialSaverError,
    UsageError,
    VariableNotFoundError,
)
from partialsaver.presets import GLOBAL_STEP, OPTIMIZER_SLOTS

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "CheckpointDiff": "partialsaver.checkpoint",
    "VariableInfo": "partialsaver.checkpoint",
    "diff_checkpoints": "partialsaver.checkpoint",
    "list_variables": "partialsaver.checkpoint",
    "load_variable": "partialsaver.checkpoint",
    "rename_variables": "partialsaver.checkpoint",
    "resolve_checkpoint": "partialsaver.checkpoint",
    "Mismatch": "partialsaver.plan",
    "Restore": "partialsaver.plan",
    "RestorePlan": "partialsaver.plan",
    "SmartSaver": "partialsaver.saver",
    "export_checkpoint": "partialsaver.convert",
    "import_checkpoint": "partialsaver.convert",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from partialsaver.checkpoint import (
        CheckpointDiff,
        VariableInfo,
        diff_checkpoints,
        list_variables,
        load_variable,
        rename_variables,
        resolve_checkpoint,
    )
    from partialsaver.convert import export_checkpoint, import_checkpoint
    from partialsaver.plan import Mismatch, Restore, RestorePlan
    from partialsaver.saver import SmartSaver


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'partialsaver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "GLOBAL_STEP",
    "OPTIMIZER_SLOTS",
    "CheckpointDiff",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "Diagnostic",
    "Mismatch",
    "NameMapError",
    "PartialSaverError",
    "Restore",
    "RestorePlan",
    "SmartSaver",
    "UsageError",
    "VariableInfo",
    "VariableNotFoundError",
    "__version__",
    "diff_checkpoints",
    "export_checkpoint",
    "import_checkpoint",
    "list_variables",
    "load_variable",
    "rename_variables",
    "resolve_checkpoint",
]

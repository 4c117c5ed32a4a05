"""partialsaver: partial checkpoint restore for TensorFlow 1-style graphs, safe and explicit.

Plan first (what will be restored, what is missing, unused or mismatched), restore
exactly that, initialise exactly the rest.

Example:
    >>> from partialsaver import SmartSaver
    >>> saver = SmartSaver(name_map={"v3": "v3_x"})
    >>> print(saver.restore(sess, "train_dir"))                  # doctest: +SKIP
"""

import logging

from partialsaver.checkpoint import (
    CheckpointDiff,
    VariableInfo,
    diff_checkpoints,
    list_variables,
    load_variable,
    rename_variables,
    resolve_checkpoint,
)
from partialsaver.errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NameMapError,
    PartialSaverError,
    UsageError,
    VariableNotFoundError,
)
from partialsaver.plan import Mismatch, Restore, RestorePlan
from partialsaver.saver import SmartSaver
from partialsaver.selection import GLOBAL_STEP, OPTIMIZER_SLOTS, Diagnostic

__version__ = "0.1.0"

# A library logs and lets the application decide where logs go.
logging.getLogger("partialsaver").addHandler(logging.NullHandler())

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
    "list_variables",
    "load_variable",
    "rename_variables",
    "resolve_checkpoint",
]

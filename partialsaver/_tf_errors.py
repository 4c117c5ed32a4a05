"""TensorFlow's errors, as partialsaver's: the line of a TensorFlow error that says what
went wrong, and restore-time read errors as PartialSaverErrors naming the checkpoint."""

from __future__ import annotations

import re

from partialsaver._tf import tf
from partialsaver.errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    PartialSaverError,
)

__all__ = ["meaningful_line", "translate_read_error"]

_ROOT_ERROR = re.compile(r"^\(\d+\) [A-Z_]+: (?P<cause>.+)$")
_ERROR_COUNTS = re.compile(r"^\d+ (root error\(s\) found|successful operations|derived errors ignored)\.?$")
_TRACE_LINES = (
    "Graph execution error",
    "Detected at node",
    "File ",
    "Traceback",
    "[[",
    "Node:",
    "Original stack trace",
    "Errors may have originated",
    "The above exception",
    "Hint:",
)


def meaningful_line(error: BaseException) -> str:
    """The line of a TensorFlow error that says what went wrong.

    TensorFlow 2.x wraps graph errors as "Graph execution error: ... Detected at node ...";
    the cause ("Read less bytes than requested") is the last line that is not a trace.
    Errors from several devices come as "2 root error(s) found. (0) DATA_LOSS: <cause> ...
    0 derived errors ignored."; the first root cause is the one that counts.
    """
    text = str(getattr(error, "message", "") or error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    roots = [match.group("cause") for match in map(_ROOT_ERROR.match, lines) if match]
    useful = roots[:1] or [
        line
        for line in lines
        if not line.startswith(_TRACE_LINES) and not line.endswith(":") and not _ERROR_COUNTS.match(line)
    ]
    chosen = useful[-1] if useful else (lines[0] if lines else type(error).__name__)
    return chosen if len(chosen) <= 300 else chosen[:297] + "..."


def translate_read_error(error: Exception, prefix: str) -> PartialSaverError:
    """TensorFlow's restore-time OpErrors as PartialSaverErrors naming the checkpoint.

    Every key is read before any variable is assigned (see _restore_graph), so a read
    error means that no variable was changed.
    """
    cause = meaningful_line(error)
    if isinstance(error, tf.errors.NotFoundError):
        return CheckpointNotFoundError(
            f"restoring from {prefix!r} failed, a file is missing ({cause}); no variable was changed: "
            "copy all files of the checkpoint"
        )
    if isinstance(error, tf.errors.InvalidArgumentError):
        return CheckpointMismatchError(
            f"restoring from {prefix!r} failed: {cause}; no variable was changed: check the shapes in the plan "
            "(SmartSaver.plan)"
        )
    return CorruptCheckpointError(
        f"restoring from {prefix!r} failed ({type(error).__name__}: {cause}); no variable was changed: "
        "the checkpoint is truncated or corrupt, re-copy or re-save it"
    )

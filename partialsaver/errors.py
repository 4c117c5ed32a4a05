"""The exceptions partialsaver raises.

::

    PartialSaverError
     ├── CheckpointNotFoundError   also FileNotFoundError: no checkpoint at that path
     ├── CorruptCheckpointError    unreadable / truncated / not a TensorFlow checkpoint
     ├── CheckpointMismatchError   .plan: missing, unused, shape or dtype mismatches, guardrails
     ├── VariableNotFoundError     also KeyError: a name the checkpoint does not hold
     ├── NameMapError              also ValueError: a bad filter spec or name map
     └── UsageError                also TypeError: wrong argument types, no session in graph
                                   mode, a variable from another graph, a closed session

Every message names the offending items (sorted, capped) and ends with the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from partialsaver.plan import RestorePlan

__all__ = [
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "NameMapError",
    "PartialSaverError",
    "UsageError",
    "VariableNotFoundError",
    "format_items",
]


def format_items(items: Iterable[object], limit: int = 10) -> str:
    """Render items as a sorted, quoted, capped list: ``'a', 'b' ... and 3 more``."""
    ordered = sorted({str(item) for item in items})
    shown = ", ".join(repr(item) for item in ordered[:limit])
    if len(ordered) > limit:
        shown += f" ... and {len(ordered) - limit} more"
    return shown


class PartialSaverError(Exception):
    """Base class of every error partialsaver raises on purpose."""


class CheckpointNotFoundError(PartialSaverError, FileNotFoundError):
    """No checkpoint at the given path (the message says what was found there)."""

    def __str__(self) -> str:
        # FileNotFoundError would otherwise render its (errno, strerror) pair.
        return str(self.args[0]) if self.args else ""


class CorruptCheckpointError(PartialSaverError):
    """A checkpoint file exists but cannot be read as a TensorFlow checkpoint."""


class CheckpointMismatchError(PartialSaverError):
    """Checkpoint and graph do not line up; ``.plan`` holds the full RestorePlan."""

    def __init__(self, message: str, plan: Optional["RestorePlan"] = None) -> None:
        super().__init__(message)
        self.plan = plan


class VariableNotFoundError(PartialSaverError, KeyError):
    """A name the checkpoint does not hold (the message lists close names)."""

    def __str__(self) -> str:
        # KeyError would otherwise quote the whole message.
        return str(self.args[0]) if self.args else ""


class NameMapError(PartialSaverError, ValueError):
    """A bad filter spec or name map entry."""


class UsageError(PartialSaverError, TypeError):
    """The API was called with the wrong kind of argument or in the wrong state."""

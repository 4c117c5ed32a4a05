"""Error helpers of the bundle format layer.

Every failure that comes from the bytes of a checkpoint is a
:class:`~partialsaver.errors.CorruptCheckpointError` (or its subclass
:class:`UnsupportedCheckpointError` for valid files this layer cannot decode), and
every missing file a :class:`~partialsaver.errors.CheckpointNotFoundError`. The
messages name the file (and key) and end with what to do about it.
"""

from __future__ import annotations

from typing import Optional

from partialsaver.errors import CheckpointNotFoundError, CorruptCheckpointError

__all__ = ["UnsupportedCheckpointError", "corrupt", "not_found", "unsupported"]

# The fix for damaged bytes: the file is not repairable from itself.
RECOPY_HINT = "Re-copy the checkpoint from where it was written, or re-save it."


class UnsupportedCheckpointError(CorruptCheckpointError):
    """A well-formed checkpoint that this pure-Python reader cannot decode.

    For example a big-endian bundle, a compressed index block, a ``variant`` tensor
    decoded to values, or a bfloat16 / float8 tensor read while ``ml_dtypes`` is not
    installed. It subclasses :class:`CorruptCheckpointError` so that a caller that
    handles "cannot read this checkpoint" handles this too.
    """


def _locate(path: str, key: Optional[str]) -> str:
    return f"{path} (key {key!r})" if key is not None else path


def corrupt(path: str, detail: str, key: Optional[str] = None) -> CorruptCheckpointError:
    """Build the error for damaged or malformed checkpoint bytes.

    Args:
        path: The file whose bytes are wrong.
        detail: What is wrong, in a few words.
        key: The checkpoint key being read, if any.

    Returns:
        The error to raise.
    """
    return CorruptCheckpointError(f"Corrupt checkpoint file {_locate(path, key)}: {detail}. {RECOPY_HINT}")


def unsupported(path: str, detail: str, fix: str, key: Optional[str] = None) -> UnsupportedCheckpointError:
    """Build the error for a checkpoint feature this layer does not decode."""
    return UnsupportedCheckpointError(f"Cannot read {_locate(path, key)}: {detail}. {fix}")


def not_found(path: str, detail: str) -> CheckpointNotFoundError:
    """Build the error for a checkpoint file that does not exist."""
    return CheckpointNotFoundError(
        f"Checkpoint file {path} not found: {detail}. Check the checkpoint prefix, and copy all of "
        f"its files (PREFIX.index and every PREFIX.data-*-of-*) together."
    )

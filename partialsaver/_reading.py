"""Offline tools on checkpoint files: resolve, read metadata, list, load (DESIGN section 7).

Nothing here builds a graph or opens a session; metadata comes from the ``.index`` file
only, tensor bytes are read one variable at a time.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from partialsaver._tf import tf, v1
from partialsaver.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UsageError,
    VariableNotFoundError,
    format_items,
)
from partialsaver._suggest import close_names

_logger = logging.getLogger("partialsaver")

# Keys TensorFlow writes for its own bookkeeping, not variables.
INTERNAL_KEYS = frozenset({"_CHECKPOINTABLE_OBJECT_GRAPH"})
# Object-based checkpoints (tf.train.Checkpoint, Keras 2 save_weights) store a variable's
# value under "<object path>/.ATTRIBUTES/VARIABLE_VALUE"; partialsaver shows "<object path>".
OBJECT_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
SUFFIX = re.compile(r"^(?P<prefix>.+?)\.(index|meta|data-\d{5}-of-\d{5})$")
_DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
# TensorFlow's own read errors, translated to CorruptCheckpointError. A corrupt index
# can also surface as a bare IndexError / ValueError from the reader's C++ binding.
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError, UnicodeDecodeError)

__all__ = [
    "CheckpointMetadata",
    "VariableInfo",
    "list_variables",
    "load_variable",
    "read_metadata",
    "resolve_checkpoint",
]


class VariableInfo(NamedTuple):
    """One checkpoint entry. ``dtype`` is the TensorFlow dtype name; ``nbytes`` is None
    for variable-length dtypes (``string``), whose size the index does not record."""

    name: str
    shape: Tuple[int, ...]
    dtype: str
    nbytes: Optional[int]


class CheckpointMetadata(NamedTuple):
    """What a checkpoint's ``.index`` says: the resolved prefix, shapes and dtype names.

    Keys are readable: an object-based checkpoint's ``a/b/.ATTRIBUTES/VARIABLE_VALUE`` is
    ``a/b``; ``raw_keys`` maps such readable keys back to the stored ones.
    """

    prefix: str
    shapes: Dict[str, Tuple[int, ...]]
    dtypes: Dict[str, str]
    raw_keys: Dict[str, str] = {}

    def raw(self, key: str) -> str:
        """The key as stored in the checkpoint."""
        return self.raw_keys.get(key, key)


def _listing(directory: str, limit: int = 8) -> str:
    try:
        entries = sorted(tf.io.gfile.listdir(directory))
    except tf.errors.OpError:
        return "it cannot be listed"
    if not entries:
        return "it is empty"
    return f"it holds {format_items(entries, limit)}"


def _prefixes_in(directory: str) -> List[str]:
    try:
        entries = tf.io.gfile.listdir(directory)
    except tf.errors.OpError:
        return []
    return sorted(posixpath.join(directory, entry[: -len(".index")]) for entry in entries if entry.endswith(".index"))


def _check_data_files(prefix: str) -> None:
    shards = tf.io.gfile.glob(prefix + ".data-?????-of-?????")
    if not shards:
        raise CheckpointNotFoundError(
            f"checkpoint {prefix!r} has its .index but no {os.path.basename(prefix)}.data-* file; "
            "the data file was deleted or not copied: copy all files of the prefix together"
        )
    found = {int(m.group(1)): int(m.group(2)) for m in map(_DATA_SHARD.search, shards) if m}
    total = max(found.values())
    absent = [f"{os.path.basename(prefix)}.data-{i:05d}-of-{total:05d}" for i in range(total) if i not in found]
    if absent:
        raise CheckpointNotFoundError(
            f"checkpoint {prefix!r} is missing {len(absent)} of its {total} data shards: "
            f"{format_items(absent)}; copy all files of the prefix together"
        )


def _from_state_file(directory: str) -> str:
    state_path = posixpath.join(directory, "checkpoint")
    try:
        state = v1.train.get_checkpoint_state(directory)
    except _READ_ERRORS as error:
        raise CorruptCheckpointError(
            f"the checkpoint state file {state_path!r} cannot be parsed ({error}); "
            f"delete it and pass a checkpoint prefix instead"
        ) from error
    if state is None or not state.model_checkpoint_path:
        raise CorruptCheckpointError(
            f"the checkpoint state file {state_path!r} names no checkpoint; pass a prefix instead"
        )
    prefix = state.model_checkpoint_path
    if tf.io.gfile.exists(prefix + ".index"):
        return prefix
    # A directory that was moved keeps absolute paths to its old place in the state file.
    moved = posixpath.join(directory, os.path.basename(prefix))
    if tf.io.gfile.exists(moved + ".index"):
        _logger.info("state file %s points to %s; using %s found next to it", state_path, prefix, moved)
        return moved
    found = _prefixes_in(directory)
    hint = f"pass one of the prefixes found there: {format_items(found)}" if found else "no checkpoint prefix is left there"
    raise CheckpointNotFoundError(
        f"the checkpoint state file {state_path!r} points to {prefix!r}, which does not exist "
        f"(deleted?); {hint}"
    )


def resolve_checkpoint(path: "str | os.PathLike[str]") -> str:
    """The checkpoint prefix for a directory, a prefix, or a file of a checkpoint.

    A directory resolves to its latest checkpoint (its ``checkpoint`` state file); a
    path ending in ``.index``, ``.meta`` or ``.data-00000-of-00001`` to its prefix.

    Raises:
        CheckpointNotFoundError: nothing there; the message says what was found instead.
        UsageError: ``path`` is not a string or path.

    Example:
        >>> resolve_checkpoint("train_dir")                    # doctest: +SKIP
        'train_dir/model.ckpt-1000'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"a checkpoint path must be a str or os.PathLike, not {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise CheckpointNotFoundError("the checkpoint path is empty; pass a directory or a checkpoint prefix")
    match = SUFFIX.match(path)  # "x.index" / "x.meta" / "x.data-00000-of-00001" name prefix "x"
    prefix = match.group("prefix") if match else path
    # The index first: on file systems without real directories (ram://, object stores)
    # a prefix is also a "directory" of the files that start with it.
    if tf.io.gfile.exists(prefix + ".index"):
        _check_data_files(prefix)
        return prefix
    if posixpath.basename(path) == "checkpoint" and tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        path = posixpath.dirname(path) or "."  # the state file itself: its directory's latest
    if tf.io.gfile.isdir(path):
        prefix = _from_directory(path)
        _check_data_files(prefix)
        return prefix
    if match is None and tf.io.gfile.exists(path):
        # A single file without an index: a V1 checkpoint, or not a checkpoint.
        return path
    parent = os.path.dirname(prefix) or "."
    if not tf.io.gfile.isdir(parent):
        where = f"the directory {parent!r} does not exist"
    else:
        near = _prefixes_in(parent)
        where = f"prefixes in {parent!r}: {format_items(near)}" if near else f"in {parent!r} {_listing(parent)}"
    raise CheckpointNotFoundError(
        f"no checkpoint at {path!r} ({prefix + '.index'!r} does not exist); {where}. "
        "Pass a checkpoint directory or prefix (the path without .index / .data-*)"
    )


def _from_directory(path: str) -> str:
    if tf.io.gfile.exists(posixpath.join(path, "checkpoint")):
        return _from_state_file(path)
    found = _prefixes_in(path)
    if found:
        raise CheckpointNotFoundError(
            f"directory {path!r} has no 'checkpoint' state file, so its latest checkpoint "
            f"is unknown; pass one of the prefixes found there: {format_items(found)}"
        )
    raise CheckpointNotFoundError(
        f"directory {path!r} holds no checkpoint ({_listing(path)}); "
        "pass the directory a Saver wrote to, or a checkpoint prefix"
    )


def readable_key(key: str) -> str:
    """``model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE`` -> ``model/dense/kernel``."""
    return key[: -len(OBJECT_SUFFIX)] if key.endswith(OBJECT_SUFFIX) else key


class CheckpointReader:
    """TensorFlow's checkpoint reader with its errors translated to PartialSaverErrors.

    Keys may be given readable (see readable_key) once metadata() has been read.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.raw_keys: Dict[str, str] = {}
        try:
            self._reader = v1.train.NewCheckpointReader(prefix)
        except _READ_ERRORS as error:
            raise CorruptCheckpointError(
                f"checkpoint {prefix!r} cannot be read ({type(error).__name__}: {meaningful_line(error)}); "
                "it is truncated, corrupt or not a TensorFlow checkpoint: re-copy or re-save it"
            ) from error

    def metadata(self) -> Tuple[Dict[str, Tuple[int, ...]], Dict[str, str], Dict[str, str]]:
        """(shapes, dtype names, {readable key: stored key}) keyed by readable keys."""
        try:
            shapes = self._reader.get_variable_to_shape_map()
            dtypes = self._reader.get_variable_to_dtype_map()
        except _READ_ERRORS as error:
            raise CorruptCheckpointError(f"checkpoint {self.prefix!r} has an unreadable index ({error})") from error
        readable = {key: readable_key(key) for key in shapes if key not in INTERNAL_KEYS}
        if len(set(readable.values())) != len(readable):  # never seen in practice: keep stored keys
            readable = {key: key for key in readable}
        self.raw_keys = {short: key for key, short in readable.items() if short != key}
        return (
            {short: tuple(shapes[key]) for key, short in readable.items()},
            {short: dtypes[key].name for key, short in readable.items()},
            dict(self.raw_keys),
        )

    def has(self, key: str) -> bool:
        return key not in INTERNAL_KEYS and self._reader.has_tensor(self.raw_keys.get(key, key))

    def tensor(self, key: str) -> np.ndarray:
        """The value of ``key`` (readable or stored form)."""
        try:
            return self._reader.get_tensor(self.raw_keys.get(key, key))
        except _READ_ERRORS as error:
            raise CorruptCheckpointError(
                f"variable {key!r} of checkpoint {self.prefix!r} cannot be read ({type(error).__name__}: "
                f"{meaningful_line(error)}); its data file is truncated or corrupt: re-copy or re-save the checkpoint"
            ) from error


_ROOT_ERROR = re.compile(r"^\(\d+\) [A-Z_]+: (?P<cause>.+)$")
_ERROR_COUNTS = re.compile(r"^\d+ (root error\(s\) found|successful operations|derived errors ignored)\.?$")


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
        line for line in lines
        if not line.startswith(("Graph execution error", "Detected at node", "File ", "Traceback", "[[", "Node:",
                                "Original stack trace", "Errors may have originated", "The above exception",
                                "Hint:"))
        and not line.endswith(":")
        and not _ERROR_COUNTS.match(line)
    ]
    chosen = useful[-1] if useful else (lines[0] if lines else type(error).__name__)
    return chosen if len(chosen) <= 300 else chosen[:297] + "..."


def open_reader(path: "str | os.PathLike[str]") -> CheckpointReader:
    """A reader for the checkpoint at ``path`` (resolved first)."""
    return CheckpointReader(resolve_checkpoint(path))


def read_metadata(path: "str | os.PathLike[str]") -> CheckpointMetadata:
    """Shapes and dtype names of every variable, from the checkpoint's index only.

    Raises:
        CheckpointNotFoundError: see resolve_checkpoint.
        CorruptCheckpointError: the index cannot be read.
    """
    reader = open_reader(path)
    shapes, dtypes, raw_keys = reader.metadata()
    return CheckpointMetadata(reader.prefix, shapes, dtypes, raw_keys)


def _nbytes(shape: Tuple[int, ...], dtype: str) -> Optional[int]:
    as_dtype = tf.as_dtype(dtype)
    if as_dtype in (tf.string, tf.variant, tf.resource):
        return None
    return int(np.prod(shape, dtype=np.int64)) * as_dtype.size


def list_variables(path: "str | os.PathLike[str]") -> List[VariableInfo]:
    """Every variable in a checkpoint as VariableInfo(name, shape, dtype, nbytes), sorted.

    Example:
        >>> for info in list_variables("train_dir"):              # doctest: +SKIP
        ...     print(info.name, info.shape, info.dtype)
    """
    metadata = read_metadata(path)
    return [
        VariableInfo(key, metadata.shapes[key], metadata.dtypes[key], _nbytes(metadata.shapes[key], metadata.dtypes[key]))
        for key in sorted(metadata.shapes)
    ]


def load_variable(path: "str | os.PathLike[str]", name: str) -> np.ndarray:
    """One variable's value as a numpy array, reading only that tensor's bytes.

    Raises:
        VariableNotFoundError: ``name`` is not in the checkpoint (close names suggested).
        CorruptCheckpointError: the tensor bytes cannot be read.
    """
    if not isinstance(name, str):
        raise UsageError(f"name must be a str, not {type(name).__name__}")
    reader = open_reader(path)
    keys = list(reader.metadata()[0])
    if not reader.has(name):
        near = close_names(name, keys)
        hint = f"did you mean {format_items(near, 5)}?" if near else f"it holds {len(keys)} variables (list_variables() or `partialsaver list` shows them)"
        raise VariableNotFoundError(f"checkpoint {reader.prefix!r} has no variable {name!r}; {hint}")
    return reader.tensor(name)

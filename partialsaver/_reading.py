"""Reading checkpoints without a graph: metadata from the ``.index``, tensors one at a time.

Everything here runs on partialsaver's own reader of TensorFlow's format (format/), so it
works where TensorFlow is not installed, and every tensor's crc32c is checked.
"""

from __future__ import annotations

import os
import types
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from partialsaver._files import filesystem_for
from partialsaver._resolve import resolve_checkpoint
from partialsaver._suggest import close_names
from partialsaver.errors import UsageError, VariableNotFoundError, format_items
from partialsaver.format import BundleReader
from partialsaver.format.dtypes import dtype_enum, lookup
from partialsaver.selection import strip_output_suffix

# Keys TensorFlow writes for its own bookkeeping, not variables.
INTERNAL_KEYS = frozenset({"_CHECKPOINTABLE_OBJECT_GRAPH"})
# Object-based checkpoints (tf.train.Checkpoint, Keras 2 save_weights) store a variable's
# value under "<object path>/.ATTRIBUTES/VARIABLE_VALUE"; partialsaver shows "<object path>".
OBJECT_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

__all__ = [
    "CheckpointMetadata",
    "CheckpointReader",
    "VariableInfo",
    "list_variables",
    "load_variable",
    "open_reader",
    "read_metadata",
    "readable_key",
]


class VariableInfo(NamedTuple):
    """One checkpoint entry. ``dtype`` is the TensorFlow dtype name; ``nbytes`` is None
    for variable-length dtypes (``string``), whose size the index does not record."""

    name: str
    shape: Tuple[int, ...]
    dtype: str
    nbytes: Optional[int]


_NO_RAW_KEYS: Mapping[str, str] = types.MappingProxyType({})


class CheckpointMetadata(NamedTuple):
    """What a checkpoint's ``.index`` says: the resolved prefix, shapes and dtype names.

    Keys are readable: an object-based checkpoint's ``a/b/.ATTRIBUTES/VARIABLE_VALUE`` is
    ``a/b``; ``raw_keys`` maps such readable keys back to the stored ones.
    """

    prefix: str
    shapes: Dict[str, Tuple[int, ...]]
    dtypes: Dict[str, str]
    raw_keys: Mapping[str, str] = _NO_RAW_KEYS

    def raw(self, key: str) -> str:
        """The key as stored in the checkpoint."""
        return self.raw_keys.get(key, key)


def readable_key(key: str) -> str:
    """``model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE`` -> ``model/dense/kernel``."""
    return key[: -len(OBJECT_SUFFIX)] if key.endswith(OBJECT_SUFFIX) else key


class CheckpointReader:
    """A checkpoint opened for reading, its keys readable (see readable_key).

    One reader per thread. Damage is a CorruptCheckpointError naming the file.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.bundle = BundleReader(prefix, filesystem_for(prefix))
        stored = [key for key in self.bundle.keys() if key not in INTERNAL_KEYS]  # noqa: SIM118 - a reader, no dict
        readable = {key: readable_key(key) for key in stored}
        if len(set(readable.values())) != len(readable):  # never seen in practice: keep stored keys
            readable = {key: key for key in stored}
        self.raw_keys: Dict[str, str] = {short: key for key, short in readable.items() if short != key}
        self.keys: List[str] = sorted(readable.values())

    def metadata(self) -> CheckpointMetadata:
        shapes = {key: self.bundle.shape(self.raw(key)) for key in self.keys}
        dtypes = {key: self.bundle.dtype_name(self.raw(key)) for key in self.keys}
        return CheckpointMetadata(self.prefix, shapes, dtypes, types.MappingProxyType(dict(self.raw_keys)))

    def raw(self, key: str) -> str:
        return self.raw_keys.get(key, key)

    def has(self, key: str) -> bool:
        return key not in INTERNAL_KEYS and self.raw(key) in self.bundle

    def nbytes(self, key: str) -> Optional[int]:
        return self.bundle.nbytes(self.raw(key))

    def tensor(self, key: str) -> np.ndarray:
        """The value of ``key`` (readable or stored form), its crc32c checked."""
        return self.bundle.read(self.raw(key))

    def close(self) -> None:
        self.bundle.close()

    def __enter__(self) -> "CheckpointReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_reader(path: "str | os.PathLike[str]") -> CheckpointReader:
    """A reader for the checkpoint at ``path`` (resolved first)."""
    return CheckpointReader(resolve_checkpoint(path))


def read_metadata(path: "str | os.PathLike[str]") -> CheckpointMetadata:
    """Shapes and dtype names of every variable, from the checkpoint's index only.

    Raises:
        CheckpointNotFoundError: see resolve_checkpoint.
        CorruptCheckpointError: the index cannot be read.
    """
    with open_reader(path) as reader:
        return reader.metadata()


def nbytes(shape: Tuple[int, ...], dtype: str) -> Optional[int]:
    """Bytes of a tensor of this shape and dtype name; None where the index cannot say (strings)."""
    itemsize = lookup(dtype_enum(dtype)).itemsize
    return None if itemsize is None else int(np.prod(shape, dtype=np.int64)) * itemsize


def list_variables(path: "str | os.PathLike[str]") -> List[VariableInfo]:
    """Every variable in a checkpoint as VariableInfo(name, shape, dtype, nbytes), sorted.

    Example:
        >>> for info in list_variables("train_dir"):              # doctest: +SKIP
        ...     print(info.name, info.shape, info.dtype)
    """
    with open_reader(path) as reader:
        return [
            VariableInfo(
                key, reader.bundle.shape(reader.raw(key)), reader.bundle.dtype_name(reader.raw(key)), reader.nbytes(key)
            )
            for key in reader.keys
        ]


def load_variable(path: "str | os.PathLike[str]", name: str) -> np.ndarray:
    """One variable's value as a numpy array, reading only that tensor's bytes (crc checked).

    A name written as a tensor name (``"w:0"``) finds ``"w"``, and the other way round.

    Raises:
        VariableNotFoundError: ``name`` is not in the checkpoint (close names suggested).
        CorruptCheckpointError: the tensor bytes cannot be read.
    """
    if not isinstance(name, str):
        raise UsageError(f"name must be a str, not {type(name).__name__}")
    with open_reader(path) as reader:
        for candidate in (name, strip_output_suffix(name), name + ":0"):
            if reader.has(candidate):
                return reader.tensor(candidate)
        near = close_names(name, reader.keys)
        hint = (
            f"did you mean {format_items(near, 5)}?"
            if near
            else f"it holds {len(reader.keys)} variables (list_variables() or `partialsaver list` shows them)"
        )
        raise VariableNotFoundError(f"checkpoint {reader.prefix!r} has no variable {name!r}; {hint}")

"""Writing a checkpoint at a prefix so that a reader sees the old checkpoint or the new one.

Data files first, under names no existing index points at (another shard count when the
prefix already holds a checkpoint with as many shards); then the index, through a temporary
and an atomic replace where the file system has one, written directly (last) elsewhere; then
the data files no index names any more are removed.
"""

from __future__ import annotations

import contextlib
import logging
from typing import List

from partialsaver._files import has_atomic_replace
from partialsaver._temporaries import temp_path
from partialsaver.format.fs import FileSystem
from partialsaver.format.index import read_index
from partialsaver.format.naming import data_paths, index_path

_logger = logging.getLogger("partialsaver")

__all__ = ["OutputBundle", "remove_if_there"]


def remove_if_there(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.remove(path)


class OutputBundle:
    """The checkpoint being written at ``prefix``: its data files, then its index."""

    def __init__(self, fs: FileSystem, prefix: str) -> None:
        self.fs, self.prefix = fs, prefix
        self.index = index_path(prefix)
        self.old_shards = read_index(prefix, fs)[0].num_shards if fs.exists(self.index) else None
        self.atomic = has_atomic_replace(fs, self.index)
        # Written under a temporary name and switched atomically where the file system can.
        self.index_target = temp_path(self.index) if self.atomic else self.index
        self.written: List[str] = []

    def shard_count(self, wanted: int) -> int:
        """``wanted``, or one more when that would reuse the file names the current index points at."""
        return wanted if self.old_shards != wanted else wanted + 1

    def fresh(self, path: str) -> str:
        """A data path to create: whatever is there goes first, so that nothing is written
        through a hard link into another checkpoint's file."""
        remove_if_there(self.fs, path)
        self.written.append(path)
        return path

    def publish(self) -> None:
        """Switch to the new index, then remove the data files no index points at any more."""
        if self.atomic:
            self.fs.replace(self.index_target, self.index)
        new_shards = read_index(self.prefix, self.fs)[0].num_shards
        keep = set(data_paths(self.prefix, new_shards))
        for stale in self.fs.glob(self.prefix + ".data-?????-of-?????"):
            if stale not in keep:
                remove_if_there(self.fs, stale)
        if self.old_shards is not None and self.fs.exists(self.prefix + ".meta"):
            remove_if_there(self.fs, self.prefix + ".meta")
            _logger.warning("removed %s.meta: it described the graph of the checkpoint that was replaced", self.prefix)

    def discard(self) -> None:
        """Remove what was written (before publish): the destination is as it was."""
        for path in self.written + ([self.index_target] if self.atomic else []):
            remove_if_there(self.fs, path)

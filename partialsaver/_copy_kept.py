"""A rename that drops keys: the kept tensors' byte ranges copied into a new data file.

Nothing is decoded. Each kept tensor's crc32c is checked in a second thread while the main
one copies (in the kernel between local files, in chunks elsewhere; both run without
Python's lock); the index is written only once every check passed.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from partialsaver._files import copy_bytes
from partialsaver._output import OutputBundle
from partialsaver._reading import CheckpointReader
from partialsaver.format import BundleReader, Entry, Header, encode_index, rename_entries
from partialsaver.format.fs import FileSystem
from partialsaver.format.index import key_bytes
from partialsaver.format.naming import data_path, data_paths

if TYPE_CHECKING:  # pragma: no cover
    from partialsaver._rename import RenamePlan

__all__ = ["copy_kept", "entries_of"]


def entries_of(bundle: BundleReader, stored: str) -> Dict[bytes, Entry]:
    """A variable's entry and, for a partitioned one, its slices' entries, by table key."""
    entry = bundle.entry(stored)
    own = {key_bytes(stored): entry}
    if entry.slices:
        own.update({slice_key: slice_entry for slice_key, _, slice_entry in bundle.slice_entries(stored)})
    return own


def _copy_range(source: BundleReader, entry: Entry, target: Any, target_fs: FileSystem, chunk: int) -> None:
    """Append ``entry``'s stored bytes to the open file ``target``."""
    path = source.data_path(entry.shard_id)
    copy_bytes(source.fs, path, entry.offset, entry.offset + entry.size, target, target_fs, chunk)


def copy_kept(
    reader: CheckpointReader,
    plan: "RenamePlan",
    output: OutputBundle,
    chunk: int,
    progress: Optional[Callable[[int, int], None]],
) -> None:
    """Keys dropped: the kept entries' bytes copied into a new data file, none decoded.

    Every kept tensor is checked against its crc32c while the byte ranges are copied (in the
    kernel between local files; the check in a second thread, both without Python's lock), and
    the index is written only once every check passed: a damaged source raises before ``dst``
    has an index, and the caller removes the data written so far. A key written under several
    names is copied once.
    """
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="partialsaver-verify") as pool:
        checked = pool.submit(_verify_kept, reader, plan, chunk, stop)
        try:
            entries = _copy_entries(reader, plan, output, chunk, progress, checked)
        except BaseException:
            stop.set()
            damage = checked.exception()
            if damage is not None:
                raise damage from None  # the damaged source is the cause, not the copy that stumbled on it
            raise
        checked.result()
    num_shards = output.shard_count(1)
    for path in data_paths(output.prefix, num_shards)[1:]:
        with output.fs.open(output.fresh(path), "wb"):
            pass
    with output.fs.open(output.index_target, "wb") as index:
        index.write(encode_index(Header(num_shards=num_shards), entries))


def _verify_kept(reader: CheckpointReader, plan: "RenamePlan", chunk: int, stop: threading.Event) -> None:
    for key in plan.renames:
        if stop.is_set():
            return
        reader.bundle.verify(reader.raw(key), chunk)


def _copy_entries(
    reader: CheckpointReader,
    plan: "RenamePlan",
    output: OutputBundle,
    chunk: int,
    progress: Optional[Callable[[int, int], None]],
    checked: "Future[None]",
) -> Dict[bytes, Entry]:
    """Copy the kept entries into the first data file; their new entries. Stops early when
    the check found damage."""
    bundle = reader.bundle
    path = output.fresh(data_path(output.prefix, 0, output.shard_count(1)))
    entries: Dict[bytes, Entry] = {}
    total, done = sum(plan.sizes.values()), 0
    with output.fs.open(path, "wb") as target:
        offset = 0
        for key, targets in plan.renames.items():
            if checked.done():
                checked.result()  # raises the damage found
            stored = reader.raw(key)
            placed: Dict[bytes, Entry] = {}
            for table_key, entry in entries_of(bundle, stored).items():
                if entry.slices:  # a partitioned variable's own entry holds no bytes
                    placed[table_key] = entry
                    continue
                _copy_range(bundle, entry, target, output.fs, chunk)
                placed[table_key] = entry.replace(shard_id=0, offset=offset)
                offset += entry.size
            for name in targets:
                entries.update(rename_entries(placed, {stored: name}))
            done += plan.sizes[key]
            if progress is not None:
                progress(done, total)
    return entries

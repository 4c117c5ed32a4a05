"""rename_variables: a renamed (and filtered) copy of a checkpoint, in O(index) where possible.

- Only names change: the new index points at the source's data files, which ``dst`` gets as
  hard links (a copy where links are impossible: another file system, an object store); in
  place, only the index is replaced. No tensor byte is read.
- Keys are dropped (``exclude=OPTIMIZER_SLOTS``): the kept entries' byte ranges are copied,
  each checked against its crc32c meanwhile (the index waits for every check), none decoded.

Data files first, the index last, through an atomic replace where the file system has one:
until the new index lands, ``dst`` is absent or still the old checkpoint. New data files
never overwrite the ones an existing index points at: they get another shard count in their
names (``-of-00002`` next to ``-of-00001``), and the old ones go once the new index is in place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

from partialsaver._copy_kept import copy_kept, entries_of
from partialsaver._files import filesystem_for, is_url, join, parent_of
from partialsaver._output import OutputBundle
from partialsaver._reading import CheckpointReader, open_reader
from partialsaver._resolve import FILE_SUFFIX, record_latest
from partialsaver._temporaries import remove_stale_temporaries
from partialsaver.errors import CorruptCheckpointError, NameMapError, PartialSaverError, UsageError
from partialsaver.format import BundleReader, Entry, encode_index, rename_entries
from partialsaver.format.fs import FileSystem
from partialsaver.format.naming import data_path
from partialsaver.mapping import NameMapArg, map_names
from partialsaver.selection import Diagnostic, SpecArg

_logger = logging.getLogger("partialsaver")

DEFAULT_MEMORY_BUDGET = 256 * 2**20
_COPY_CHUNK = 8 << 20

__all__ = ["DEFAULT_MEMORY_BUDGET", "RenamePlan", "destination_prefix", "plan_rename", "rename_variables"]


class RenamePlan(NamedTuple):
    """What rename_variables would write: ``renames`` maps each written source key (readable
    form) to its new name(s); ``dropped`` are the keys the filters leave out; ``sizes`` the
    stored bytes of each written key."""

    source: str
    renames: Dict[str, Tuple[str, ...]]
    dropped: Tuple[str, ...]
    diagnostics: Tuple[Diagnostic, ...]
    sizes: Dict[str, int]
    raw_keys: Dict[str, str]

    @property
    def changes_anything(self) -> bool:
        return bool(self.dropped) or any(targets != (key,) for key, targets in self.renames.items())


def _stored_bytes(reader: CheckpointReader, key: str) -> int:
    entry = reader.bundle.entry(reader.raw(key))
    if not entry.slices:
        return entry.size
    return sum(slice_entry.size for _, _, slice_entry in reader.bundle.slice_entries(reader.raw(key)))


def plan_rename(
    src: Any, name_map: NameMapArg = None, *, include: SpecArg = None, exclude: SpecArg = None
) -> RenamePlan:
    """The renames and drops rename_variables would do, from the source's index only.

    Raises:
        NameMapError: a bad map, or two keys that would be written under one name.
        CheckpointNotFoundError, CorruptCheckpointError: ``src`` cannot be read.
    """
    with open_reader(src) as reader:
        mapped = map_names(reader.keys, name_map, include, exclude, "checkpoint key")
        sizes = {key: _stored_bytes(reader, key) for key in mapped.renames}
        return RenamePlan(
            reader.prefix, mapped.renames, mapped.dropped, mapped.diagnostics, sizes, dict(reader.raw_keys)
        )


def destination_prefix(dst: Any, source: str) -> str:
    """The prefix ``dst`` names: an existing directory (or a path ending in ``/``) gets the
    source's file name; ``x.index`` / ``x.data-*`` / ``x.meta`` name ``x``."""
    if not isinstance(dst, (str, os.PathLike)):
        raise UsageError(f"dst must be a str or os.PathLike, not {type(dst).__name__}")
    dst = os.fspath(dst)
    if not dst:
        raise UsageError("dst is empty; pass the prefix to write, e.g. out/model.ckpt")
    fs = filesystem_for(dst)
    if dst.endswith(("/", os.sep)) or (not fs.exists(dst + ".index") and fs.isdir(dst)):
        dst = join(dst.rstrip("/" + os.sep) or "/", os.path.basename(source))
    match = FILE_SUFFIX.match(dst)
    return match.group("prefix") if match else dst


def _same_prefix(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)


def _check_destination(fs: FileSystem, destination: str, source: str, overwrite: bool) -> None:
    if _same_prefix(destination, source) and not overwrite:
        raise UsageError(
            f"dst {destination!r} is the source checkpoint; pass another dst, or overwrite=True to replace it in place"
        )
    exists = fs.exists(destination + ".index") or bool(fs.glob(destination + ".data-*"))
    if exists and not overwrite:
        raise UsageError(f"dst {destination!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    parent = parent_of(destination)
    try:
        fs.makedirs(parent)
    except PermissionError as error:
        raise UsageError(f"cannot create the directory {parent!r} for dst: permission denied") from error
    if not is_url(destination) and not os.access(parent, os.W_OK):
        raise UsageError(f"the directory {parent!r} for dst is not writable; pass a dst in a writable directory")


def _renamed_entries(reader: CheckpointReader, plan: RenamePlan) -> Dict[bytes, Entry]:
    """The output index: each kept key's entries under each of its new names, stored bytes
    unchanged (slice keys re-encoded for the new name). An object-based checkpoint's object
    graph is not carried over: it names the old keys (the output restores by name)."""
    out: Dict[bytes, Entry] = {}
    for key, targets in plan.renames.items():
        stored = reader.raw(key)
        own = entries_of(reader.bundle, stored)
        for name in targets:
            out.update(rename_entries(own, {stored: name}))
    return dict(sorted(out.items()))


def _copy_file(src_fs: FileSystem, src: str, dst_fs: FileSystem, dst: str) -> None:
    copy = getattr(dst_fs, "copy", None)
    if src_fs is dst_fs and copy is not None:
        copy(src, dst)  # server-side on object stores
        return
    with src_fs.open(src, "rb") as source, dst_fs.open(dst, "wb") as target:
        for chunk in iter(lambda: source.read(_COPY_CHUNK), b""):
            target.write(chunk)


def _check_data_sizes(source: BundleReader) -> None:
    """Every entry lies inside its data file: a truncated source is refused before anything
    is linked (the bytes themselves are not read; see rename_variables)."""
    ends: Dict[int, Tuple[int, str]] = {}
    for table_key, entry in source.raw_items():
        end = entry.offset + entry.size
        if entry.size and end > ends.get(entry.shard_id, (0, ""))[0]:
            ends[entry.shard_id] = (end, table_key.decode("utf-8", "replace"))
    for shard, (end, key) in ends.items():
        path = source.data_path(shard)
        size = source.fs.size(path) if source.fs.exists(path) else 0
        if size < end:
            raise CorruptCheckpointError(
                f"Corrupt checkpoint file {path}: {key!r} ends at byte {end}, the file has {size} bytes "
                "(truncated?). Re-copy the checkpoint from where it was written, or re-save it."
            )


def _link_data(source: BundleReader, output: OutputBundle, num_shards: int) -> None:
    """The output's data files as hard links to (or copies of) the source's; extra ones empty."""
    _check_data_sizes(source)
    for shard in range(num_shards):
        path = output.fresh(data_path(output.prefix, shard, num_shards))
        if shard >= source.num_shards:
            with output.fs.open(path, "wb"):
                pass
        elif not (source.fs is output.fs and output.fs.link(source.data_path(shard), path)):
            _copy_file(source.fs, source.data_path(shard), output.fs, path)


def _rename_in_o_index(reader: CheckpointReader, plan: RenamePlan, output: OutputBundle, in_place: bool) -> None:
    """Nothing dropped: a new index over the same bytes (in place: the same files)."""
    bundle = reader.bundle
    entries = _renamed_entries(reader, plan)
    num_shards = bundle.num_shards if in_place else output.shard_count(bundle.num_shards)
    if not in_place:
        _link_data(bundle, output, num_shards)
    header = bundle.header
    if num_shards != header.num_shards:
        header = dataclasses.replace(header, num_shards=num_shards, raw=b"")  # raw re-encoded
    with output.fs.open(output.index_target, "wb") as file:
        file.write(encode_index(header, entries))


def _check_budget(memory_budget: Any) -> None:
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget <= 0:
        raise UsageError(f"memory_budget must be a positive number of bytes, not {memory_budget!r}")


def rename_variables(
    src: Any,
    dst: Any,
    name_map: NameMapArg = None,
    *,
    include: SpecArg = None,
    exclude: SpecArg = None,
    overwrite: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Union[str, Tuple[str, ...]]]:
    """Write a copy of checkpoint ``src`` to prefix ``dst`` with keys renamed and filtered.

    ``name_map`` takes the rules of SmartSaver (exact, scope, regex, callable); include /
    exclude specs apply to the source keys (callables receive the key) and keys they leave
    out are not written, e.g. ``exclude=OPTIMIZER_SLOTS`` strips optimizer state. Values,
    dtypes and shapes come out bit-identical, partitioned variables keep their slices.

    A rename that only renames rewrites the index and hard-links the data files (copies
    them where links are impossible); in place (``dst`` is ``src``, ``overwrite=True``) it
    replaces the index alone. A rename that drops keys copies the kept bytes, each tensor's
    crc32c checked. ``src`` is never modified (but in place); ``dst`` is complete or
    absent, or still the old checkpoint, at every instant, a kill included. ``dst`` may be an
    existing directory (the source's file name is used); its parent is created; its
    directory's ``checkpoint`` state file names it. ``.meta`` files are not copied.

    Args:
        memory_budget: at most this many bytes of a tensor are held at once (copies go in
            chunks of at most 8 MiB).
        progress: called as ``progress(bytes_done, bytes_total)`` as keys are copied.

    Returns:
        {source key: new name} for every key written (a tuple for list values).

    Raises:
        NameMapError: bad map, collisions, or a map that changes nothing.
        UsageError: dst exists (pass overwrite=True), is src, or cannot be written.
        CheckpointNotFoundError, CorruptCheckpointError: ``src`` cannot be read.

    Example:
        >>> rename_variables("old_dir", "new/model.ckpt",
        ...                  {re.compile(r"^(.*)/weights$"): r"\\1/kernel"})  # doctest: +SKIP
    """
    _check_budget(memory_budget)
    plan = plan_rename(src, name_map, include=include, exclude=exclude)
    destination = destination_prefix(dst, plan.source)
    in_place = _same_prefix(destination, plan.source)
    if not plan.renames:
        raise NameMapError(f"the filters leave no key of {plan.source!r} to write; loosen include / exclude")
    if not plan.changes_anything and not in_place:
        unmatched = [d.subject for d in plan.diagnostics]
        raise NameMapError(
            f"name_map renames nothing in {plan.source!r} and no key is filtered out, so dst would be a plain copy"
            + (f"; these matched no key: {', '.join(unmatched[:5])}" if unmatched else "")
            + "; check the map against `partialsaver list`"
        )
    fs = filesystem_for(destination)
    _check_destination(fs, destination, plan.source, overwrite)
    for diagnostic in plan.diagnostics:
        _logger.warning("%s", diagnostic.message)
    remove_stale_temporaries(fs, parent_of(destination), os.path.basename(destination))
    output = OutputBundle(fs, destination)
    try:
        with CheckpointReader(plan.source) as reader:
            if plan.dropped:
                copy_kept(reader, plan, output, min(memory_budget, _COPY_CHUNK), progress)
            else:
                _rename_in_o_index(reader, plan, output, in_place)
                if progress is not None:
                    progress(sum(plan.sizes.values()), sum(plan.sizes.values()))
    except PartialSaverError:
        output.discard()
        raise
    except OSError as error:
        output.discard()
        raise PartialSaverError(
            f"writing {destination!r} failed ({type(error).__name__}: {error}); check free disk space and "
            f"permissions: {'the checkpoint there is unchanged' if output.old_shards else 'nothing was written to dst'}"
        ) from error
    output.publish()
    record_latest(fs, destination)
    return {key: targets[0] if len(targets) == 1 else targets for key, targets in plan.renames.items()}

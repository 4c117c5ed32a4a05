"""rename_variables: a renamed copy of a checkpoint, streamed under a memory budget.

Tensors go from the source bundle to the destination in batches through TensorFlow's own
RestoreV2 -> SaveV2 kernels (bytes never pass through Python or a graph constant), each
batch into a shard of a temporary checkpoint next to ``dst``; MergeV2Checkpoints then
joins the shards' indexes without copying tensor bytes, and the files are moved into
place data first, index last. Until the index lands, ``dst`` does not exist.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import socket
import uuid
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from partialsaver._reading import SUFFIX as _FILE_SUFFIX
from partialsaver._reading import meaningful_line, read_metadata
from partialsaver._tf import tf, v1
from partialsaver.errors import CorruptCheckpointError, NameMapError, PartialSaverError, UsageError, format_items
from partialsaver.mapping import NameMap, NameMapArg
from partialsaver.selection import Diagnostic, SpecArg, normalize_specs, select

_logger = logging.getLogger("partialsaver")

DEFAULT_MEMORY_BUDGET = 256 * 2**20
TEMP_PREFIX = ".partialsaver-tmp-"
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
# The index does not record a string tensor's byte size; assume this much per element.
_STRING_ELEMENT_BYTES = 64

__all__ = ["DEFAULT_MEMORY_BUDGET", "RenamePlan", "plan_rename", "rename_variables"]


class RenamePlan(NamedTuple):
    """What rename_variables would write: ``renames`` maps each written source key to its
    new name(s); ``dropped`` are the keys the filters leave out."""

    source: str
    renames: Dict[str, Tuple[str, ...]]
    dropped: Tuple[str, ...]
    diagnostics: Tuple[Diagnostic, ...]
    sizes: Dict[str, int]
    dtypes: Dict[str, str]
    raw_keys: Dict[str, str]

    @property
    def changes_anything(self) -> bool:
        return bool(self.dropped) or any(targets != (key,) for key, targets in self.renames.items())


def plan_rename(src: Any, name_map: NameMapArg = None, *, include: SpecArg = None, exclude: SpecArg = None) -> RenamePlan:
    """The renames and drops rename_variables would do, from the source's index only.

    Raises:
        NameMapError: a bad map, or two keys that would be written under one name.
        CheckpointNotFoundError, CorruptCheckpointError: ``src`` cannot be read.
    """
    compiled = NameMap(name_map)
    include_specs, exclude_specs = normalize_specs(include, "include"), normalize_specs(exclude, "exclude")
    metadata = read_metadata(src)
    keys = sorted(metadata.shapes)
    selection = select(keys, include_specs, exclude_specs, noun="checkpoint key")
    renames: Dict[str, Tuple[str, ...]] = {}
    sources_of: Dict[str, List[str]] = {}
    used_rules = set()
    for key in selection.selected:
        targets, rule = compiled.apply(key)
        if rule is not None:
            used_rules.add(rule.index)
        renames[key] = tuple(dict.fromkeys(targets))
        for target in renames[key]:
            sources_of.setdefault(target, []).append(key)
    collisions = [f"{target!r} <- {sources!r}" for target, sources in sorted(sources_of.items()) if len(sources) > 1]
    if collisions:
        raise NameMapError(
            f"the renamed checkpoint would hold {len(collisions)} name(s) written from several keys: "
            f"{format_items(collisions)}; make the map more specific or exclude one of each pair"
        )
    diagnostics = selection.diagnostics + tuple(
        Diagnostic("unmatched_rule", rule.describe(), f"name_map {rule.describe()} matched no checkpoint key")
        for rule in compiled.rules
        if rule.index not in used_rules
    )
    sizes = {key: _size(metadata.shapes[key], metadata.dtypes[key]) for key in renames}
    dropped = tuple(key for key in keys if key not in renames)
    return RenamePlan(metadata.prefix, renames, dropped, diagnostics, sizes, metadata.dtypes, metadata.raw_keys)


def _size(shape: Sequence[int], dtype: str) -> int:
    elements = int(np.prod(shape, dtype=np.int64))
    as_dtype = tf.as_dtype(dtype)
    return elements * (_STRING_ELEMENT_BYTES if as_dtype == tf.string else max(as_dtype.size, 1))


def _batches(keys: Sequence[str], sizes: Dict[str, int], budget: int) -> List[List[str]]:
    """Consecutive keys (storage order) in batches of at most ``budget`` bytes; a tensor
    larger than the budget is a batch of its own."""
    batches: List[List[str]] = []
    current: List[str] = []
    used = 0
    for key in keys:
        if current and used + sizes[key] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(key)
        used += sizes[key]
    if current:
        batches.append(current)
    return batches


def _destination(dst: Any, source: str, overwrite: bool) -> str:
    if not isinstance(dst, (str, os.PathLike)):
        raise UsageError(f"dst must be a str or os.PathLike, not {type(dst).__name__}")
    dst = os.fspath(dst)
    if not dst:
        raise UsageError("dst is empty; pass the prefix to write, e.g. out/model.ckpt")
    if dst.endswith("/") or tf.io.gfile.isdir(dst):
        dst = posixpath.join(dst, os.path.basename(source))
    match = _FILE_SUFFIX.match(dst)  # "x.index" / "x.meta" / "x.data-00000-of-00001" name prefix "x"
    if match:
        dst = match.group("prefix")
    parent = os.path.dirname(dst) or "."
    if not tf.io.gfile.isdir(parent):
        raise UsageError(f"the directory {parent!r} for dst does not exist; create it first (mkdir -p {parent})")
    if "://" not in dst and not os.access(parent, os.W_OK):
        raise UsageError(f"the directory {parent!r} for dst is not writable; pass a dst in a writable directory")
    if os.path.abspath(dst) == os.path.abspath(source) and not overwrite:
        raise UsageError(
            f"dst {dst!r} is the source checkpoint; pass another dst, or overwrite=True to replace it in place"
        )
    if (tf.io.gfile.exists(dst + ".index") or tf.io.gfile.glob(dst + ".data-*")) and not overwrite:
        raise UsageError(f"dst {dst!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    return dst


def _temp_name() -> str:
    # host and pid: a later run removes only directories of dead processes of its own host,
    # never those of a rename still running on another machine sharing the directory.
    return f"{TEMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove_stale_temporaries(parent: str) -> None:
    """Delete temp directories left by killed runs of this host (their process is gone)."""
    if "://" in parent:
        return
    own = f"{TEMP_PREFIX}{_HOST}-"
    for entry in os.listdir(parent):
        if not entry.startswith(own):
            continue
        try:
            pid = int(entry[len(own):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            _logger.info("removing %s left by an interrupted run", entry)
            tf.io.gfile.rmtree(os.path.join(parent, entry))
        except (ValueError, PermissionError):
            continue


def _copy_batch(plan: RenamePlan, part: str, batch: Sequence[str]) -> None:
    with tf.Graph().as_default() as graph:
        values = tf.raw_ops.RestoreV2(
            prefix=plan.source,
            tensor_names=[plan.raw_keys.get(key, key) for key in batch],
            shape_and_slices=[""] * len(batch),
            dtypes=[tf.as_dtype(plan.dtypes[key]) for key in batch],
        )
        outputs = sorted((target, value) for key, value in zip(batch, values) for target in plan.renames[key])
        save = tf.raw_ops.SaveV2(
            prefix=part,
            tensor_names=[target for target, _ in outputs],
            shape_and_slices=[""] * len(outputs),
            tensors=[value for _, value in outputs],
        )
        with v1.Session(graph=graph) as sess:
            sess.run(save)


def _run_merge(parts: Sequence[str], merged: str) -> None:
    with tf.Graph().as_default() as graph:
        merge = tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=list(parts), destination_prefix=merged, delete_old_dirs=False)
        with v1.Session(graph=graph) as sess:
            sess.run(merge)


def _move_into_place(merged: str, dst: str) -> None:
    """Data files first, the index last: a crash in between leaves no ``dst`` index."""
    # The old index goes first: from then on dst is absent until the new index lands. A
    # replaced dst's .meta describes the old graph, so it goes too.
    stale = [dst + suffix for suffix in (".index", ".meta") if tf.io.gfile.exists(dst + suffix)]
    for old in stale + tf.io.gfile.glob(dst + ".data-*"):
        tf.io.gfile.remove(old)
    for data in tf.io.gfile.glob(merged + ".data-*"):
        tf.io.gfile.rename(data, dst + data[len(merged):], overwrite=True)
    tf.io.gfile.rename(merged + ".index", dst + ".index", overwrite=True)


def _update_state_file(dst: str) -> None:
    """Name ``dst`` in its directory's ``checkpoint`` state file (relative path, atomic write).

    A directory without a usable state file gets one naming ``dst``. A directory whose state
    file already names a checkpoint that exists (a training run's own, or ``src``'s) keeps
    it as latest, so that a resuming job is not silently pointed at the renamed copy.
    """
    directory = os.path.dirname(dst) or "."
    name = os.path.basename(dst)
    try:
        state = v1.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError):
        state = None  # an unreadable state file is replaced
    latest = state.model_checkpoint_path if state else ""
    if latest and os.path.basename(latest) != name and tf.io.gfile.exists(latest + ".index"):
        _logger.warning(
            "%s already names %s as its latest checkpoint; left unchanged: pass the prefix %s explicitly",
            os.path.join(directory, "checkpoint"), latest, dst,
        )
        return
    # tf.compat.v1.train.update_checkpoint_state does the same but logs a deprecation notice.
    update = getattr(getattr(getattr(tf, "__internal__", None), "train", None), "update_checkpoint_state", None)
    if update is not None:
        update(directory, name, all_model_checkpoint_paths=[name], save_relative_paths=True)
    else:  # pragma: no cover - older TensorFlow
        v1.train.update_checkpoint_state(directory, name, all_model_checkpoint_paths=[name])


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
    dtypes and shapes come out bit-identical; slices of partitioned variables come out as
    full tensors. ``src`` is never modified; ``dst`` is complete or absent; ``dst``'s
    directory gets a ``checkpoint`` state file naming it. ``.meta`` files are not copied.

    Args:
        memory_budget: bytes of tensors held at once (a larger single tensor goes alone).
        progress: called as ``progress(bytes_done, bytes_total)`` after each batch.

    Returns:
        {source key: new name} for every key written (a tuple for list values).

    Raises:
        NameMapError: bad map, collisions, or a map that changes nothing.
        UsageError: dst exists (pass overwrite=True), is src, or its directory is missing.
        CheckpointNotFoundError, CorruptCheckpointError: ``src`` cannot be read.

    Example:
        >>> rename_variables("old_dir", "new/model.ckpt",
        ...                  {re.compile(r"^(.*)/weights$"): r"\\1/kernel"})  # doctest: +SKIP
    """
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget <= 0:
        raise UsageError(f"memory_budget must be a positive number of bytes, not {memory_budget!r}")
    plan = plan_rename(src, name_map, include=include, exclude=exclude)
    destination = _destination(dst, plan.source, overwrite)
    if not plan.renames:
        raise NameMapError(f"the filters leave no key of {plan.source!r} to write; loosen include / exclude")
    if not plan.changes_anything and os.path.abspath(destination) != os.path.abspath(plan.source):
        unmatched = [d.subject for d in plan.diagnostics]
        raise NameMapError(
            f"name_map renames nothing in {plan.source!r} and no key is filtered out, so dst would be a plain copy"
            + (f"; these matched no key: {', '.join(unmatched[:5])}" if unmatched else "")
            + "; check the map against `partialsaver list`"
        )
    for diagnostic in plan.diagnostics:
        _logger.warning("%s", diagnostic.message)
    parent = os.path.dirname(destination) or "."
    _remove_stale_temporaries(parent)
    workdir = posixpath.join(parent, _temp_name())
    total, done = sum(plan.sizes.values()), 0
    try:
        tf.io.gfile.makedirs(workdir)
        parts = []
        batches = _batches(list(plan.renames), plan.sizes, memory_budget)
        for number, batch in enumerate(batches):
            part = posixpath.join(workdir, f"part-{number:05d}")
            try:
                _copy_batch(plan, part, batch)
            except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.NotFoundError,
                    tf.errors.InvalidArgumentError) as error:
                raise CorruptCheckpointError(
                    f"reading {plan.source!r} failed ({type(error).__name__}: {meaningful_line(error)}); "
                    "the source is truncated or corrupt: nothing was written to dst"
                ) from error
            parts.append(part)
            done += sum(plan.sizes[key] for key in batch)
            _logger.info("rename: batch %d/%d written (%.1f MB of %.1f MB)", number + 1, len(batches), done / 2**20, total / 2**20)
            if progress is not None:
                progress(done, total)
        merged = posixpath.join(workdir, "merged")
        _run_merge(parts, merged)
        _move_into_place(merged, destination)
        _update_state_file(destination)
    except tf.errors.OpError as error:
        raise PartialSaverError(
            f"writing {destination!r} failed ({type(error).__name__}: {meaningful_line(error)}); "
            "check free disk space and permissions: nothing was written to dst"
        ) from error
    finally:
        if tf.io.gfile.exists(workdir):
            tf.io.gfile.rmtree(workdir)
    return {key: targets[0] if len(targets) == 1 else targets for key, targets in plan.renames.items()}

"""A TensorFlow checkpoint's tensors to and from ``.safetensors`` and ``.npz``, without TensorFlow.

::

    export_checkpoint(src, "model.safetensors", name_map, exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP])
    import_checkpoint("model.safetensors", "tf/model.ckpt", name_map)

The filters and the name map work as in ``rename_variables`` (on the source's names). Both
directions stream one tensor at a time (at most one tensor plus a buffer in memory), keep
values, shapes and dtypes bit-identical (bfloat16 included, in safetensors), and write the
output completely or not at all. A dtype the target format cannot hold is refused up front,
naming the keys and the way out.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Tuple, Union

from partialsaver._files import filesystem_for, has_atomic_replace, parent_of
from partialsaver._interchange import (
    NPZ_DTYPES,
    SAFETENSORS_DTYPES,
    Source,
    Tensor,
    import_safetensors,
    read_npz_members,
    read_safetensors_header,
    write_npz,
    write_safetensors,
)
from partialsaver._output import OutputBundle, remove_if_there
from partialsaver._reading import CheckpointReader
from partialsaver._rename import destination_prefix, plan_rename
from partialsaver._resolve import record_latest
from partialsaver._temporaries import temp_path
from partialsaver.errors import (
    CheckpointNotFoundError,
    NameMapError,
    PartialSaverError,
    UsageError,
    format_items,
)
from partialsaver.format import BundleWriter
from partialsaver.format.fs import FileSystem
from partialsaver.format.naming import data_paths
from partialsaver.mapping import NameMapArg, map_names
from partialsaver.selection import SpecArg

_logger = logging.getLogger("partialsaver")

__all__ = ["export_checkpoint", "import_checkpoint"]


def _format_of(path: str, argument: str) -> str:
    for suffix in (".safetensors", ".npz"):
        if path.endswith(suffix):
            return suffix
    raise UsageError(f"{argument} {path!r} must end in .safetensors or .npz (the format follows the suffix)")


def _path(value: Any, argument: str) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise UsageError(f"{argument} must be a non-empty str or os.PathLike, not {value!r}")
    return os.fspath(value)


def _refuse_dtypes(tensors: List[Tensor], supported: Dict[str, str], target: str, other: str) -> None:
    refused = [f"{tensor.source} ({tensor.dtype})" for tensor in tensors if tensor.dtype not in supported]
    if refused:
        raise UsageError(
            f"{len(refused)} tensor(s) have a dtype {target} cannot hold: {format_items(refused)}; "
            f"exclude them (exclude=[...], CLI --exclude) or write {other}"
        )


def _open_output(fs: FileSystem, path: str) -> Tuple[str, bool]:
    """Where to write ``path`` first: a temporary to replace it atomically, or ``path`` itself."""
    atomic = has_atomic_replace(fs, path)
    return (temp_path(path) if atomic else path), atomic


def _check_output(fs: FileSystem, path: str, overwrite: bool) -> None:
    if fs.exists(path) and not overwrite:
        raise UsageError(f"{path!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    fs.makedirs(parent_of(path))


def export_checkpoint(
    src: Any,
    dst: Any,
    name_map: NameMapArg = None,
    *,
    include: SpecArg = None,
    exclude: SpecArg = None,
    overwrite: bool = False,
) -> Dict[str, Union[str, Tuple[str, ...]]]:
    """Write a TensorFlow checkpoint's tensors to ``dst`` (``.safetensors`` or ``.npz``).

    Filters and ``name_map`` (exact, scope, regex, callable rules) apply to the checkpoint's
    keys as in ``rename_variables``; ``exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP]`` leaves the
    training state behind. Each tensor's crc32c is checked as it is copied; partitioned
    variables come out whole. safetensors holds no strings, complex128 or quantized types,
    .npz no bfloat16 / float8 (numpy has none) and no quantized types: such tensors are
    refused before anything is written.

    Returns:
        {checkpoint key: name written} (a tuple for list values).

    Raises:
        UsageError: a bad ``dst`` suffix, ``dst`` exists (pass overwrite=True), a dtype the
            format cannot hold.
        NameMapError: a bad map, or two keys written under one name.
        CheckpointNotFoundError: no checkpoint at ``src``.
        CorruptCheckpointError: a damaged source tensor (its crc32c); nothing was written.

    Example:
        >>> export_checkpoint("bert_dir", "bert.safetensors", exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP])  # doctest: +SKIP
    """
    destination = _path(dst, "dst")
    suffix = _format_of(destination, "dst")
    plan = plan_rename(src, name_map, include=include, exclude=exclude)
    if not plan.renames:
        raise NameMapError(f"the filters leave no key of {plan.source!r} to export; loosen include / exclude")
    for diagnostic in plan.diagnostics:
        _logger.warning("%s", diagnostic.message)
    with CheckpointReader(plan.source) as reader:
        tensors = sorted(
            (
                Tensor(
                    name,
                    reader.raw(key),
                    reader.bundle.dtype_name(reader.raw(key)),
                    reader.bundle.shape(reader.raw(key)),
                )
                for key, targets in plan.renames.items()
                for name in targets
            ),
            key=lambda tensor: tensor.name,
        )
        if suffix == ".safetensors":
            _refuse_dtypes(tensors, SAFETENSORS_DTYPES, ".safetensors", ".npz")
        else:
            _refuse_dtypes(tensors, NPZ_DTYPES, ".npz", ".safetensors")
        fs = filesystem_for(destination)
        _check_output(fs, destination, overwrite)
        target, atomic = _open_output(fs, destination)
        try:
            with fs.open(target, "wb") as file:
                (write_safetensors if suffix == ".safetensors" else write_npz)(file, reader, tensors, fs)
            if atomic:
                fs.replace(target, destination)
        except BaseException as error:
            remove_if_there(fs, target)
            if isinstance(error, OSError):
                raise PartialSaverError(
                    f"writing {destination!r} failed ({error}); check free disk space and "
                    "permissions: nothing was written"
                ) from error
            raise
    return {key: targets[0] if len(targets) == 1 else targets for key, targets in plan.renames.items()}


def import_checkpoint(
    src: Any,
    dst: Any,
    name_map: NameMapArg = None,
    *,
    include: SpecArg = None,
    exclude: SpecArg = None,
    overwrite: bool = False,
) -> Dict[str, Union[str, Tuple[str, ...]]]:
    """Write the tensors of ``src`` (``.safetensors`` or ``.npz``) as a TensorFlow checkpoint ``dst``.

    ``dst`` is a prefix (``out/model.ckpt``) that ``tf.compat.v1.train.Saver``, ``SmartSaver``,
    ``tf.train.load_variable`` and ``init_from_checkpoint`` read; its directory gets a
    ``checkpoint`` state file. Filters and ``name_map`` apply to the file's names.

    Returns:
        {name in the file: checkpoint key written} (a tuple for list values).

    Raises:
        UsageError: a bad suffix, ``dst`` exists (pass overwrite=True), a dtype TensorFlow
            has not.
        CorruptCheckpointError: ``src`` is not a readable safetensors / npz file.
        NameMapError: a bad map, or two tensors written under one key.
        CheckpointNotFoundError: no file at ``src``.
    """
    source_path = _path(src, "src")
    suffix = _format_of(source_path, "src")
    source_fs = filesystem_for(source_path)
    if not source_fs.exists(source_path):
        raise CheckpointNotFoundError(f"no file at {source_path!r}; pass a .safetensors or .npz file")
    archive, source = (
        (None, read_safetensors_header(source_fs, source_path))
        if suffix == ".safetensors"
        else read_npz_members(source_fs, source_path)
    )
    try:
        renames = _plan_import(source, name_map, include, exclude)
        destination = destination_prefix(dst, os.path.splitext(os.path.basename(source_path))[0])
        fs = filesystem_for(destination)
        exists = fs.exists(destination + ".index") or bool(fs.glob(destination + ".data-*"))
        if exists and not overwrite:
            raise UsageError(
                f"dst {destination!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        fs.makedirs(parent_of(destination))
        output = OutputBundle(fs, destination)
        try:
            if archive is None:
                import_safetensors(source_fs, source_path, source, renames, output)
            else:
                _import_npz(archive, source, renames, output)
        except BaseException as error:
            output.discard()
            if isinstance(error, OSError):
                raise PartialSaverError(
                    f"writing {destination!r} failed ({error}); check free disk space and "
                    "permissions: nothing was written to dst"
                ) from error
            raise
        output.publish()
        record_latest(fs, destination)
    finally:
        if archive is not None:
            archive.close()
    return {name: targets[0] if len(targets) == 1 else targets for name, targets in renames.items()}


def _import_npz(archive: Any, source: Source, renames: Dict[str, Tuple[str, ...]], output: OutputBundle) -> None:
    """The arrays of an .npz archive, one at a time, into ``output`` through the bundle writer."""
    num_shards = output.shard_count(1)
    paths = [output.fresh(path) for path in data_paths(output.prefix, num_shards)]
    writer = BundleWriter(
        output.prefix, output.fs, num_shards=num_shards, index_path=output.index_target, data_paths=paths
    )
    try:
        for name, targets in renames.items():
            tensor = source.tensors[name]
            value = archive[name]
            if tensor.dtype != "string" and not value.flags.c_contiguous:  # a Fortran-order .npy
                value = value.copy(order="C")
            for target in targets:
                writer.add(target, value, dtype=tensor.dtype)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _plan_import(
    source: Source, name_map: NameMapArg, include: SpecArg, exclude: SpecArg
) -> Dict[str, Tuple[str, ...]]:
    mapped = map_names(sorted(source.tensors), name_map, include, exclude, "tensor")
    if not mapped.renames:
        raise NameMapError("the filters leave no tensor to import; loosen include / exclude")
    for diagnostic in mapped.diagnostics:
        _logger.warning("%s", diagnostic.message)
    return mapped.renames

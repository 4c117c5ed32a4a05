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

import json
import logging
import os
import struct
import zipfile
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from partialsaver import __version__
from partialsaver._files import filesystem_for, has_atomic_replace, parent_of, temp_path
from partialsaver._output import OutputBundle, remove_if_there
from partialsaver._reading import CheckpointReader
from partialsaver._rename import destination_prefix, plan_rename
from partialsaver._resolve import record_latest
from partialsaver.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NameMapError,
    PartialSaverError,
    UsageError,
    format_items,
)
from partialsaver.format import BundleWriter
from partialsaver.format.dtypes import dtype_enum, lookup
from partialsaver.format.fs import FileSystem
from partialsaver.format.naming import data_paths
from partialsaver.mapping import NameMap, NameMapArg, describe_collisions, unmatched_rules
from partialsaver.selection import SpecArg, normalize_specs, select

_logger = logging.getLogger("partialsaver")

# TensorFlow dtype name -> safetensors dtype code (the codes the format defines).
SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "uint64": "U64",
    "int32": "I32", "uint32": "U32", "int16": "I16", "uint16": "U16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "complex64": "C64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}  # fmt: skip
_FROM_SAFETENSORS = {code: name for name, code in SAFETENSORS_DTYPES.items()}
# TensorFlow dtype name -> .npy dtype: numpy's own types only (a bfloat16 .npy is a void array).
NPZ_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "uint64": "<u8", "int32": "<i4",
    "uint32": "<u4", "int16": "<i2", "uint16": "<u2", "int8": "|i1", "uint8": "|u1", "bool": "|b1",
    "complex64": "<c8", "complex128": "<c16", "string": "S",
}  # fmt: skip
_CHUNK = 8 << 20

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


class _Tensor(NamedTuple):
    name: str  # in the output
    source: str  # the key (stored form) or the file's name
    dtype: str  # TensorFlow dtype name
    shape: Tuple[int, ...]


def _refuse_dtypes(tensors: List[_Tensor], supported: Dict[str, str], target: str, other: str) -> None:
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


# -- export -----------------------------------------------------------------------------------


def _stream(reader: CheckpointReader, stored: str) -> Iterator[Union[bytes, np.ndarray]]:
    """A tensor's bytes as safetensors and .npy store them (C order, little-endian), its crc32c
    checked: unpartitioned ones straight from the data file in chunks, partitioned ones assembled."""
    bundle = reader.bundle
    if not bundle.entry(stored).slices:
        yield from bundle.iter_raw(stored, chunk_size=_CHUNK)
        return
    value = bundle.read(stored)
    yield np.ascontiguousarray(value).reshape(-1).view(np.uint8) if value.size else b""


def _write_safetensors(file: Any, reader: CheckpointReader, tensors: List[_Tensor]) -> None:
    header: Dict[str, Any] = {"__metadata__": {"producer": f"partialsaver {__version__}",
                                               "source": os.path.basename(reader.prefix)}}
    offset = 0
    for tensor in tensors:
        size = int(np.prod(tensor.shape, dtype=np.int64)) * (lookup(dtype_enum(tensor.dtype)).itemsize or 0)
        header[tensor.name] = {"dtype": SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                               "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the tensors start 8-byte aligned
    file.write(struct.pack("<Q", len(encoded)) + encoded)
    for tensor in tensors:
        for chunk in _stream(reader, tensor.source):
            file.write(memoryview(chunk) if isinstance(chunk, np.ndarray) else chunk)


def _npy_header(dtype: np.dtype, shape: Tuple[int, ...]) -> bytes:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    # Version 1.0 below 64 KiB of header, else 2.0; the data starts 64-byte aligned.
    version, length_format = ((1, 0), "<H") if len(text) + 12 < 65536 else ((2, 0), "<I")
    prefix_size = 6 + 2 + struct.calcsize(length_format)
    text += b" " * (-(prefix_size + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(length_format, len(text)) + text


def _string_array(reader: CheckpointReader, tensor: _Tensor) -> np.ndarray:
    value = reader.bundle.read(tensor.source)
    if any(element.endswith(b"\x00") for element in value.reshape(-1)):
        raise UsageError(
            f"string tensor {tensor.source!r} has an element ending in a NUL byte, which .npz (fixed-width "
            "bytes) cannot keep; exclude it"
        )
    return value.astype(np.bytes_) if value.size else np.zeros(value.shape, "S1")


def _write_npz(file: Any, reader: CheckpointReader, tensors: List[_Tensor]) -> None:
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for tensor in tensors:
            with archive.open(tensor.name + ".npy", "w", force_zip64=True) as member:
                if tensor.dtype == "string":
                    array = _string_array(reader, tensor)
                    member.write(_npy_header(array.dtype, tensor.shape))
                    member.write(array.tobytes())
                    continue
                member.write(_npy_header(np.dtype(NPZ_DTYPES[tensor.dtype]), tensor.shape))
                for chunk in _stream(reader, tensor.source):
                    member.write(memoryview(chunk) if isinstance(chunk, np.ndarray) else chunk)


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
        NameMapError, CheckpointNotFoundError, CorruptCheckpointError.

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
            (_Tensor(name, reader.raw(key), reader.bundle.dtype_name(reader.raw(key)), reader.bundle.shape(reader.raw(key)))
             for key, targets in plan.renames.items() for name in targets),
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
                (_write_safetensors if suffix == ".safetensors" else _write_npz)(file, reader, tensors)
            if atomic:
                fs.replace(target, destination)
        except BaseException as error:
            remove_if_there(fs, target)
            if isinstance(error, OSError):
                raise PartialSaverError(f"writing {destination!r} failed ({error}); check free disk space and "
                                        "permissions: nothing was written") from error
            raise
    return {key: targets[0] if len(targets) == 1 else targets for key, targets in plan.renames.items()}


# -- import -----------------------------------------------------------------------------------


class _Source(NamedTuple):
    tensors: Dict[str, _Tensor]  # by the file's name
    offsets: Dict[str, Tuple[int, int]]  # safetensors: absolute byte range of each tensor


def _read_safetensors_header(fs: FileSystem, path: str) -> _Source:
    try:
        with fs.open(path, "rb") as file:
            size = fs.size(path)
            length_bytes = file.read(8)
            length = struct.unpack("<Q", length_bytes)[0] if len(length_bytes) == 8 else -1
            if not 2 <= length <= size - 8:
                raise ValueError(f"a header length of {length} in a file of {size} bytes")
            header = json.loads(file.read(length).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, struct.error) as error:
        raise CorruptCheckpointError(f"{path!r} is not a safetensors file ({error}); re-export it") from error
    tensors, offsets = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _FROM_SAFETENSORS.get(info.get("dtype"))
        if dtype is None:
            raise UsageError(f"{path!r}: tensor {name!r} has dtype {info.get('dtype')!r}, which TensorFlow checkpoints "
                             f"do not have here; supported: {', '.join(sorted(_FROM_SAFETENSORS))}")
        begin, end = info["data_offsets"]
        shape = tuple(int(dim) for dim in info["shape"])
        expected = int(np.prod(shape, dtype=np.int64)) * (lookup(dtype_enum(dtype)).itemsize or 0)
        if end - begin != expected or 8 + length + end > size:
            raise CorruptCheckpointError(f"{path!r}: tensor {name!r} has {end - begin} bytes for shape {shape} "
                                         f"({dtype}), or lies past the end of the file; re-export it")
        tensors[name] = _Tensor(name, name, dtype, shape)
        offsets[name] = (8 + length + begin, 8 + length + end)
    return _Source(tensors, offsets)


def _npz_dtype(array: np.ndarray, name: str, path: str) -> str:
    if array.dtype.kind in "SU":
        return "string"
    for tensorflow_name, descr in NPZ_DTYPES.items():
        if descr != "S" and np.dtype(descr) == array.dtype.newbyteorder("<"):
            return tensorflow_name
    raise UsageError(f"{path!r}: array {name!r} has dtype {array.dtype}, which has no TensorFlow dtype here; "
                     "convert it (or exclude it)")


def _read_npz_members(fs: FileSystem, path: str) -> Tuple[Any, _Source]:
    tensors = {}
    try:
        archive = np.load(fs.open(path, "rb"), allow_pickle=False)
        for name in archive.files:
            with archive.zip.open(name + ".npy") as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
            tensors[name] = _Tensor(name, name, _npz_dtype(np.empty(0, dtype=dtype), name, path), tuple(shape))
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise CorruptCheckpointError(f"{path!r} is not an .npz file ({error}); re-export it") from error
    return archive, _Source(tensors, {})


def _safetensors_bytes(fs: FileSystem, path: str, span: Tuple[int, int]) -> bytes:
    with fs.open(path, "rb") as file:
        file.seek(span[0])
        data = file.read(span[1] - span[0])
    if len(data) != span[1] - span[0]:
        raise CorruptCheckpointError(f"{path!r} is truncated; re-export it")
    return data


def _value(tensor: _Tensor, data: bytes) -> np.ndarray:
    """The bits of a tensor as an array the checkpoint writer stores as ``tensor.dtype``."""
    itemsize = lookup(dtype_enum(tensor.dtype)).itemsize or 1
    carrier = f"<u{itemsize}" if itemsize in (1, 2, 4, 8) else f"V{itemsize}"
    return np.frombuffer(data, dtype=carrier).reshape(tensor.shape)


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
        NameMapError, CheckpointNotFoundError.
    """
    source_path = _path(src, "src")
    suffix = _format_of(source_path, "src")
    source_fs = filesystem_for(source_path)
    if not source_fs.exists(source_path):
        raise CheckpointNotFoundError(f"no file at {source_path!r}; pass a .safetensors or .npz file")
    archive, source = (None, _read_safetensors_header(source_fs, source_path)) if suffix == ".safetensors" else \
        _read_npz_members(source_fs, source_path)
    try:
        renames = _plan_import(source, name_map, include, exclude)
        destination = destination_prefix(dst, os.path.splitext(os.path.basename(source_path))[0])
        fs = filesystem_for(destination)
        exists = fs.exists(destination + ".index") or bool(fs.glob(destination + ".data-*"))
        if exists and not overwrite:
            raise UsageError(f"dst {destination!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        fs.makedirs(parent_of(destination))
        output = OutputBundle(fs, destination)
        num_shards = output.shard_count(1)
        paths = [output.fresh(path) for path in data_paths(destination, num_shards)]
        writer = BundleWriter(destination, fs, num_shards=num_shards, index_path=output.index_target, data_paths=paths)
        try:
            for name, targets in renames.items():
                tensor = source.tensors[name]
                if archive is not None:
                    value = archive[name]
                    if tensor.dtype != "string" and not value.flags.c_contiguous:  # a Fortran-order .npy
                        value = value.copy(order="C")
                else:
                    value = _value(tensor, _safetensors_bytes(source_fs, source_path, source.offsets[name]))
                for target in targets:
                    writer.add(target, value, dtype=tensor.dtype)
            writer.finish()
        except BaseException as error:
            writer.abort()
            output.discard()
            if isinstance(error, OSError):
                raise PartialSaverError(f"writing {destination!r} failed ({error}); check free disk space and "
                                        "permissions: nothing was written to dst") from error
            raise
        output.publish()
        record_latest(fs, destination)
    finally:
        if archive is not None:
            archive.close()
    return {name: targets[0] if len(targets) == 1 else targets for name, targets in renames.items()}


def _plan_import(source: _Source, name_map: NameMapArg, include: SpecArg, exclude: SpecArg) -> Dict[str, Tuple[str, ...]]:
    compiled = NameMap(name_map)
    names = sorted(source.tensors)
    selection = select(names, normalize_specs(include, "include"), normalize_specs(exclude, "exclude"), noun="tensor")
    renames: Dict[str, Tuple[str, ...]] = {}
    used = set()
    for name in selection.selected:
        targets, rule = compiled.apply(name)
        if rule is not None:
            used.add(rule.index)
        renames[name] = tuple(dict.fromkeys(targets))
    collisions = describe_collisions((target, name) for name, targets in renames.items() for target in targets)
    if collisions:
        raise NameMapError(f"the checkpoint would hold {len(collisions)} key(s) written from several tensors: "
                           f"{format_items(collisions)}; make the map more specific or exclude one of each pair")
    if not renames:
        raise NameMapError("the filters leave no tensor to import; loosen include / exclude")
    for diagnostic in selection.diagnostics + tuple(unmatched_rules(compiled, used, names)):
        _logger.warning("%s", diagnostic.message)
    return renames

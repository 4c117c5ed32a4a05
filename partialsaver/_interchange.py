"""The interchange formats: safetensors and .npz, written from a checkpoint tensor by tensor
and read back one tensor at a time, in plain Python.

safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
data_offsets}} (plus ``__metadata__``), then the tensors' bytes back to back in C order.
.npz: a zip archive (stored, ZIP64) of one ``.npy`` file per tensor.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np

from partialsaver import __version__
from partialsaver._files import copy_bytes
from partialsaver._output import OutputBundle
from partialsaver._reading import CheckpointReader
from partialsaver.errors import CorruptCheckpointError, UsageError
from partialsaver.format import Entry, Header, _crc, encode_index
from partialsaver.format.dtypes import dtype_enum, lookup
from partialsaver.format.fs import FileSystem, RandomAccessFile, open_random_access
from partialsaver.format.index import key_bytes
from partialsaver.format.naming import data_paths

# TensorFlow dtype name -> safetensors dtype code (the codes the format defines).
SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "uint64": "U64",
    "int32": "I32", "uint32": "U32", "int16": "I16", "uint16": "U16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "complex64": "C64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}  # fmt: skip
FROM_SAFETENSORS = {code: name for name, code in SAFETENSORS_DTYPES.items()}
# TensorFlow dtype name -> .npy dtype: numpy's own types only (a bfloat16 .npy is a void array).
NPZ_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "uint64": "<u8", "int32": "<i4",
    "uint32": "<u4", "int16": "<i2", "uint16": "<u2", "int8": "|i1", "uint8": "|u1", "bool": "|b1",
    "complex64": "<c8", "complex128": "<c16", "string": "S",
}  # fmt: skip
_CHUNK = 8 << 20

__all__ = [
    "FROM_SAFETENSORS",
    "NPZ_DTYPES",
    "SAFETENSORS_DTYPES",
    "Source",
    "Tensor",
    "import_safetensors",
    "read_npz_members",
    "read_safetensors_header",
    "write_npz",
    "write_safetensors",
]


class Tensor(NamedTuple):
    name: str  # in the output
    source: str  # the key (stored form) or the file's name
    dtype: str  # TensorFlow dtype name
    shape: Tuple[int, ...]


def _write_tensor(file: Any, reader: CheckpointReader, stored: str, target_fs: FileSystem) -> None:
    """Append a tensor's bytes as safetensors and .npy store them (C order, little-endian), its
    crc32c checked first: unpartitioned ones copied from the data file (in the kernel between
    local files), partitioned ones assembled from their slices."""
    bundle = reader.bundle
    entry = bundle.entry(stored)
    if entry.slices:
        value = bundle.read(stored)
        if value.size:
            file.write(np.ascontiguousarray(value).reshape(-1).view(np.uint8).data)
        return
    bundle.verify(stored)
    copy_bytes(
        bundle.fs, bundle.data_path(entry.shard_id), entry.offset, entry.offset + entry.size, file, target_fs, _CHUNK
    )


def write_safetensors(file: Any, reader: CheckpointReader, tensors: List[Tensor], target_fs: FileSystem) -> None:
    header: Dict[str, Any] = {
        "__metadata__": {"producer": f"partialsaver {__version__}", "source": os.path.basename(reader.prefix)}
    }
    offset = 0
    for tensor in tensors:
        size = int(np.prod(tensor.shape, dtype=np.int64)) * (lookup(dtype_enum(tensor.dtype)).itemsize or 0)
        header[tensor.name] = {
            "dtype": SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the tensors start 8-byte aligned
    file.write(struct.pack("<Q", len(encoded)) + encoded)
    for tensor in tensors:
        _write_tensor(file, reader, tensor.source, target_fs)


def _npy_header(dtype: np.dtype, shape: Tuple[int, ...]) -> bytes:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    # Version 1.0 below 64 KiB of header, else 2.0; the data starts 64-byte aligned.
    version, length_format = ((1, 0), "<H") if len(text) + 12 < 65536 else ((2, 0), "<I")
    prefix_size = 6 + 2 + struct.calcsize(length_format)
    text += b" " * (-(prefix_size + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(length_format, len(text)) + text


def _string_array(reader: CheckpointReader, tensor: Tensor) -> np.ndarray:
    value = reader.bundle.read(tensor.source)
    if any(element.endswith(b"\x00") for element in value.reshape(-1)):
        raise UsageError(
            f"string tensor {tensor.source!r} has an element ending in a NUL byte, which .npz (fixed-width "
            "bytes) cannot keep; exclude it"
        )
    return value.astype(np.bytes_) if value.size else np.zeros(value.shape, "S1")


def write_npz(file: Any, reader: CheckpointReader, tensors: List[Tensor], target_fs: FileSystem) -> None:
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for tensor in tensors:
            with archive.open(tensor.name + ".npy", "w", force_zip64=True) as member:
                if tensor.dtype == "string":
                    array = _string_array(reader, tensor)
                    member.write(_npy_header(array.dtype, tensor.shape))
                    member.write(array.tobytes())
                    continue
                member.write(_npy_header(np.dtype(NPZ_DTYPES[tensor.dtype]), tensor.shape))
                _write_tensor(member, reader, tensor.source, target_fs)  # a zip member: no kernel copy


class Source(NamedTuple):
    tensors: Dict[str, Tensor]  # by the file's name
    offsets: Dict[str, Tuple[int, int]]  # safetensors: absolute byte range of each tensor


def read_safetensors_header(fs: FileSystem, path: str) -> Source:
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
        dtype = FROM_SAFETENSORS.get(info.get("dtype"))
        if dtype is None:
            raise UsageError(
                f"{path!r}: tensor {name!r} has dtype {info.get('dtype')!r}, which TensorFlow checkpoints "
                f"do not have here; supported: {', '.join(sorted(FROM_SAFETENSORS))}"
            )
        begin, end = info["data_offsets"]
        shape = tuple(int(dim) for dim in info["shape"])
        expected = int(np.prod(shape, dtype=np.int64)) * (lookup(dtype_enum(dtype)).itemsize or 0)
        if end - begin != expected or 8 + length + end > size:
            raise CorruptCheckpointError(
                f"{path!r}: tensor {name!r} has {end - begin} bytes for shape {shape} "
                f"({dtype}), or lies past the end of the file; re-export it"
            )
        tensors[name] = Tensor(name, name, dtype, shape)
        offsets[name] = (8 + length + begin, 8 + length + end)
    return Source(tensors, offsets)


def _npz_dtype(array: np.ndarray, name: str, path: str) -> str:
    if array.dtype.kind in "SU":
        return "string"
    for tensorflow_name, descr in NPZ_DTYPES.items():
        if descr != "S" and np.dtype(descr) == array.dtype.newbyteorder("<"):
            return tensorflow_name
    raise UsageError(
        f"{path!r}: array {name!r} has dtype {array.dtype}, which has no TensorFlow dtype here; "
        "convert it (or exclude it)"
    )


def read_npz_members(fs: FileSystem, path: str) -> Tuple[Any, Source]:
    tensors = {}
    try:
        archive = np.load(fs.open(path, "rb"), allow_pickle=False)
        for name in archive.files:
            with archive.zip.open(name + ".npy") as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
            tensors[name] = Tensor(name, name, _npz_dtype(np.empty(0, dtype=dtype), name, path), tuple(shape))
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise CorruptCheckpointError(f"{path!r} is not an .npz file ({error}); re-export it") from error
    return archive, Source(tensors, {})


def _crc_of_range(file: RandomAccessFile, start: int, end: int) -> int:
    crc = 0
    for position in range(start, end, _CHUNK):
        chunk = file.read(position, min(_CHUNK, end - position))
        crc = _crc.extend(crc, chunk)
        file.release(position, chunk.size)
    return crc


def import_safetensors(
    source_fs: FileSystem, path: str, source: Source, renames: Dict[str, Tuple[str, ...]], output: OutputBundle
) -> None:
    """The tensors of a safetensors file into a new data file, and the index, of ``output``:
    each tensor's crc32c computed from the file, its bytes copied (in the kernel between local
    files); a tensor written under several names is stored once."""
    num_shards = output.shard_count(1)
    paths = [output.fresh(data) for data in data_paths(output.prefix, num_shards)]
    entries: Dict[bytes, Entry] = {}
    file = open_random_access(source_fs, path)
    try:
        with output.fs.open(paths[0], "wb") as target:
            offset = 0
            for name, targets in renames.items():
                tensor = source.tensors[name]
                start, end = source.offsets[name]
                if end > file.size:
                    raise CorruptCheckpointError(f"{path!r} is truncated; re-export it")
                crc = _crc_of_range(file, start, end)
                copy_bytes(source_fs, path, start, end, target, output.fs, _CHUNK)
                entry = Entry(
                    dtype=dtype_enum(tensor.dtype),
                    shape=tensor.shape,
                    offset=offset,
                    size=end - start,
                    crc32c=_crc.mask(crc),
                )
                entries.update((key_bytes(new_name), entry) for new_name in targets)
                offset += end - start
    finally:
        file.close()
    for extra in paths[1:]:
        with output.fs.open(extra, "wb"):
            pass
    with output.fs.open(output.index_target, "wb") as index:
        index.write(encode_index(Header(num_shards=num_shards), entries))

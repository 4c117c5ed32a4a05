"""Helpers shared by the tests of partialsaver.format (no TensorFlow here)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Iterator, Tuple

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import ml_dtypes
except ImportError:  # The suite also runs without it: see the *_without_ml_dtypes tests.
    ml_dtypes = None

HAS_ML_DTYPES = ml_dtypes is not None
# TensorFlow dtypes whose numpy form comes from ml_dtypes.
ML_DTYPE_NAMES = ("bfloat16", "float8_e5m2", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz",
                  "float8_e5m2fnuz", "int4", "uint4", "int2", "uint2", "float4_e2m1fn")  # fmt: skip
PLAIN_NUMPY = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "uint8": np.uint8,
               "int16": np.int16, "int8": np.int8, "complex64": np.complex64, "int64": np.int64,
               "bool": np.bool_, "uint16": np.uint16, "complex128": np.complex128, "float16": np.float16,
               "uint32": np.uint32, "uint64": np.uint64}  # fmt: skip
QUANTIZED = {"qint8": np.int8, "quint8": np.uint8, "qint16": np.int16, "quint16": np.uint16, "qint32": np.int32}


def file_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def rewrite_in_stored_order(source, prefix: str) -> None:
    """Write every tensor of the BundleReader ``source`` again with BundleWriter, in the order it is stored.

    Values go through ``read`` and ``add`` / ``add_slice`` (raw bits for ml_dtypes types when ml_dtypes is
    missing), not through a byte copy, so that the result tests the writer against the original's bytes.
    """
    from partialsaver.format import BundleWriter
    from partialsaver.format.dtypes import itemsize, lookup

    full_entries = {key: entry for key, entry in source.raw_items() if entry.slices}
    slice_owner = {slice_key: (key, spec) for key in full_entries for slice_key, spec, _ in source.slice_entries(key)}
    # An empty tensor's offset is the file size when it was added: before the tensor starting there.
    stored = sorted((entry.shard_id, entry.offset, entry.size > 0, key) for key, entry in source.raw_items()
                    if not entry.slices)  # fmt: skip
    with BundleWriter(prefix, num_shards=source.num_shards) as writer:
        for shard_id, _, _, key in stored:
            entry = source.entry(key)
            dtype = lookup(entry.dtype).name
            if dtype in ML_DTYPE_NAMES and not HAS_ML_DTYPES:
                value = source.read_raw(key).view(f"<u{itemsize(entry.dtype)}").reshape(entry.shape)
            else:
                value = source.read(key)
            if key in slice_owner:
                owner, spec = slice_owner[key]
                writer.add_slice(owner.decode(), full_entries[owner].shape, spec, value, dtype=dtype, shard_id=shard_id)
            else:
                writer.add(key.decode(), value, dtype=dtype, shard_id=shard_id)


def fixture_prefix(name: str) -> str:
    """The prefix of the TensorFlow-written fixture ``name``."""
    return os.path.join(FIXTURES, name, "bundle")


def expected_tensors(name: str) -> Dict[str, dict]:
    """What TensorFlow's own reader returned for every key of a fixture."""
    with open(os.path.join(FIXTURES, name, "expected.json")) as file:
        return json.load(file)["tensors"]


def copy_fixture(name: str, directory: str) -> str:
    """Copy a fixture's bundle files into ``directory``; return the new prefix."""
    for file_name in os.listdir(os.path.join(FIXTURES, name)):
        if file_name.startswith("bundle."):
            shutil.copy(os.path.join(FIXTURES, name, file_name), os.path.join(directory, file_name))
    return os.path.join(directory, "bundle")


def bits(array: np.ndarray) -> np.ndarray:
    """The array's bytes as unsigned ints, so NaN payloads and -0.0 compare exactly."""
    array = np.ascontiguousarray(array)
    return array.reshape(-1).view(np.uint8)


def same_bits(first: np.ndarray, second: np.ndarray) -> bool:
    """Bit-identical values of the same shape (dtype itemsize included); equal elements for strings."""
    if first.dtype == object or second.dtype == object:
        return first.shape == second.shape and first.tolist() == second.tolist()
    return first.shape == second.shape and first.dtype.itemsize == second.dtype.itemsize and np.array_equal(
        bits(first), bits(second)
    )


def random_array(rng: np.random.Generator, name: str, shape: Tuple[int, ...]) -> np.ndarray:
    """Random bit patterns of TensorFlow dtype ``name`` (needs ml_dtypes for its types)."""
    if name == "bool":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if name in ("int4", "uint4", "int2", "uint2"):
        info = ml_dtypes.iinfo(getattr(ml_dtypes, name))
        integers = rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(np.int8)
        return integers.astype(getattr(ml_dtypes, name))
    if name == "float4_e2m1fn":
        return rng.choice(np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -6], np.float32), size=shape).astype(
            ml_dtypes.float4_e2m1fn
        )
    numpy = np.dtype(PLAIN_NUMPY.get(name) or QUANTIZED.get(name) or getattr(ml_dtypes, name))
    raw = rng.integers(0, 256, size=int(np.prod(shape, dtype=np.int64)) * numpy.itemsize, dtype=np.uint8)
    return raw.view(numpy).reshape(shape)


def numeric_dtype_names() -> Iterator[str]:
    """Every numeric TensorFlow dtype name a checkpoint can hold."""
    yield from PLAIN_NUMPY
    yield from QUANTIZED
    yield from ML_DTYPE_NAMES


class MemoryFileSystem:
    """An in-memory FileSystem (no mmap): exercises the non-local code paths."""

    atomic_replace = False

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}

    def open(self, path: str, mode: str = "rb"):
        import io

        if mode == "rb":
            if path not in self.files:
                raise FileNotFoundError(path)
            return io.BytesIO(self.files[path])
        files = self.files

        class _Writer(io.BytesIO):
            def close(self) -> None:
                if not self.closed:
                    files[path] = self.getvalue()
                super().close()

        return _Writer()

    def exists(self, path: str) -> bool:
        return path in self.files or self.isdir(path)

    def isdir(self, path: str) -> bool:
        return any(name.startswith(path.rstrip("/") + "/") for name in self.files)

    def size(self, path: str) -> int:
        if path not in self.files:
            raise FileNotFoundError(path)
        return len(self.files[path])

    def listdir(self, path: str) -> list:
        prefix = path.rstrip("/") + "/"
        return sorted({name[len(prefix):].split("/")[0] for name in self.files if name.startswith(prefix)})

    def glob(self, pattern: str) -> list:
        import fnmatch

        return sorted(name for name in self.files if fnmatch.fnmatchcase(name, pattern))

    def remove(self, path: str) -> None:
        if path not in self.files:
            raise FileNotFoundError(path)
        del self.files[path]

    def replace(self, src: str, dst: str) -> None:
        self.files[dst] = self.files.pop(src)

    def link(self, src: str, dst: str) -> bool:
        return False

    def makedirs(self, path: str) -> None:
        pass


def load_into_memory(name: str, fs: "MemoryFileSystem", directory: str = "mem://bucket") -> str:
    """Copy a fixture's bundle into ``fs``; return its prefix there."""
    for file_name in os.listdir(os.path.join(FIXTURES, name)):
        if file_name.startswith("bundle."):
            with open(os.path.join(FIXTURES, name, file_name), "rb") as file:
                fs.files[f"{directory}/{name}/{file_name}"] = file.read()
    return f"{directory}/{name}/bundle"


def mutate(data: bytes, rng, kinds=("flip", "truncate", "insert", "delete", "overwrite")) -> Tuple[bytes, str]:
    """Damage ``data`` one seeded way; return the damaged bytes and what was done."""
    kind = rng.choice(kinds)
    position = rng.randrange(max(len(data), 1))
    if kind == "flip":
        damaged = bytearray(data)
        if damaged:
            damaged[position] ^= 1 << rng.randrange(8)
        return bytes(damaged), f"flip bit at {position}"
    if kind == "truncate":
        return data[:position], f"truncate to {position}"
    if kind == "insert":
        extra = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        return data[:position] + extra + data[position:], f"insert {len(extra)} at {position}"
    if kind == "delete":
        count = rng.randrange(1, 9)
        return data[:position] + data[position + count :], f"delete {count} at {position}"
    count = rng.randrange(1, 17)
    noise = bytes(rng.randrange(256) for _ in range(count))
    return data[:position] + noise + data[position + count :], f"overwrite {count} at {position}"

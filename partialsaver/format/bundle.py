"""Read a V2 checkpoint ("tensor bundle"): list it, read, check and stream its tensors.

:class:`BundleReader` parses the index once (checking every block crc) and opens
data files on first use. Every tensor is checked against its stored crc32c before
it is returned; nothing unchecked leaves the reader, except the chunks of
:meth:`BundleReader.iter_raw`, which raises after the last chunk on a mismatch.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from partialsaver.errors import UsageError, VariableNotFoundError
from partialsaver.format import _crc
from partialsaver.format.codec import check_variants, decode_strings
from partialsaver.format.dtypes import STRING, VARIANT, lookup, numpy_dtype
from partialsaver.format.errors import corrupt, not_found, unsupported
from partialsaver.format.fs import LOCAL, FileSystem, RandomAccessFile, open_random_access
from partialsaver.format.index import Key, key_bytes, key_text, read_index
from partialsaver.format.naming import data_path, index_path
from partialsaver.format.ordered_code import SliceKeyError, encode_slice_key
from partialsaver.format.proto import BIG_ENDIAN, Entry, SliceSpec
from partialsaver.format.slices import Box, slice_box, tiles

__all__ = ["BundleReader", "SliceEntry"]

CHUNK_SIZE = 8 << 20  # Big enough to amortise per-call costs, small enough to stay cached.
SliceEntry = Tuple[bytes, SliceSpec, Entry]


class BundleReader:
    """One V2 checkpoint, opened for reading (one reader per thread: file positions are shared).

    Args:
        prefix: The checkpoint prefix (``dir/model.ckpt-1000``, without ``.index``).
        fs: The file system holding it.

    Raises:
        CheckpointNotFoundError: No ``prefix.index``.
        CorruptCheckpointError: A damaged index.
    """

    def __init__(self, prefix: str, fs: FileSystem = LOCAL) -> None:
        self.prefix = prefix
        self.fs = fs
        self.index_path = index_path(prefix)
        self._files: Dict[int, RandomAccessFile] = {}
        self.header, self._entries = read_index(prefix, fs)
        hidden = set()
        for table_key, entry in self._entries.items():
            for spec in entry.slices:
                with contextlib.suppress(SliceKeyError):  # Reading that variable reports it.
                    hidden.add(encode_slice_key(key_text(table_key), spec))
        self._keys = [key_text(table_key) for table_key in self._entries if table_key not in hidden]

    @property
    def num_shards(self) -> int:
        """Number of data files."""
        return self.header.num_shards

    def keys(self) -> List[str]:
        """Full-variable keys in index (bytewise) order; slice keys of partitioned variables are left out."""
        return list(self._keys)

    def raw_items(self) -> Iterator[Tuple[bytes, Entry]]:
        """Every (table key, entry) but the header, slice keys included, in key order."""
        return iter(self._entries.items())

    def __contains__(self, key: Key) -> bool:
        return key_bytes(key) in self._entries

    def __len__(self) -> int:
        return len(self._keys)

    def entry(self, key: Key) -> Entry:
        """Return the index entry of ``key`` (a slice key as ``bytes`` works too).

        Raises:
            VariableNotFoundError: No such key.
        """
        entry = self._entries.get(key_bytes(key))
        if entry is None:
            raise VariableNotFoundError(f"Checkpoint {self.prefix} has no variable {key!r}.")
        return entry

    def shape(self, key: Key) -> Tuple[int, ...]:
        """Return the full shape of ``key``."""
        return self.entry(key).shape

    def dtype_name(self, key: Key) -> str:
        """Return the TensorFlow dtype name of ``key`` (``"float32"``, ``"string"``...)."""
        return lookup(self.entry(key).dtype).name

    def nbytes(self, key: Key) -> Optional[int]:
        """Return the size of the full tensor in bytes, or None for string and variant tensors."""
        entry = self.entry(key)
        itemsize = lookup(entry.dtype).itemsize
        return None if itemsize is None else itemsize * entry.num_elements

    def data_path(self, shard_id: int) -> str:
        """Return the path of data file ``shard_id``."""
        return data_path(self.prefix, shard_id, self.num_shards)

    def slice_entries(self, key: Key) -> List[SliceEntry]:
        """Return (slice key, extents, entry) for each stored slice of a partitioned variable.

        Raises:
            CorruptCheckpointError: A slice whose entry is missing.
        """
        entry = self.entry(key)
        name = key_text(key_bytes(key))
        out = []
        for spec in entry.slices:
            try:
                slice_key = encode_slice_key(name, spec)
            except SliceKeyError as error:
                raise corrupt(self.index_path, f"bad slice {spec} ({error})", name) from None
            slice_entry = self._entries.get(slice_key)
            if slice_entry is None:
                raise corrupt(self.index_path, f"the entry of slice {spec} is missing", name)
            out.append((slice_key, spec, slice_entry))
        return out

    def read(self, key: Key) -> np.ndarray:
        """Return the tensor ``key`` as a numpy array, after checking its crc32c.

        String tensors come back as object arrays of ``bytes``; a partitioned variable
        is assembled from its slices (each checked). The array owns its memory.

        Raises:
            VariableNotFoundError: No such key.
            CorruptCheckpointError: Damaged or missing bytes (the message names the file).
            UnsupportedCheckpointError: A dtype with no numpy form here (variant;
                bfloat16 / float8 without ml_dtypes), or a big-endian bundle.
            CheckpointNotFoundError: A missing data file.
        """
        entry = self.entry(key)
        name = key_text(key_bytes(key))
        if self.header.endianness == BIG_ENDIAN:
            raise unsupported(self.index_path, "big-endian bundle", "Re-save it on a little-endian machine.", name)
        if entry.slices:
            return self._read_partitioned(name, entry)
        return self._read_value(name, entry)

    def read_raw(self, key: Key) -> np.ndarray:
        """Return the stored bytes of ``key`` (a uint8 array), checked against its crc32c."""
        entry = self._unpartitioned(key)
        name = key_text(key_bytes(key))
        dtype = lookup(entry.dtype)
        if dtype.itemsize is None:
            return np.frombuffer(self._checked_structured(name, entry), dtype=np.uint8)
        return self._read_numeric(name, entry, dtype.itemsize)

    def iter_raw(self, key: Key, chunk_size: int = CHUNK_SIZE) -> Iterator[np.ndarray]:
        """Yield the stored bytes of ``key`` in uint8 chunks, in bounded memory.

        The crc32c is checked when the last chunk has been consumed: a mismatch raises
        ``CorruptCheckpointError`` from the iterator then, so a copy made from the
        chunks is good only if the iteration ran to its end. String and variant
        tensors are checked whole and come as one chunk. Chunks may be views of a
        memory map: copy one to keep it past the reader.
        """
        entry = self._unpartitioned(key)
        name = key_text(key_bytes(key))
        dtype = lookup(entry.dtype)
        if dtype.itemsize is None:
            yield np.frombuffer(self._checked_structured(name, entry), dtype=np.uint8)
            return
        self._check_numeric_size(name, entry, dtype.itemsize)
        file = self._file_for(name, entry)
        crc = 0
        for position in range(entry.offset, entry.offset + entry.size, max(chunk_size, 1)):
            chunk = file.read(position, min(chunk_size, entry.offset + entry.size - position))
            crc = _crc.extend(crc, chunk)
            yield chunk
            file.release(position, chunk.size)  # a streamed copy keeps no more than a chunk resident
        self._compare_crc(name, entry, crc)

    def verify(self, key: Key, chunk_size: int = CHUNK_SIZE) -> None:
        """Check ``key`` without decoding it, in bounded memory.

        Checks its crc32c; for a partitioned variable, how its slices fit together and
        the crc32c of every slice.
        """
        entry = self.entry(key)
        name = key_text(key_bytes(key))
        targets = [slice_key for slice_key, _, _ in self._slice_parts(name, entry)] if entry.slices else [key]
        for target in targets:
            for _ in self.iter_raw(target, chunk_size):
                pass

    def close(self) -> None:
        """Close the data files (idempotent)."""
        files, self._files = self._files, {}
        for file in files.values():
            file.close()

    def __enter__(self) -> "BundleReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _unpartitioned(self, key: Key) -> Entry:
        entry = self.entry(key)
        if entry.slices:
            raise UsageError(f"{key!r} is a partitioned variable: its bytes are in its slices (slice_entries()).")
        return entry

    def _file_for(self, name: str, entry: Entry) -> RandomAccessFile:
        """Open the data file of ``entry`` and check that the entry lies inside it."""
        if not 0 <= entry.shard_id < self.num_shards:
            raise corrupt(self.index_path, f"data file {entry.shard_id} of {self.num_shards} does not exist", name)
        file = self._files.get(entry.shard_id)
        if file is None:
            path = self.data_path(entry.shard_id)
            try:
                file = open_random_access(self.fs, path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                detail = f"data file {entry.shard_id} of the checkpoint {self.prefix} is missing"
                raise not_found(path, detail) from None
            self._files[entry.shard_id] = file
        if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > file.size:
            end = entry.offset + entry.size
            detail = f"bytes {entry.offset}..{end} lie past its end ({file.size} bytes): truncated?"
            raise corrupt(file.path, detail, name)
        return file

    def _read_numeric(self, name: str, entry: Entry, itemsize: int) -> np.ndarray:
        """Copy a numeric entry's bytes into a new uint8 array and check them there.

        Sizes are checked against the data file before anything is allocated, and the
        crc is computed on the copy, so what is returned is exactly what was checked.
        """
        self._check_numeric_size(name, entry, itemsize)
        file = self._file_for(name, entry)
        out = np.empty(entry.size, dtype=np.uint8)
        if file.readinto(entry.offset, out) != entry.size:
            raise corrupt(file.path, "short read", name)
        file.release(entry.offset, entry.size)  # the copy is what is returned; the mapped pages can go
        self._compare_crc(name, entry, _crc.value(out))
        return out

    def _compare_crc(self, name: str, entry: Entry, crc: int) -> None:
        if _crc.unmask(entry.crc32c) != crc:
            path = self.data_path(entry.shard_id)
            raise corrupt(path, f"{entry.size} bytes at offset {entry.offset} fail their crc32c check", name)

    def _check_numeric_size(self, name: str, entry: Entry, itemsize: int) -> None:
        if entry.size != entry.num_elements * itemsize:
            detail = f"{entry.size} bytes stored for {entry.num_elements} elements of {itemsize} bytes"
            raise corrupt(self.index_path, detail, name)

    def _checked_structured(self, name: str, entry: Entry) -> bytes:
        """Read a string / variant entry whole and check its crc32c; return its bytes."""
        if self.header.endianness == BIG_ENDIAN:
            fix = "Re-save it on a little-endian machine."
            raise unsupported(self.index_path, "big-endian string tensor", fix, name)
        if entry.dtype not in (STRING, VARIANT):
            fix = "It is not a tensor that a checkpoint can hold; re-save the checkpoint."
            raise unsupported(self.index_path, f"a {lookup(entry.dtype).name} entry", fix, name)
        file = self._file_for(name, entry)
        data = bytes(file.read(entry.offset, entry.size))
        if entry.dtype == STRING:
            crc = decode_strings(data, entry.num_elements, file.path, name)[1]
        else:
            crc = check_variants(data, entry.num_elements, file.path, name)
        self._compare_crc(name, entry, crc)
        return data

    def _read_value(self, name: str, entry: Entry) -> np.ndarray:
        dtype = lookup(entry.dtype)
        if dtype.enum == STRING:
            file = self._file_for(name, entry)
            elements, crc = decode_strings(file.read(entry.offset, entry.size), entry.num_elements, file.path, name)
            self._compare_crc(name, entry, crc)
            out = np.empty(len(elements), dtype=object)
            out[:] = elements
            return out.reshape(entry.shape)
        if dtype.itemsize is None:
            fix = "Copy its bytes with read_raw / iter_raw, or read it with TensorFlow."
            raise unsupported(self.index_path, f"{dtype.name} tensors have no numpy form", fix, name)
        numpy = numpy_dtype(entry.dtype)
        return self._read_numeric(name, entry, dtype.itemsize).view(numpy).reshape(entry.shape)

    def _slice_parts(self, name: str, entry: Entry) -> List[Tuple[bytes, Box, Entry]]:
        """Check how a partitioned variable's slices fit together; return (slice key, box, entry) each.

        Each slice must lie inside the full shape, have a matching entry (dtype, shape,
        bytes inside its data file), and the slices must tile the tensor exactly once.
        """
        parts = []
        for slice_key, spec, slice_entry in self.slice_entries(name):
            box = slice_box(spec, entry.shape)
            if box is None:
                raise corrupt(self.index_path, f"slice {spec} does not fit the shape {entry.shape}", name)
            shape = tuple(stop - start for start, stop in box)
            if slice_entry.slices or slice_entry.dtype != entry.dtype or slice_entry.shape != shape:
                raise corrupt(self.index_path, f"the entry of slice {spec} does not match it", name)
            self._file_for(name, slice_entry)  # Bounds before the full tensor is allocated.
            parts.append((slice_key, box, slice_entry))
        if not tiles([box for _, box, _ in parts], entry.shape):
            raise corrupt(self.index_path, "its slices overlap or leave part of it uncovered", name)
        return parts

    def _read_partitioned(self, name: str, entry: Entry) -> np.ndarray:
        dtype = lookup(entry.dtype)
        parts = self._slice_parts(name, entry)
        out = np.empty(entry.shape, dtype=object if dtype.enum == STRING else numpy_dtype(entry.dtype))
        for _, box, slice_entry in parts:
            out[tuple(slice(start, stop) for start, stop in box)] = self._read_value(name, slice_entry)
        return out

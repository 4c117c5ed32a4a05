"""Write a V2 checkpoint ("tensor bundle") that TensorFlow reads as its own.

Tensor bytes are streamed to the data file(s) as they are added; :meth:`BundleWriter.finish`
then writes the index, last, so a reader never sees an index that points at data
not yet written. Where the files go is the caller's choice (``index_path`` and
``data_paths``): write under temporary names and rename them into place for an
atomic save.
"""

from __future__ import annotations

import contextlib
import posixpath
from typing import IO, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from partialsaver.errors import UsageError
from partialsaver.format import _crc, naming
from partialsaver.format.bundle import BundleReader
from partialsaver.format.codec import check_variants, decode_strings, encode_strings, numeric_bytes
from partialsaver.format.dtypes import STRING, VARIANT, enum_for_array
from partialsaver.format.errors import corrupt
from partialsaver.format.fs import LOCAL, FileSystem
from partialsaver.format.index import Key, encode_index, key_bytes, key_text
from partialsaver.format.ordered_code import encode_slice_key
from partialsaver.format.proto import Entry, Extent, Header
from partialsaver.format.slices import is_full_slice, slice_box, to_spec

__all__ = ["BundleWriter"]

Chunks = Union[bytes, np.ndarray, Iterable[Union[bytes, np.ndarray]]]


class BundleWriter:
    """Writes one bundle: ``add`` tensors, then ``finish`` (or use it as a context manager).

    Args:
        prefix: The checkpoint prefix; files are ``prefix.index`` and
            ``prefix.data-0000i-of-0000n`` unless given below.
        fs: The file system to write to.
        num_shards: Number of data files; pass ``shard_id`` to the ``add`` methods.
        index_path: Where to write the index instead (e.g. a temporary name).
        data_paths: Where to write each data file instead.
        header: The header to write; default ``Header(num_shards)``, as TensorFlow writes.

    Raises:
        UsageError: Inconsistent shard counts.
    """

    def __init__(
        self,
        prefix: str,
        fs: FileSystem = LOCAL,
        *,
        num_shards: int = 1,
        index_path: Optional[str] = None,
        data_paths: Optional[Sequence[str]] = None,
        header: Optional[Header] = None,
    ) -> None:
        if num_shards < 1:
            raise UsageError(f"num_shards must be at least 1, not {num_shards}.")
        self.prefix = prefix
        self.fs = fs
        self.header = header if header is not None else Header(num_shards=num_shards)
        self.index_path = index_path or naming.index_path(prefix)
        self.data_paths = list(data_paths) if data_paths is not None else naming.data_paths(prefix, num_shards)
        if len(self.data_paths) != num_shards or self.header.num_shards != num_shards:
            counts = f"{num_shards} shards, {len(self.data_paths)} data paths, header {self.header.num_shards}"
            raise UsageError(f"Inconsistent shard counts: {counts}.")
        self._entries: Dict[bytes, Entry] = {}
        self._files: Dict[int, IO[bytes]] = {}
        self._sizes = [0] * num_shards
        self._state = "open"  # "open" -> "finished" / "aborted"; "failed" after a write error.
        self._written: List[str] = []

    @property
    def entries(self) -> Dict[bytes, Entry]:
        """The entries added so far, by table key (a copy)."""
        return dict(self._entries)

    def add(self, key: Key, value: object, *, dtype: Union[str, int, None] = None, shard_id: int = 0) -> Entry:
        """Write a tensor under ``key`` and return its entry.

        Args:
            key: The checkpoint key (variable name).
            value: A numpy array (or anything ``np.asarray`` takes): numeric, bool,
                ml_dtypes (bfloat16, float8...), or bytes / str elements for a string
                tensor (str is stored as UTF-8; a fixed-width ``S`` array has already
                lost trailing NUL bytes, so use an object array to keep them). 0-d and
                empty arrays work.
            dtype: TensorFlow dtype to store as, when not inferred: ``"qint8"`` for an
                int8 array, ``"bfloat16"`` for a uint16 array of bfloat16 bits...
            shard_id: The data file to write to.

        Raises:
            UsageError: A duplicate or empty key, an unsupported value, a bad shard.
        """
        table_key = self._new_key(key)
        entry = self._write_array(np.asarray(value), dtype, shard_id)
        self._entries[table_key] = entry
        return entry

    def add_slice(
        self,
        key: Key,
        full_shape: Sequence[int],
        extents: Iterable[Union[Extent, Tuple[int, Optional[int]]]],
        value: object,
        *,
        dtype: Union[str, int, None] = None,
        shard_id: int = 0,
    ) -> Entry:
        """Write one slice of a partitioned variable, as TensorFlow's ``BundleWriter::AddSlice``.

        The full variable's entry (``key``, shape ``full_shape``, no data) collects the
        slices; the slice's values go under its slice key. A slice covering the whole
        tensor is stored as a plain entry, as TensorFlow does. ``Extent(start, None)``
        stands for a whole dimension (``-`` in a slice spec), ``Extent(0, n)`` for an
        explicit one: they select the same values but key differently.

        TensorFlow 2.21 assembles a partitioned variable from slices other than the one
        it asks for only for float32/64, int8/16/32/64, uint8, bool, complex, bfloat16,
        qint8, quint8 and qint32: other dtypes (string, float16, uint16/32/64, float8...)
        restore only into the same partitioning, and ``tf.train.load_variable`` fails.

        Returns:
            The slice's entry.

        Raises:
            UsageError: A slice outside ``full_shape``, a value of another shape, or a
                dtype / shape that disagrees with earlier slices.
        """
        spec = to_spec(extents)
        full_shape = tuple(int(dim) for dim in full_shape)
        array = np.asarray(value)
        box = slice_box(spec, full_shape)
        if box is None or array.shape != tuple(stop - start for start, stop in box):
            raise UsageError(f"Slice {spec} of {key!r} does not fit shape {full_shape} with a {array.shape} value.")
        if is_full_slice(box, full_shape):
            return self.add(key, array, dtype=dtype, shard_id=shard_id)
        table_key = key_bytes(key)
        full_entry = self._entries.get(table_key)
        enum = enum_for_array(array, dtype)
        if full_entry is not None and (
            not full_entry.slices or full_entry.dtype != enum or full_entry.shape != full_shape
        ):
            raise UsageError(f"Slice {spec} of {key!r} disagrees with what was added under that key before.")
        slice_key = self._new_key(encode_slice_key(key_text(table_key), spec))
        entry = self._write_array(array, enum, shard_id)
        self._entries[slice_key] = entry
        slices = (full_entry.slices if full_entry is not None else ()) + (spec,)
        self._entries[table_key] = Entry(dtype=enum, shape=full_shape, slices=slices)
        return entry

    def add_raw(self, key: Key, entry: Entry, data: Chunks, *, shard_id: int = 0, check: bool = False) -> Entry:
        """Write an entry's stored bytes as they are, e.g. copied from another bundle.

        The crc32c is carried over from ``entry``, not recomputed, unless ``check``.
        Feed ``BundleReader.iter_raw`` to copy in bounded memory: it raises after its
        last chunk on a crc mismatch, which leaves this writer failed (``abort`` it).

        Args:
            key: The key to store under (a slice key as ``bytes`` works too).
            entry: The source entry (dtype, shape, size, crc32c); not a partitioned one.
            data: The bytes, as one buffer or an iterable of chunks.
            shard_id: The data file to write to.
            check: Recompute the crc32c of ``data`` and refuse a mismatch.

        Raises:
            UsageError: A partitioned entry, or data of another size than ``entry.size``.
            CorruptCheckpointError: ``check`` found a crc mismatch.
        """
        if entry.slices:
            raise UsageError(f"{key!r} is a partitioned variable: copy it with copy_from().")
        table_key = self._new_key(key)
        name = key_text(table_key)
        chunks: Iterable[Any] = [data] if isinstance(data, (bytes, bytearray, memoryview, np.ndarray)) else data
        if entry.dtype in (STRING, VARIANT) and check:
            # Their crc is not that of the bytes: decode the (small) entry whole.
            whole = b"".join(bytes(chunk) for chunk in chunks)
            decode = decode_strings if entry.dtype == STRING else check_variants
            checked = decode(whole, entry.num_elements, "the bytes to copy", name)
            crc = checked[1] if isinstance(checked, tuple) else checked
            if crc != _crc.unmask(entry.crc32c):
                raise corrupt("the bytes to copy", "they fail the source's crc32c check", name)
            chunks, check = [whole], False
        offset, size, crc = self._append(shard_id, chunks)
        if size != entry.size:
            self._state = "failed"
            raise UsageError(f"Got {size} bytes for {key!r}, whose entry says {entry.size}.")
        if check and crc != _crc.unmask(entry.crc32c):
            self._state = "failed"
            raise corrupt(self.data_paths[shard_id], "copied bytes fail the source's crc32c check", name)
        moved = (entry.shard_id, entry.offset) != (shard_id, offset)
        copied = entry.replace(shard_id=shard_id, offset=offset) if moved else entry  # Keep raw bytes if unmoved.
        self._entries[table_key] = copied
        return copied

    def add_entry(self, key: Key, entry: Entry) -> None:
        """Add an index entry with no data written (such as the full entry of a partitioned variable)."""
        self._entries[self._new_key(key)] = entry

    def copy_from(self, reader: BundleReader, key: str, new_key: Optional[str] = None, *, shard_id: int = 0) -> None:
        """Copy the variable ``key`` of ``reader`` byte for byte (all slices of a partitioned one), checking crcs.

        Args:
            reader: The source bundle.
            key: The variable's key there.
            new_key: The key to store it under here (default ``key``); slice keys follow.
            shard_id: The data file to write to.
        """
        target = key if new_key is None else new_key
        entry = reader.entry(key)
        if not entry.slices:
            self.add_raw(target, entry, reader.iter_raw(key), shard_id=shard_id)
            return
        table_key = self._new_key(target)  # Refuse a duplicate before copying any slice.
        for _, spec, slice_entry in reader.slice_entries(key):
            self.add_raw(encode_slice_key(target, spec), slice_entry, reader.iter_raw(encode_slice_key(key, spec)),
                         shard_id=shard_id)  # fmt: skip
        self._entries[table_key] = entry

    def finish(self) -> None:
        """Close the data files (creating empty ones for unused shards), then write the index.

        Raises:
            UsageError: Called twice, after ``abort``, or after a failed write.
        """
        self._require_open()
        try:
            for shard_id in range(len(self.data_paths)):
                self._file(shard_id)
            for file in self._files.values():
                file.close()
            self._files = {}
            data = encode_index(self.header, self._entries)
            self._written.append(self.index_path)
            with self.fs.open(self.index_path, "wb") as file:
                file.write(data)
        except BaseException:
            self._state = "failed"
            raise
        self._state = "finished"

    def abort(self) -> None:
        """Close and delete every file this writer created (idempotent; nothing once finished)."""
        if self._state == "finished":
            return  # The files are a complete checkpoint now: the caller's, not ours to delete.
        for file in self._files.values():
            with contextlib.suppress(OSError):
                file.close()
        self._files = {}
        for path in self._written:
            with contextlib.suppress(OSError):
                self.fs.remove(path)
        self._written = []
        self._state = "aborted"

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.finish()

    def _require_open(self) -> None:
        if self._state != "open":
            state = self._state
            raise UsageError(f"This BundleWriter is {state}: start a new one (abort() cleans up after a failure).")

    def _new_key(self, key: Key) -> bytes:
        self._require_open()
        if not isinstance(key, (str, bytes)):
            raise UsageError(f"A checkpoint key is a str, not {type(key).__name__}.")
        table_key = key_bytes(key)
        if not table_key:
            raise UsageError("The empty key is reserved for the bundle header.")
        if table_key in self._entries:
            raise UsageError(f"Duplicate checkpoint key {key!r}.")
        return table_key

    def _write_array(self, array: np.ndarray, dtype: Union[str, int, None], shard_id: int) -> Entry:
        enum = enum_for_array(array, dtype)
        if enum == STRING:
            chunks, _, crc = encode_strings(array)
            offset, size, _ = self._append(shard_id, chunks)
        else:
            offset, size, crc = self._append(shard_id, [numeric_bytes(array)])
        return Entry(dtype=enum, shape=tuple(array.shape), shard_id=shard_id, offset=offset, size=size,
                     crc32c=_crc.mask(crc))  # fmt: skip

    def _file(self, shard_id: int) -> IO[bytes]:
        if not isinstance(shard_id, int) or not 0 <= shard_id < len(self.data_paths):
            raise UsageError(f"shard_id must be in [0, {len(self.data_paths)}), not {shard_id!r}.")
        file = self._files.get(shard_id)
        if file is None:
            path = self.data_paths[shard_id]
            self.fs.makedirs(posixpath.dirname(path))
            self._written.append(path)
            file = self._files[shard_id] = self.fs.open(path, "wb")
        return file

    def _append(self, shard_id: int, chunks: Iterable[Any]) -> Tuple[int, int, int]:
        """Write chunks at the end of a data file; return (offset, size, crc32c of the bytes written)."""
        file = self._file(shard_id)
        offset = self._sizes[shard_id]
        crc = 0
        try:
            for chunk in chunks:
                if isinstance(chunk, np.ndarray):
                    chunk = np.ascontiguousarray(chunk).ravel().view(np.uint8)
                elif not isinstance(chunk, bytes):
                    chunk = bytes(chunk)
                # The crc is taken from the very object written, so they agree.
                crc = _crc.extend(crc, chunk)
                file.write(chunk.data if isinstance(chunk, np.ndarray) else chunk)
                self._sizes[shard_id] += len(chunk)
        except BaseException:
            self._state = "failed"  # The data file holds part of a tensor now.
            raise
        return offset, self._sizes[shard_id] - offset, crc

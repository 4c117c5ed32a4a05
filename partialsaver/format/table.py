"""TensorFlow's SSTable (``tensorflow/core/lib/io/table*``), the container of ``.index`` files.

Layout: data blocks, an (empty) metaindex block, an index block, then a 48-byte
footer: the metaindex and index block handles (varint64 offset and size each),
zero padding to 40 bytes, and the magic number. Each block is followed by a
5-byte trailer: the compression type (0: none) and the masked crc32c of the block
and that type byte. A block holds prefix-compressed entries (varint32 shared key
bytes, varint32 unshared key bytes, varint32 value size, the unshared key bytes,
the value), then the uint32 offsets of its restart points (entries stored with no
shared prefix, every ``restart_interval`` entries) and their count.

:func:`build_table` writes what TensorFlow's TableBuilder writes for the same
sorted items with its defaults (256 KiB blocks, restart interval 16 for data
blocks and 1 for the index block, shortened index keys), byte for byte.
:func:`read_table` checks every crc, handle, length and the key order, and raises
``CorruptCheckpointError`` naming the file for any damage.
"""

from __future__ import annotations

import struct
from typing import Iterable, List, Tuple

from partialsaver.format import _crc
from partialsaver.format._wire import WireError, decode_varint, encode_varint
from partialsaver.format.errors import corrupt, unsupported

__all__ = ["BLOCK_SIZE", "FOOTER_SIZE", "MAGIC", "RESTART_INTERVAL", "build_table", "read_table"]

BLOCK_SIZE = 256 * 1024  # TensorFlow's table::Options default (LevelDB's is 4 KiB).
RESTART_INTERVAL = 16
FOOTER_SIZE = 48
MAGIC = 0xDB4775248B80FB57
_HANDLES_SIZE = 40  # Two varint64 handles at most 10 bytes each, padded.
_TRAILER_SIZE = 5
_NO_COMPRESSION = 0
_SNAPPY = 1

Item = Tuple[bytes, bytes]


def _read_block(data: bytes, offset: int, size: int, limit: int, path: str, what: str) -> Tuple[int, int]:
    """Check the block at ``offset`` and return the span of its contents."""
    if offset < 0 or size < 0 or offset + size + _TRAILER_SIZE > limit:
        raise corrupt(path, f"{what} block handle ({offset}, {size}) points past the end of the table")
    trailer = offset + size
    compression = data[trailer]
    stored_crc = struct.unpack_from("<I", data, trailer + 1)[0]
    if _crc.unmask(stored_crc) != _crc.value(data[offset : trailer + 1]):
        raise corrupt(path, f"{what} block at offset {offset} fails its crc32c check")
    if compression == _SNAPPY:
        raise unsupported(path, "snappy-compressed index block", "Re-save it with TensorFlow >= 1.2 defaults.")
    if compression != _NO_COMPRESSION:
        raise corrupt(path, f"{what} block at offset {offset} has unknown compression type {compression}")
    return offset, trailer


def _parse_block(data: bytes, start: int, end: int, path: str, what: str) -> List[Item]:
    """Decode all entries of a checked block; keys must strictly increase."""
    if end - start < 4:
        raise corrupt(path, f"{what} block at offset {start} is shorter than its restart count")
    num_restarts = struct.unpack_from("<I", data, end - 4)[0]
    if num_restarts > (end - start - 4) // 4:
        raise corrupt(path, f"{what} block at offset {start} claims {num_restarts} restart points")
    entries_end = end - 4 - 4 * num_restarts
    for index in range(num_restarts):
        restart = struct.unpack_from("<I", data, entries_end + 4 * index)[0]
        if restart >= max(entries_end - start, 1):
            raise corrupt(path, f"{what} block at offset {start} has a restart point past its entries")
    items: List[Item] = []
    key = b""
    position = start
    try:
        while position < entries_end:
            shared, position = decode_varint(data, position, entries_end)
            unshared, position = decode_varint(data, position, entries_end)
            value_size, position = decode_varint(data, position, entries_end)
            if shared > len(key) or unshared + value_size > entries_end - position:
                raise WireError("entry runs past its block")
            new_key = key[:shared] + data[position : position + unshared]
            position += unshared
            if items and new_key <= key:
                raise WireError(f"keys out of order ({key!r} then {new_key!r})")
            key = new_key
            items.append((key, data[position : position + value_size]))
            position += value_size
    except WireError as error:
        raise corrupt(path, f"{what} block at offset {start}: {error}") from None
    return items


def read_table(data: bytes, path: str) -> List[Item]:
    """Return every (key, value) of an SSTable, in key order.

    Args:
        data: The whole table file.
        path: The file's name, for error messages.

    Raises:
        CorruptCheckpointError: A short file, a bad magic number, a handle out of
            range, a crc mismatch, a malformed block, keys out of order or an index
            entry that does not bound its data block.
    """
    data = bytes(data)
    if len(data) < FOOTER_SIZE:
        raise corrupt(path, f"{len(data)} bytes is too short for a TensorFlow checkpoint index")
    footer = len(data) - FOOTER_SIZE
    if struct.unpack_from("<Q", data, footer + _HANDLES_SIZE)[0] != MAGIC:
        raise corrupt(path, "not a TensorFlow checkpoint index (bad magic number)")
    try:
        handles_end = footer + _HANDLES_SIZE
        meta_offset, position = decode_varint(data, footer, handles_end)
        meta_size, position = decode_varint(data, position, handles_end)
        index_offset, position = decode_varint(data, position, handles_end)
        index_size, position = decode_varint(data, position, handles_end)
    except WireError as error:
        raise corrupt(path, f"bad block handle in the footer ({error})") from None
    # TensorFlow never reads the metaindex block (it is always empty); it is checked
    # all the same, as damage there means a damaged file.
    _read_block(data, meta_offset, meta_size, footer, path, "metaindex")
    start, end = _read_block(data, index_offset, index_size, footer, path, "index")
    items: List[Item] = []
    previous_index_key = None
    for index_key, handle in _parse_block(data, start, end, path, "index"):
        try:
            block_offset, position = decode_varint(handle, 0, len(handle))
            block_size, position = decode_varint(handle, position, len(handle))
        except WireError as error:
            raise corrupt(path, f"bad data block handle ({error})") from None
        block_start, block_end = _read_block(data, block_offset, block_size, footer, path, "data")
        block_items = _parse_block(data, block_start, block_end, path, "data")
        if not block_items:
            continue
        # Lookups binary-search the index keys: each must bound its block's keys.
        first_key, last_key = block_items[0][0], block_items[-1][0]
        if (
            (items and first_key <= items[-1][0])
            or last_key > index_key
            or (previous_index_key is not None and first_key <= previous_index_key)
        ):
            raise corrupt(path, f"index key {index_key!r} does not bound the data block at offset {block_offset}")
        previous_index_key = index_key
        items.extend(block_items)
    return items


class _BlockBuilder:
    def __init__(self, restart_interval: int) -> None:
        self.restart_interval = restart_interval
        self.reset()

    def reset(self) -> None:
        self.buffer = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""
        self.empty = True

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.restart_interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        self.buffer += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buffer += key[shared:] + value
        self.last_key = key
        self.counter += 1
        self.empty = False

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        tail = struct.pack(f"<{len(self.restarts)}I", *self.restarts) + struct.pack("<I", len(self.restarts))
        return bytes(self.buffer) + tail


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key k with start <= k < limit (TensorFlow's FindShortestSeparator)."""
    common = 0
    while common < min(len(start), len(limit)) and start[common] == limit[common]:
        common += 1
    if common < min(len(start), len(limit)):
        byte = start[common]
        if byte < 0xFF and byte + 1 < limit[common]:
            return start[:common] + bytes([byte + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    """A short key >= ``key`` (TensorFlow's FindShortSuccessor)."""
    for index, byte in enumerate(key):
        if byte != 0xFF:
            return key[:index] + bytes([byte + 1])
    return key


def build_table(
    items: Iterable[Item],
    *,
    block_size: int = BLOCK_SIZE,
    restart_interval: int = RESTART_INTERVAL,
    shorten_index_keys: bool = True,
) -> bytes:
    """Encode (key, value) pairs, in strictly increasing bytewise key order, as an SSTable.

    With the defaults the result is byte-identical to TensorFlow's TableBuilder
    output. TensorFlow reads tables built with other block sizes or restart
    intervals, or with full (unshortened) index keys, too.

    Raises:
        ValueError: Keys not strictly increasing, or a non-positive size / interval.
    """
    if block_size <= 0 or restart_interval <= 0:
        raise ValueError("block_size and restart_interval must be positive")
    out = bytearray()
    data_block = _BlockBuilder(restart_interval)
    index_block = _BlockBuilder(1)

    def write_block(block: _BlockBuilder) -> bytes:
        contents = block.finish()
        handle = encode_varint(len(out)) + encode_varint(len(contents))
        out.extend(contents)
        out.append(_NO_COMPRESSION)
        out.extend(struct.pack("<I", _crc.mask(_crc.value(contents + bytes([_NO_COMPRESSION])))))
        block.reset()
        return handle

    pending_handle = b""
    last_key = b""
    first = True
    for key, value in items:
        key, value = bytes(key), bytes(value)
        if not first and key <= last_key:
            raise ValueError(f"table keys must be strictly increasing: {last_key!r} then {key!r}")
        # TensorFlow flushes before an entry at least twice the block size.
        if not first and len(key) + len(value) >= 2 * block_size and not data_block.empty:
            pending_handle = write_block(data_block)
        if pending_handle:
            index_block.add(_shortest_separator(last_key, key) if shorten_index_keys else last_key, pending_handle)
            pending_handle = b""
        last_key = key
        first = False
        data_block.add(key, value)
        if data_block.size_estimate() >= block_size:
            pending_handle = write_block(data_block)
    if not data_block.empty:
        pending_handle = write_block(data_block)
    meta_handle = write_block(_BlockBuilder(restart_interval))
    if pending_handle:
        index_block.add(_short_successor(last_key) if shorten_index_keys else last_key, pending_handle)
    index_handle = write_block(index_block)
    footer = (meta_handle + index_handle).ljust(_HANDLES_SIZE, b"\x00") + struct.pack("<Q", MAGIC)
    out.extend(footer)
    return bytes(out)

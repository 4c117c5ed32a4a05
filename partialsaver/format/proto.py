"""BundleHeaderProto and BundleEntryProto, encoded and decoded by hand.

Field numbers (``tensorflow/core/protobuf/tensor_bundle.proto`` and the protos it uses):

* BundleHeaderProto: num_shards 1, endianness 2, version 3 (VersionDef: producer 1,
  min_consumer 2, bad_consumers 3).
* BundleEntryProto: dtype 1, shape 2 (TensorShapeProto: dim 2 {size 1, name 2},
  unknown_rank 3), shard_id 3, offset 4, size 5, crc32c 6 (fixed32), slices 7
  (TensorSliceProto: extent 1 {start 1, length 2 (in a oneof, so its presence counts)}).

Encoding follows protobuf's deterministic serialisation (fields in number order,
proto3 defaults omitted, ``shape`` and ``version`` always present), which makes an
encoded entry byte-identical to TensorFlow's. Decoding skips unknown fields, and
turns any malformed byte into a ``CorruptCheckpointError``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, NamedTuple, Optional, Tuple

from partialsaver.format import _wire
from partialsaver.format._wire import FIXED32, LENGTH_DELIMITED, VARINT, WireError
from partialsaver.format.errors import corrupt

__all__ = [
    "BIG_ENDIAN",
    "LITTLE_ENDIAN",
    "MAX_RANK",
    "Entry",
    "Extent",
    "Header",
    "SliceSpec",
    "decode_entry",
    "decode_header",
]

LITTLE_ENDIAN = 0
BIG_ENDIAN = 1
MAX_RANK = 254  # TensorShape's limit: a longer shape is not a valid tensor.
_INT64_MAX = (1 << 63) - 1


class Extent(NamedTuple):
    """One dimension of a tensor slice.

    Attributes:
        start: First index in that dimension.
        length: Number of indices, or None for the whole dimension (TensorFlow's
            ``-``; the proto then has no ``length`` field). ``Extent(0, None)`` and
            ``Extent(0, dim)`` select the same values but encode (and key) differently,
            so the difference is kept.
    """

    start: int
    length: Optional[int]


SliceSpec = Tuple[Extent, ...]


@dataclass(frozen=True)
class Header:
    """The BundleHeaderProto stored under the empty key.

    Attributes:
        num_shards: Number of data files.
        endianness: ``LITTLE_ENDIAN`` (0) or ``BIG_ENDIAN`` (1).
        producer, min_consumer, bad_consumers: The format VersionDef.
        raw: The encoded proto (as read, or encoded from the fields).
    """

    num_shards: int = 1
    endianness: int = LITTLE_ENDIAN
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: Tuple[int, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", _encode_header(self))


@dataclass(frozen=True)
class Entry:
    """One BundleEntryProto: where a tensor's bytes are and how to check them.

    A partitioned variable has one entry under its name with ``slices`` set (and no
    data: ``shard_id``, ``offset``, ``size``, ``crc32c`` are 0), plus one ordinary
    entry per slice under the slice's key (see :mod:`partialsaver.format.ordered_code`).

    Attributes:
        dtype: TensorFlow DataType enum number (1 is float32; see ``dtypes``).
        shape: Full tensor shape; ``()`` for a scalar.
        shard_id: Index of the data file holding the bytes.
        offset: Byte offset of the tensor in that data file.
        size: Number of bytes stored.
        crc32c: Masked crc32c of the tensor, exactly as stored.
        slices: The stored slices of a partitioned variable, in stored order.
        raw: The encoded proto, as read (unknown fields included). Build changed
            entries with :meth:`replace`, which re-encodes; ``dataclasses.replace``
            would keep the old bytes.
    """

    dtype: int
    shape: Tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    slices: Tuple[SliceSpec, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", _encode_entry(self))

    def replace(self, **changes: Any) -> "Entry":
        """Return a copy with ``changes`` applied and re-encoded (unknown fields are dropped)."""
        return dataclasses.replace(self, raw=b"", **changes)

    @property
    def num_elements(self) -> int:
        """Number of elements of the full tensor."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def _encode_header(header: Header) -> bytes:
    version = b""
    if header.producer:
        version += _wire.encode_tag(1, VARINT) + _wire.encode_varint(header.producer)
    if header.min_consumer:
        version += _wire.encode_tag(2, VARINT) + _wire.encode_varint(header.min_consumer)
    if header.bad_consumers:  # proto3 packs repeated scalars.
        packed = b"".join(_wire.encode_varint(number) for number in header.bad_consumers)
        version += _wire.encode_length_delimited(3, packed)
    out = b""
    if header.num_shards:
        out += _wire.encode_tag(1, VARINT) + _wire.encode_varint(header.num_shards)
    if header.endianness:
        out += _wire.encode_tag(2, VARINT) + _wire.encode_varint(header.endianness)
    return out + _wire.encode_length_delimited(3, version)


def _encode_extent(extent: Extent) -> bytes:
    out = b""
    if extent.start:
        out += _wire.encode_tag(1, VARINT) + _wire.encode_varint(extent.start)
    if extent.length is not None:  # A oneof member: written even when 0.
        out += _wire.encode_tag(2, VARINT) + _wire.encode_varint(extent.length)
    return out


def _encode_entry(entry: Entry) -> bytes:
    shape = b"".join(
        _wire.encode_length_delimited(2, _wire.encode_tag(1, VARINT) + _wire.encode_varint(dim) if dim else b"")
        for dim in entry.shape
    )
    out = b""
    if entry.dtype:
        out += _wire.encode_tag(1, VARINT) + _wire.encode_varint(entry.dtype)
    out += _wire.encode_length_delimited(2, shape)
    for number, value in ((3, entry.shard_id), (4, entry.offset), (5, entry.size)):
        if value:
            out += _wire.encode_tag(number, VARINT) + _wire.encode_varint(value)
    if entry.crc32c:
        out += _wire.encode_tag(6, FIXED32) + (entry.crc32c & 0xFFFFFFFF).to_bytes(4, "little")
    for spec in entry.slices:
        extents = b"".join(_wire.encode_length_delimited(1, _encode_extent(extent)) for extent in spec)
        out += _wire.encode_length_delimited(7, extents)
    return out


def _decode_version(raw: bytes, start: int, end: int, values: dict) -> None:
    for number, wire_type, value in _wire.iter_fields(raw, start, end):
        if number in (1, 2) and wire_type == VARINT:
            values["producer" if number == 1 else "min_consumer"] = _wire.to_int32(value)
        elif number == 3 and wire_type == VARINT:
            values["bad_consumers"].append(_wire.to_int32(value))
        elif number == 3 and wire_type == LENGTH_DELIMITED:
            position, packed_end = _wire.span(value)
            while position < packed_end:
                consumer, position = _wire.decode_varint(raw, position, packed_end)
                values["bad_consumers"].append(_wire.to_int32(consumer))


def decode_header(raw: bytes, path: str) -> Header:
    """Decode the header entry of the index file ``path``.

    Raises:
        CorruptCheckpointError: The bytes are not a valid BundleHeaderProto.
    """
    values: dict = {"num_shards": 0, "endianness": 0, "producer": 0, "min_consumer": 0, "bad_consumers": []}
    try:
        for number, wire_type, value in _wire.iter_fields(raw, 0, len(raw)):
            if number == 1 and wire_type == VARINT:
                values["num_shards"] = _wire.to_int32(value)
            elif number == 2 and wire_type == VARINT:
                values["endianness"] = _wire.to_int32(value)
            elif number == 3 and wire_type == LENGTH_DELIMITED:
                _decode_version(raw, *_wire.span(value), values)
    except WireError as error:
        raise corrupt(path, f"unparseable header entry ({error})") from None
    values["bad_consumers"] = tuple(values["bad_consumers"])
    return Header(raw=bytes(raw), **values)


def _decode_shape(raw: bytes, start: int, end: int, dims: List[int]) -> bool:
    """Append the dims of a TensorShapeProto to ``dims``; return its unknown_rank flag."""
    unknown_rank = False
    for number, wire_type, value in _wire.iter_fields(raw, start, end):
        if number == 2 and wire_type == LENGTH_DELIMITED:
            size = 0
            for dim_number, dim_wire_type, dim_value in _wire.iter_fields(raw, *_wire.span(value)):
                if dim_number == 1 and dim_wire_type == VARINT:
                    size = _wire.to_int64(dim_value)
            dims.append(size)
        elif number == 3 and wire_type == VARINT:
            unknown_rank = bool(value)
    return unknown_rank


def _decode_slice(raw: bytes, start: int, end: int) -> SliceSpec:
    extents = []
    for number, wire_type, value in _wire.iter_fields(raw, start, end):
        if number == 1 and wire_type == LENGTH_DELIMITED:
            extent_start, length = 0, None
            for extent_number, extent_wire_type, extent_value in _wire.iter_fields(raw, *_wire.span(value)):
                if extent_number == 1 and extent_wire_type == VARINT:
                    extent_start = _wire.to_int64(extent_value)
                elif extent_number == 2 and extent_wire_type == VARINT:
                    length = _wire.to_int64(extent_value)
            extents.append(Extent(extent_start, length))
    return tuple(extents)


def decode_entry(raw: bytes, path: str, key: Optional[str] = None) -> Entry:
    """Decode one BundleEntryProto read from the index file ``path``.

    The shape is checked as TensorFlow checks it before any read: known rank, at
    most 254 dims, no negative dim, an element count that fits in int64.

    Raises:
        CorruptCheckpointError: Malformed bytes or an invalid shape.
    """
    values: dict = {"dtype": 0, "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0}
    dims: List[int] = []
    slices = []
    unknown_rank = False
    try:
        for number, wire_type, value in _wire.iter_fields(raw, 0, len(raw)):
            if wire_type == VARINT and number in (1, 3):
                values["dtype" if number == 1 else "shard_id"] = _wire.to_int32(value)
            elif wire_type == VARINT and number in (4, 5):
                values["offset" if number == 4 else "size"] = _wire.to_int64(value)
            elif wire_type == FIXED32 and number == 6:
                values["crc32c"] = _wire.scalar(value)
            elif wire_type == LENGTH_DELIMITED and number == 2:
                # A repeated singular message merges, so a second shape extends the dims.
                unknown_rank |= _decode_shape(raw, *_wire.span(value), dims)
            elif wire_type == LENGTH_DELIMITED and number == 7:
                slices.append(_decode_slice(raw, *_wire.span(value)))
    except WireError as error:
        raise corrupt(path, f"unparseable index entry ({error})", key) from None
    if unknown_rank or len(dims) > MAX_RANK or any(dim < 0 for dim in dims):
        raise corrupt(path, f"invalid tensor shape {dims} (unknown rank: {unknown_rank})", key)
    count = 1
    for dim in dims:  # In order, like TensorFlow, which rejects an overflow on the way.
        count *= dim
        if count > _INT64_MAX:
            raise corrupt(path, f"tensor shape {dims} has more than 2**63 elements", key)
    return Entry(shape=tuple(dims), slices=tuple(slices), raw=bytes(raw), **values)

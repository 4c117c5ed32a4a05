"""The protocol-buffer wire format, only as much as the bundle protos need.

Decoding never trusts a length or an offset: every read is bounds-checked against
the end of the enclosing message, and every failure is a :class:`WireError` that
the callers turn into a ``CorruptCheckpointError`` naming the file and key.
"""

from __future__ import annotations

import struct
from typing import Iterator, Tuple, Union

__all__ = [
    "FIXED32",
    "FIXED64",
    "LENGTH_DELIMITED",
    "VARINT",
    "WireError",
    "decode_varint",
    "encode_length_delimited",
    "encode_tag",
    "encode_varint",
    "iter_fields",
    "to_int32",
    "to_int64",
]

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_UINT64_MASK = (1 << 64) - 1
_MAX_VARINT_BYTES = 10  # 64 bits at 7 bits per byte.
_MAX_FIELD_NUMBER = (1 << 29) - 1

# A decoded field's payload: an int for VARINT / FIXED32 / FIXED64, and the
# (start, end) span inside the buffer for LENGTH_DELIMITED (no copy).
FieldValue = Union[int, Tuple[int, int]]


class WireError(ValueError):
    """Malformed protocol-buffer or varint bytes (internal; never leaves the package)."""


def encode_varint(number: int) -> bytes:
    """Encode an integer as a base-128 varint; negative numbers as 64-bit two's complement."""
    number &= _UINT64_MASK
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def decode_varint(buffer: bytes, position: int, end: int) -> Tuple[int, int]:
    """Decode a varint (at most 64 bits) at ``position``, never reading at or past ``end``.

    Returns:
        The unsigned value and the position just after it.

    Raises:
        WireError: The varint runs past ``end`` or is longer than 10 bytes.
    """
    if position < end:
        byte = buffer[position]
        if byte < 0x80:  # The common one-byte case, without the loop.
            return byte, position + 1
    result = 0
    shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        if position >= end:
            raise WireError("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            # Bits past 64 in the tenth byte are dropped, as protobuf does.
            return result & _UINT64_MASK, position
        shift += 7
    raise WireError("varint longer than 10 bytes")


def encode_tag(field_number: int, wire_type: int) -> bytes:
    """Encode a field key (field number and wire type)."""
    return encode_varint((field_number << 3) | wire_type)


def encode_length_delimited(field_number: int, payload: bytes) -> bytes:
    """Encode a bytes / string / sub-message field."""
    return encode_tag(field_number, LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def iter_fields(buffer: bytes, start: int, end: int) -> Iterator[Tuple[int, int, FieldValue]]:
    """Yield ``(field_number, wire_type, value)`` for each field in ``buffer[start:end]``.

    Length-delimited values are yielded as their ``(start, end)`` span; the caller
    decodes them as a sub-message or bytes. Groups (deprecated, never used by the
    bundle protos) are rejected.

    Raises:
        WireError: Anything malformed: a zero field number, a length past ``end``,
            a truncated fixed-size value, an unknown wire type.
    """
    position = start
    while position < end:
        key, position = decode_varint(buffer, position, end)
        field_number = key >> 3
        wire_type = key & 7
        if field_number == 0 or field_number > _MAX_FIELD_NUMBER:
            raise WireError(f"invalid field number {field_number}")
        if wire_type == VARINT:
            value, position = decode_varint(buffer, position, end)
            yield field_number, wire_type, value
        elif wire_type == LENGTH_DELIMITED:
            length, position = decode_varint(buffer, position, end)
            if length > end - position:
                raise WireError(f"field {field_number} length {length} runs past the end of the message")
            yield field_number, wire_type, (position, position + length)
            position += length
        elif wire_type == FIXED32:
            if end - position < 4:
                raise WireError(f"truncated fixed32 field {field_number}")
            yield field_number, wire_type, struct.unpack_from("<I", buffer, position)[0]
            position += 4
        elif wire_type == FIXED64:
            if end - position < 8:
                raise WireError(f"truncated fixed64 field {field_number}")
            yield field_number, wire_type, struct.unpack_from("<Q", buffer, position)[0]
            position += 8
        else:
            raise WireError(f"unsupported wire type {wire_type} for field {field_number}")


def scalar(value: FieldValue) -> int:
    """The integer of a varint or fixed field (as ``iter_fields`` yields it)."""
    if not isinstance(value, int):
        raise WireError("a length-delimited field where a number belongs")
    return value


def span(value: FieldValue) -> Tuple[int, int]:
    """The (start, end) of a length-delimited field (as ``iter_fields`` yields it)."""
    if isinstance(value, int):
        raise WireError("a number where a length-delimited field belongs")
    return value


def to_int64(value: FieldValue) -> int:
    """Interpret a decoded varint as a signed 64-bit integer (two's complement)."""
    unsigned = scalar(value)
    return unsigned - (1 << 64) if unsigned >= (1 << 63) else unsigned


def to_int32(value: FieldValue) -> int:
    """Interpret a decoded varint as an int32 field: its low 32 bits, signed (as protobuf does)."""
    low = scalar(value) & 0xFFFFFFFF
    return low - (1 << 32) if low >= (1 << 31) else low

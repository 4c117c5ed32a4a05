"""Slice keys: where each stored slice of a partitioned variable lives in the index.

A slice key is TensorFlow's "ordered code" of, in turn: the number 0, the tensor
name, the rank, then a signed (start, length) pair per dimension, where a whole
dimension (no ``length`` in the TensorSliceProto) is written as length -1. It
starts with a ``\\x00`` byte, so slice keys sort between the header (key ``""``)
and every ordinary name.

* Unsigned numbers: one length byte, then the big-endian bytes without leading
  zeros (0 is the single byte ``\\x00``).
* Strings: ``\\x00`` becomes ``\\x00\\xff``, ``\\xff`` becomes ``\\xff\\x00``, then the
  terminator ``\\x00\\x01``.
* Signed numbers: n bytes hold [-2**(7n-1), 2**(7n-1)); the first bits are the sign
  (1 for >= 0) then n-1 more bits equal to it, then the two's-complement value.
"""

from __future__ import annotations

import re
from typing import Sequence, Tuple

from partialsaver.format.proto import Extent, SliceSpec

__all__ = ["SliceKeyError", "decode_slice_key", "encode_slice_key"]

_MAX_SIGNED_LENGTH = 10
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_FULL_EXTENT = -1  # TensorSlice's kFullExtent: the whole dimension.
_MAX_RANK = (1 << 31) - 1
_SPECIAL_BYTES = re.compile(b"[\\x00\\xff]")


class SliceKeyError(ValueError):
    """Bytes that are not a slice key (internal; callers name the file)."""


def _encode_unsigned(number: int) -> bytes:
    payload = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return bytes([len(payload)]) + payload


def _escape(match: "re.Match[bytes]") -> bytes:
    return b"\x00\xff" if match.group() == b"\x00" else b"\xff\x00"


def _encode_string(text: bytes) -> bytes:
    return _SPECIAL_BYTES.sub(_escape, text) + b"\x00\x01"


def _encode_signed(number: int) -> bytes:
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise SliceKeyError(f"slice bound {number} does not fit in int64")
    # Significant bits besides the sign: a negative number counts the bits of ~n.
    bits = (~number if number < 0 else number).bit_length()
    length = 1
    while bits > 7 * length - 1:
        length += 1
    header = ((1 << length) - 1) << (7 * length)  # `length` one-bits at the top.
    return ((number & ((1 << (8 * length)) - 1)) ^ header).to_bytes(length, "big")


def encode_slice_key(name: str, extents: Sequence[Extent]) -> bytes:
    """Return the index key of one stored slice of the tensor ``name``.

    Args:
        name: The full variable's checkpoint key.
        extents: One :class:`Extent` per dimension; ``length=None`` for a whole dimension.

    Raises:
        SliceKeyError: A bound that does not fit in int64, or rank 0.
    """
    if not extents:
        raise SliceKeyError("a slice key needs a rank of at least 1")
    parts = [b"\x00", _encode_string(name.encode("utf-8", "surrogateescape")), _encode_unsigned(len(extents))]
    for extent in extents:
        parts.append(_encode_signed(extent.start))
        parts.append(_encode_signed(_FULL_EXTENT if extent.length is None else extent.length))
    return b"".join(parts)


def _decode_unsigned(key: bytes, position: int) -> Tuple[int, int]:
    if position >= len(key):
        raise SliceKeyError("truncated number")
    length = key[position]
    if length > 8 or position + 1 + length > len(key):
        raise SliceKeyError("bad number length")
    return int.from_bytes(key[position + 1 : position + 1 + length], "big"), position + 1 + length


def _decode_string(key: bytes, position: int) -> Tuple[bytes, int]:
    out = bytearray()
    while True:
        special = min((index for index in (key.find(b"\x00", position), key.find(b"\xff", position)) if index >= 0),
                      default=-1)  # fmt: skip
        if special < 0 or special + 1 >= len(key):
            raise SliceKeyError("unterminated name")
        out += key[position:special]
        pair = key[special : special + 2]
        position = special + 2
        if pair == b"\x00\x01":
            return bytes(out), position
        if pair == b"\x00\xff":
            out.append(0)
        elif pair == b"\xff\x00":
            out.append(0xFF)
        else:
            raise SliceKeyError("bad escape in name")


def _decode_signed(key: bytes, position: int) -> Tuple[int, int]:
    if position >= len(key):
        raise SliceKeyError("truncated signed number")
    negative = key[position] < 0x80
    # Leading bits equal to the sign bit give the length: count them on the
    # first two bytes (the length reaches 10, past one byte).
    head = int.from_bytes(key[position : position + 2].ljust(2, b"\x00"), "big")
    if negative:
        head ^= 0xFFFF
    length = 0
    while length < 16 and head & (0x8000 >> length):
        length += 1
    if length > _MAX_SIGNED_LENGTH or position + length > len(key):
        raise SliceKeyError("bad signed number length")
    raw = int.from_bytes(key[position : position + length], "big") ^ (((1 << length) - 1) << (7 * length))
    number = raw - (1 << (8 * length)) if negative else raw
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise SliceKeyError("signed number does not fit in int64")
    return number, position + length


def decode_slice_key(key: bytes) -> Tuple[str, SliceSpec]:
    """Return the tensor name and the extents that a slice key stands for.

    A stored length of -1 comes back as ``Extent(start, None)`` (a whole dimension).

    Raises:
        SliceKeyError: ``key`` is not a well-formed slice key.
    """
    number, position = _decode_unsigned(key, 0)
    if number != 0:
        raise SliceKeyError("a slice key starts with the number 0")
    name, position = _decode_string(key, position)
    rank, position = _decode_unsigned(key, position)
    if not 0 < rank < _MAX_RANK:
        raise SliceKeyError(f"bad rank {rank}")
    extents = []
    for _ in range(rank):
        start, position = _decode_signed(key, position)
        length, position = _decode_signed(key, position)
        extents.append(Extent(start, None if length == _FULL_EXTENT else length))
    if position != len(key):
        raise SliceKeyError("trailing bytes after the slice")
    return name.decode("utf-8", "surrogateescape"), tuple(extents)

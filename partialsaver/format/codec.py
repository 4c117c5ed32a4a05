"""Tensor values <-> the bytes of a data file, with the crc32c TensorFlow stores.

* Numeric tensors: the elements in C order, little-endian; the entry's crc covers
  exactly those bytes.
* String tensors: a varint64 length per element, then the masked crc32c of the
  lengths (each as a little-endian uint32, or uint64 past 4 GiB, not as the
  varints), then the bytes of every element. The entry's crc chains the lengths
  (as fixed-size integers), the 4 stored crc bytes and the element bytes. An empty
  string tensor takes 4 bytes (just the crc of no lengths).
* Variant tensors: per element a varint64 length, the serialized
  VariantTensorDataProto and a masked crc32c of everything so far (lengths as
  uint64); they can be checked and copied, not decoded to values.
"""

from __future__ import annotations

import struct
from typing import List, Sequence, Tuple, Union

import numpy as np

from partialsaver.errors import UsageError
from partialsaver.format import _crc
from partialsaver.format._wire import WireError, decode_varint, encode_varint
from partialsaver.format.errors import corrupt

__all__ = ["check_variants", "decode_strings", "encode_strings", "numeric_bytes"]

_UINT32_MAX = 0xFFFFFFFF


def numeric_bytes(array: np.ndarray) -> np.ndarray:
    """Return the little-endian, C-order bytes of a numeric array as a flat uint8 array.

    Shares memory with ``array`` when it already is little-endian and contiguous.
    """
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    # ravel (not ascontiguousarray alone) so that a 0-d array gives its one element.
    return np.ascontiguousarray(array).ravel().view(np.uint8)


def _element_bytes(element: object) -> bytes:
    if isinstance(element, bytes):
        return element
    if isinstance(element, str):
        return element.encode("utf-8")
    if isinstance(element, (bytearray, memoryview, np.bytes_)):
        return bytes(element)
    raise UsageError(f"A string tensor holds bytes or str, not {type(element).__name__}: {element!r:.80}")


def _lengths_crc(lengths: Sequence[int]) -> int:
    """crc32c of the lengths as TensorFlow checksums them: uint32 each, uint64 past 4 GiB."""
    if all(length <= _UINT32_MAX for length in lengths):
        return _crc.value(np.asarray(lengths, dtype="<u4"))
    crc = 0
    for length in lengths:
        crc = _crc.extend(crc, struct.pack("<I" if length <= _UINT32_MAX else "<Q", length))
    return crc


def encode_strings(array: np.ndarray) -> Tuple[List[bytes], int, int]:
    """Encode a string tensor (object / bytes / str array) for a data file.

    Returns:
        The chunks to write, their total size and the (unmasked) entry crc32c.

    Raises:
        UsageError: An element that is neither bytes nor str.
    """
    elements = [_element_bytes(element) for element in np.asarray(array).ravel(order="C").tolist()]
    lengths = [len(element) for element in elements]
    lengths_crc = _lengths_crc(lengths)
    lengths_crc_bytes = struct.pack("<I", _crc.mask(lengths_crc))
    header = b"".join(encode_varint(length) for length in lengths) + lengths_crc_bytes
    body = b"".join(elements)
    crc = _crc.extend(_crc.extend(lengths_crc, lengths_crc_bytes), body)
    return [header, body], len(header) + len(body), crc


def decode_strings(buffer: Union[bytes, np.ndarray], count: int, path: str, key: str) -> Tuple[List[bytes], int]:
    """Decode a string tensor of ``count`` elements stored in ``buffer`` (its whole entry).

    Returns:
        The elements and the (unmasked) crc32c to compare with the entry's.

    Raises:
        CorruptCheckpointError: Lengths that overrun the entry, a bad lengths crc,
            or bytes left over.
    """
    data = bytes(buffer)  # Not a numpy array: varint decoding needs Python ints.
    size = len(data)
    if size == 0 and count == 0:
        return [], 0
    if count + 4 > size:  # At least one varint byte per element, plus the lengths crc.
        raise corrupt(path, f"string tensor of {count} elements cannot fit in {size} bytes", key)
    lengths = []
    position = 0
    try:
        for _ in range(count):
            length, position = decode_varint(data, position, size - 4)
            lengths.append(length)
    except WireError as error:
        raise corrupt(path, f"string lengths overrun the entry ({error})", key) from None
    crc = _lengths_crc(lengths)
    stored = struct.unpack_from("<I", data, position)[0]
    if _crc.unmask(stored) != crc:
        raise corrupt(path, "string lengths fail their crc32c check", key)
    crc = _crc.extend(crc, data[position : position + 4])
    position += 4
    if sum(lengths) != size - position:
        raise corrupt(path, f"string lengths add up to {sum(lengths)} bytes but {size - position} are stored", key)
    elements = []
    for length in lengths:
        elements.append(bytes(data[position : position + length]))
        position += length
    return elements, _crc.extend(crc, data[size - sum(lengths) :])


def check_variants(buffer: bytes, count: int, path: str, key: str) -> int:
    """Walk a variant tensor's elements, checking each element's crc; return the entry crc.

    Raises:
        CorruptCheckpointError: An element that overruns the entry or fails its crc,
            or bytes left over.
    """
    buffer = bytes(buffer)
    size = len(buffer)
    if size == 0:
        return 0
    crc = 0
    position = 0
    for index in range(count):
        try:
            length, position = decode_varint(buffer, position, size)
        except WireError as error:
            raise corrupt(path, f"variant element {index} length is malformed ({error})", key) from None
        if length + 4 > size - position:
            raise corrupt(path, f"variant element {index} overruns the entry", key)
        crc = _crc.extend(crc, struct.pack("<Q", length))
        crc = _crc.extend(crc, buffer[position : position + length])
        position += length
        stored = buffer[position : position + 4]
        if _crc.unmask(struct.unpack("<I", stored)[0]) != crc:
            raise corrupt(path, f"variant element {index} fails its crc32c check", key)
        crc = _crc.extend(crc, stored)
        position += 4
    if position != size:
        raise corrupt(path, f"{size - position} bytes left over after {count} variant elements", key)
    return crc

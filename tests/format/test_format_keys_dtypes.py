"""Slice keys (ordered code) and the dtype table."""

from __future__ import annotations

import random

import numpy as np
import pytest

from partialsaver.errors import UsageError
from partialsaver.format import BundleReader, UnsupportedCheckpointError, dtype_enum, dtype_name, itemsize, numpy_dtype
from partialsaver.format.dtypes import enum_for_array
from partialsaver.format.ordered_code import (
    SliceKeyError,
    _decode_signed,
    _encode_signed,
    decode_slice_key,
    encode_slice_key,
)
from partialsaver.format.proto import Extent

from ._helpers import HAS_ML_DTYPES, fixture_prefix


@pytest.mark.parametrize(
    "number, encoded",
    [(0, "80"), (1, "81"), (-1, "7f"), (63, "bf"), (-64, "40"), (64, "c040"), (-65, "3fbf"),
     (0x424242, "f0424242"), (-0x800, "3800"),  # The examples in TensorFlow's ordered_code.cc.
     (2**63 - 1, "ffc07fffffffffffffff"), (-(2**63), "003f8000000000000000")],
)  # fmt: skip
def test_signed_numbers_match_the_reference_encoding(number: int, encoded: str) -> None:
    assert _encode_signed(number).hex() == encoded
    assert _decode_signed(bytes.fromhex(encoded), 0) == (number, len(encoded) // 2)


def test_signed_numbers_round_trip_and_keep_order() -> None:
    rng = random.Random(3)
    numbers = [0, -1, 1] + [sign * (2**bits + delta) for bits in range(0, 63) for delta in (-1, 0, 1)
                            for sign in (1, -1)] + [rng.randrange(-(2**63), 2**63) for _ in range(500)]  # fmt: skip
    numbers = sorted({n for n in numbers if -(2**63) <= n < 2**63})
    encoded = [_encode_signed(number) for number in numbers]
    assert [_decode_signed(data, 0)[0] for data in encoded] == numbers
    assert encoded == sorted(encoded)  # The point of ordered code: byte order is numeric order.


def test_slice_keys_of_tensorflow_fixtures_decode_and_re_encode() -> None:
    seen = 0
    for name in ("partitioned", "dash", "sharded"):
        reader = BundleReader(fixture_prefix(name))
        for table_key, entry in reader.raw_items():
            for spec in entry.slices:
                slice_key = encode_slice_key(table_key.decode(), spec)
                assert slice_key in reader  # The key TensorFlow wrote for that slice.
                assert decode_slice_key(slice_key) == (table_key.decode(), spec)
                seen += 1
    assert seen == 11  # 3 + 2 (partitioned), 2 + 2 (dash), 2 (sharded)


def test_slice_key_escapes_zero_and_ff_bytes_in_names() -> None:
    name = b"a\x00b\xffc".decode("utf-8", "surrogateescape")
    key = encode_slice_key(name, [Extent(0, None), Extent(5, 3)])
    assert key == b"\x00" + b"a\x00\xffb\xff\x00c" + b"\x00\x01" + b"\x01\x02" + b"\x80\x7f" + b"\x85\x83"
    assert decode_slice_key(key) == (name, (Extent(0, None), Extent(5, 3)))


@pytest.mark.parametrize(
    "key",
    [b"", b"\x01\x01x\x00\x01\x01\x01\x80\x7f", b"\x00abc", b"\x00abc\x00\x02\x01\x01\x80\x7f",
     b"\x00a\x00\x01\x00", b"\x00a\x00\x01\x01\x01\x80", b"\x00a\x00\x01\x01\x01\x80\x7f\x00",
     b"\x00a\x00\x01\x01\x01\xff\xff\xff\x80\x7f", b"\x00a\xff\x01\x00\x01\x01\x01\x80\x7f"],
)  # fmt: skip
def test_malformed_slice_keys_are_refused(key: bytes) -> None:
    with pytest.raises(SliceKeyError):
        decode_slice_key(key)


def test_dtype_names_enums_and_sizes() -> None:
    assert [dtype_name(enum) for enum in (1, 2, 7, 14, 19, 23, 25, 29)] == [
        "float32", "float64", "string", "bfloat16", "float16", "uint64", "float8_e4m3fn", "int4"]  # fmt: skip
    assert dtype_enum("half") == dtype_enum("float16") == dtype_enum(np.float16) == 19
    assert dtype_enum(np.dtype(object)) == dtype_enum(np.dtype("S3")) == 7
    assert itemsize(18) == 16 and itemsize(7) is None and itemsize(33) == 1
    assert numpy_dtype(3) == np.dtype("<i4") and numpy_dtype(11) == np.dtype(np.int8)
    with pytest.raises(UnsupportedCheckpointError, match="Unknown TensorFlow DataType enum 99"):
        dtype_name(99)
    with pytest.raises(UnsupportedCheckpointError, match="variant"):
        numpy_dtype(21)
    with pytest.raises(UsageError):
        dtype_enum("float7")


def test_ml_dtypes_types_resolve_when_installed() -> None:
    if HAS_ML_DTYPES:
        assert numpy_dtype(14).name == "bfloat16" and numpy_dtype(26).itemsize == 1
    else:
        with pytest.raises(UnsupportedCheckpointError, match="pip install ml_dtypes"):
            numpy_dtype(14)
    assert dtype_name(14) == "bfloat16" and itemsize(14) == 2  # Known either way.


def test_explicit_dtype_must_match_the_values_or_be_raw_bits() -> None:
    assert enum_for_array(np.zeros(2, np.int8), "qint8") == 11
    assert enum_for_array(np.zeros(2, np.uint16), "bfloat16") == 14  # Raw bits, no ml_dtypes needed.
    assert enum_for_array(np.zeros(2, ">f4"), "float32") == 1
    assert enum_for_array(np.array([b"a"], dtype=object), "string") == 7
    for array, dtype in ((np.zeros(2, np.float32), "int32"), (np.zeros(2, np.uint8), "bfloat16"),
                         (np.zeros(2, np.float32), "string"), (np.array(["a"]), "float32"),
                         (np.zeros(2, np.int64), "variant")):  # fmt: skip
        with pytest.raises(UsageError):
            enum_for_array(array, dtype)

"""The hand-written protobuf codec: TensorFlow's exact bytes, tolerance of unknown fields, no crash on garbage."""

from __future__ import annotations

import random

import pytest

from partialsaver.errors import CorruptCheckpointError
from partialsaver.format import _wire
from partialsaver.format.proto import Entry, Extent, Header, decode_entry, decode_header

# Bytes TensorFlow 2.21 wrote (read from the fixtures' indexes).
TF_HEADER = bytes.fromhex("08011a020801")  # {num_shards: 1, version {producer: 1}}
TF_HEADER_TWO_SHARDS = bytes.fromhex("08021a020801")


def test_varint_round_trip_at_the_edges() -> None:
    for number in (0, 1, 127, 128, 300, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1):
        encoded = _wire.encode_varint(number)
        assert _wire.decode_varint(encoded, 0, len(encoded)) == (number, len(encoded))
    assert _wire.encode_varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes, two's complement.
    assert _wire.to_int64(_wire.decode_varint(_wire.encode_varint(-5), 0, 10)[0]) == -5


def test_varint_never_reads_past_the_end() -> None:
    with pytest.raises(_wire.WireError):
        _wire.decode_varint(b"\x80\x80", 0, 2)
    with pytest.raises(_wire.WireError):
        _wire.decode_varint(b"\x80\x01", 0, 1)  # The terminating byte lies past ``end``.
    with pytest.raises(_wire.WireError):
        _wire.decode_varint(b"\xff" * 11, 0, 11)


def test_header_encodes_like_tensorflow() -> None:
    assert Header(num_shards=1).raw == TF_HEADER
    assert Header(num_shards=2).raw == TF_HEADER_TWO_SHARDS
    decoded = decode_header(TF_HEADER, "x.index")
    assert (decoded.num_shards, decoded.endianness, decoded.producer, decoded.min_consumer) == (1, 0, 1, 0)


def test_header_version_fields_packed_and_unpacked() -> None:
    header = Header(num_shards=3, endianness=1, producer=4, min_consumer=2, bad_consumers=(1, 7))
    assert decode_header(header.raw, "x") == header
    # proto2-style unpacked bad_consumers must decode too.
    version = bytes.fromhex("0804") + bytes.fromhex("1801") + bytes.fromhex("1807")
    unpacked = bytes.fromhex("0803") + _wire.encode_length_delimited(3, version)
    assert decode_header(unpacked, "x").bad_consumers == (1, 7)


def test_entry_encodes_like_tensorflow() -> None:
    # A float32 [2, 3] tensor at offset 8 of shard 1, as TensorFlow serialises it.
    entry = Entry(dtype=1, shape=(2, 3), shard_id=1, offset=8, size=24, crc32c=0x12345678)
    expected = bytes.fromhex("0801" "1208" "12020802" "12020803" "1801" "2008" "2818" "3578563412")
    assert entry.raw == expected
    assert decode_entry(expected, "x") == entry
    # A scalar keeps an empty shape message; a zero dim is an empty dim message.
    assert Entry(dtype=2, shape=()).raw == bytes.fromhex("0802" "1200")
    assert Entry(dtype=2, shape=(0, 4)).raw == bytes.fromhex("0802" "1206" "1200" "12020804")


def test_slice_extents_keep_the_presence_of_length() -> None:
    entry = Entry(dtype=1, shape=(6, 4), slices=((Extent(0, 3), Extent(0, None)), (Extent(3, 0), Extent(0, 4))))
    decoded = decode_entry(entry.raw, "x")
    assert decoded.slices == entry.slices
    assert decoded.slices[0][1].length is None and decoded.slices[1][0].length == 0
    # Extent(3, 0): a set length of 0 is written (oneof), an unset one is not.
    assert b"\x0a\x04\x08\x03\x10\x00" in entry.raw


def test_64_bit_offsets_sizes_and_crc_round_trip() -> None:
    entry = Entry(dtype=1, shape=(2**31, 3), shard_id=0, offset=5 * 2**30 + 3, size=3 * 2**33, crc32c=0xFFFFFFFF)
    decoded = decode_entry(entry.raw, "x")
    assert (decoded.offset, decoded.size, decoded.crc32c, decoded.shape) == (
        5 * 2**30 + 3, 3 * 2**33, 0xFFFFFFFF, (2**31, 3))  # fmt: skip


def test_unknown_fields_are_skipped_and_kept_in_raw() -> None:
    entry = Entry(dtype=3, shape=(2,), offset=4, size=8, crc32c=1)
    extra = (_wire.encode_tag(15, _wire.VARINT) + _wire.encode_varint(9)
             + _wire.encode_length_delimited(99, b"anything")
             + _wire.encode_tag(16, _wire.FIXED64) + b"\x00" * 8)  # fmt: skip
    decoded = decode_entry(entry.raw + extra, "x")
    assert decoded == entry and decoded.raw == entry.raw + extra
    assert decoded.replace().raw == entry.raw  # Re-encoding drops them.


def test_field_with_an_unexpected_wire_type_is_treated_as_unknown() -> None:
    # crc32c (field 6) sent as a varint instead of fixed32: protobuf skips it.
    raw = Entry(dtype=1, shape=()).raw + _wire.encode_tag(6, _wire.VARINT) + _wire.encode_varint(5)
    assert decode_entry(raw, "x").crc32c == 0


@pytest.mark.parametrize(
    "shape_message, problem",
    [
        (_wire.encode_length_delimited(2, _wire.encode_tag(1, _wire.VARINT) + _wire.encode_varint(-2)), "invalid"),
        (_wire.encode_tag(3, _wire.VARINT) + b"\x01", "unknown rank"),
        (b"".join(_wire.encode_length_delimited(2, b"\x08\x02") for _ in range(255)), "invalid"),
        (b"".join(_wire.encode_length_delimited(2, b"\x08" + _wire.encode_varint(2**40)) for _ in range(2)),
         "2**63"),
    ],
)
def test_invalid_shapes_are_corrupt(shape_message: bytes, problem: str) -> None:
    raw = bytes.fromhex("0801") + _wire.encode_length_delimited(2, shape_message)
    with pytest.raises(CorruptCheckpointError, match="model.index"):
        decode_entry(raw, "model.index", "var")


def test_garbage_never_escapes_as_anything_but_corrupt() -> None:
    rng = random.Random(7)
    spec = (Extent(0, 1), Extent(0, None))
    valid = Entry(dtype=1, shape=(2, 3), offset=70000, size=24, crc32c=99, slices=(spec,)).raw
    outcomes = {"ok": 0, "corrupt": 0}
    for case in range(3000):
        if case % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            data = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randrange(len(data) + 1)])
        for decode in (lambda raw: decode_entry(raw, "x"), lambda raw: decode_header(raw, "x")):
            try:
                decode(data)
                outcomes["ok"] += 1
            except CorruptCheckpointError:
                outcomes["corrupt"] += 1
    assert outcomes["ok"] and outcomes["corrupt"]  # Both kinds occurred, and nothing else was raised.


def test_entry_replace_re_encodes() -> None:
    entry = Entry(dtype=1, shape=(2,), offset=0, size=8, crc32c=5)
    moved = entry.replace(shard_id=2, offset=64)
    assert decode_entry(moved.raw, "x") == moved and moved.offset == 64 and moved.crc32c == 5
    assert entry.num_elements == 2 and Entry(dtype=1, shape=()).num_elements == 1

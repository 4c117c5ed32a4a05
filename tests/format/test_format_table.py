"""The SSTable layer: TensorFlow's bytes exactly, many blocks, every kind of damage caught."""

from __future__ import annotations

import os
import struct

import pytest

from partialsaver.errors import CorruptCheckpointError
from partialsaver.format import build_table, read_table
from partialsaver.format.table import FOOTER_SIZE, _short_successor, _shortest_separator

from ._helpers import FIXTURES

FIXTURE_INDEXES = sorted(os.path.join(FIXTURES, name, "bundle.index") for name in os.listdir(FIXTURES)
                         if os.path.isdir(os.path.join(FIXTURES, name)))  # fmt: skip


def many_items(count: int, value_size: int = 40) -> list:
    return [(f"layer_{index:06d}/kernel/{'x' * (index % 7)}".encode(), bytes([index % 251]) * value_size)
            for index in range(count)]  # fmt: skip


def data_block_count(table: bytes) -> int:
    """Number of entries of the index block, i.e. of data blocks."""
    from partialsaver.format._wire import decode_varint

    footer = len(table) - FOOTER_SIZE
    _, position = decode_varint(table, footer, footer + 40)
    _, position = decode_varint(table, position, footer + 40)
    index_offset, position = decode_varint(table, position, footer + 40)
    index_size, _ = decode_varint(table, position, footer + 40)
    return struct.unpack_from("<I", table, index_offset + index_size - 4)[0]  # Restart interval 1.


@pytest.mark.parametrize("path", FIXTURE_INDEXES, ids=os.path.basename)
def test_tensorflow_indexes_rebuild_byte_identical(path: str) -> None:
    with open(path, "rb") as file:
        data = file.read()
    assert build_table(read_table(data, path)) == data


def test_round_trip_with_many_blocks() -> None:
    items = many_items(20000)
    table = build_table(items)
    assert data_block_count(table) > 3
    assert read_table(table, "t") == items


def test_other_block_sizes_and_restart_intervals_read_back() -> None:
    items = many_items(3000)
    for block_size, interval, shorten in ((4096, 1, True), (1000, 3, False), (1 << 20, 128, True)):
        table = build_table(items, block_size=block_size, restart_interval=interval, shorten_index_keys=shorten)
        assert read_table(table, "t") == items


def test_an_entry_twice_the_block_size_gets_flushed_before() -> None:
    items = [(b"a", b"1"), (b"b", b"2" * 300), (b"c", b"3")]
    table = build_table(items, block_size=100)
    assert read_table(table, "t") == items
    assert data_block_count(table) == 3  # "a" flushed alone before the big "b"; "b" fills its own block.


def test_index_key_shortening_matches_leveldb() -> None:
    assert _shortest_separator(b"the quick brown fox", b"the who") == b"the r"
    assert _shortest_separator(b"abc", b"abcd") == b"abc"  # A prefix: unchanged.
    assert _shortest_separator(b"ab\xff", b"ac") == b"ab\xff"
    assert _shortest_separator(b"abc", b"abd") == b"abc"  # c + 1 is not < d.
    assert _short_successor(b"abc") == b"b" and _short_successor(b"\xff\xffa") == b"\xff\xffb"
    assert _short_successor(b"\xff\xff") == b"\xff\xff"


def test_empty_table() -> None:
    table = build_table([])
    assert read_table(table, "t") == []


def test_writer_refuses_unsorted_or_duplicate_keys() -> None:
    with pytest.raises(ValueError):
        build_table([(b"b", b""), (b"a", b"")])
    with pytest.raises(ValueError):
        build_table([(b"a", b""), (b"a", b"")])


def flip(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0x40
    return bytes(damaged)


def test_every_single_byte_flip_is_caught_or_harmless() -> None:
    items = many_items(300, 10)
    table = build_table(items, block_size=1024)
    harmless = 0
    for position in range(len(table)):
        try:
            result = read_table(flip(table, position), "/ckpt/model.index")
        except CorruptCheckpointError as error:
            assert "/ckpt/model.index" in str(error) and "Re-copy" in str(error)
        else:
            # Only the footer's padding is covered by no crc (TensorFlow ignores it too).
            assert result == items and position >= len(table) - FOOTER_SIZE
            harmless += 1
    assert 0 < harmless <= 40


@pytest.mark.parametrize(
    "damage, message",
    [(lambda t: t[:10], "too short"), (lambda t: t[:-1], "magic"), (lambda t: b"\x00" * 3 + t, "crc32c"),
     (lambda t: t[: -FOOTER_SIZE - 1] + t[-FOOTER_SIZE:], "handle|crc32c|points"),
     (lambda t: t[:-8] + struct.pack("<Q", 0x1234), "magic")],
)  # fmt: skip
def test_structural_damage_names_the_problem(damage, message: str) -> None:
    table = build_table(many_items(50))
    with pytest.raises(CorruptCheckpointError, match=message):
        read_table(damage(table), "model.index")


def test_block_handles_out_of_range_are_refused() -> None:
    table = bytearray(build_table(many_items(5)))
    footer = len(table) - FOOTER_SIZE
    table[footer : footer + 40] = (b"\xff\xff\xff\xff\x0f\x05" + b"\x00\x00").ljust(40, b"\x00")
    with pytest.raises(CorruptCheckpointError, match="past the end"):
        read_table(bytes(table), "model.index")

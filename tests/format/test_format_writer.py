"""BundleWriter: TensorFlow's exact files, round trips of every dtype, raw copies, index-only renames."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest

from partialsaver.errors import CorruptCheckpointError, NameMapError, UsageError, VariableNotFoundError
from partialsaver.format import (
    LOCAL,
    BundleReader,
    BundleWriter,
    Entry,
    Extent,
    Header,
    _crc,
    data_path,
    dtype_enum,
    read_index,
    rename_entries,
    write_index,
)
from partialsaver.format.codec import _lengths_crc
from partialsaver.format.dtypes import itemsize

from ._helpers import (
    HAS_ML_DTYPES,
    ML_DTYPE_NAMES,
    file_bytes,
    fixture_prefix,
    numeric_dtype_names,
    random_array,
    rewrite_in_stored_order,
    same_bits,
)


@pytest.mark.parametrize("name", ["dtypes", "partitioned", "dash", "sharded", "object"])
def test_rewriting_a_tensorflow_bundle_gives_its_exact_files(tmp_path, name: str) -> None:
    """Adding TensorFlow's tensors in its order reproduces its data files and index byte for byte."""
    source = BundleReader(fixture_prefix(name))
    prefix = str(tmp_path / "bundle")
    rewrite_in_stored_order(source, prefix)
    for shard_id in range(source.num_shards):
        assert file_bytes(data_path(prefix, shard_id, source.num_shards)) == file_bytes(source.data_path(shard_id))
    assert file_bytes(prefix + ".index") == file_bytes(source.index_path)


SHAPES = [(), (0,), (3, 0, 2), (5, 7), (2, 3, 4)]


@pytest.mark.parametrize("dtype_name", list(numeric_dtype_names()))
def test_every_numeric_dtype_round_trips_bit_identically(tmp_path, dtype_name: str) -> None:
    rng = np.random.default_rng(zlib.crc32(dtype_name.encode()))
    prefix = str(tmp_path / "bundle")
    if dtype_name in ML_DTYPE_NAMES and not HAS_ML_DTYPES:
        # Without ml_dtypes: the bits go in as unsigned ints and come back as raw bytes.
        size = itemsize(dtype_enum(dtype_name))
        bits = rng.integers(0, 2**8, size=(5, 7 * size), dtype=np.uint8).view(f"<u{size}")
        with BundleWriter(prefix) as writer:
            writer.add("x", bits, dtype=dtype_name)
        reader = BundleReader(prefix)
        assert reader.dtype_name("x") == dtype_name and reader.read_raw("x").tobytes() == bits.tobytes()
        return
    values = {f"v{index}": random_array(rng, dtype_name, shape) for index, shape in enumerate(SHAPES)}
    explicit = dtype_name if dtype_name.startswith(("qint", "quint")) else None
    with BundleWriter(prefix) as writer:
        for key, value in values.items():
            writer.add(key, value, dtype=explicit)
    reader = BundleReader(prefix)
    for key, value in values.items():
        assert reader.dtype_name(key) == dtype_name
        read = reader.read(key)
        assert same_bits(read, value) and read.dtype == value.dtype, key


def test_layouts_and_byte_orders_are_normalised(tmp_path) -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    inputs = {"fortran": np.asfortranarray(base), "strided": base[:, ::2], "big_endian": base.astype(">f8"),
              "transposed": base.T, "scalar": np.float32(-0.0), "python_list": [[1, 2], [3, 4]]}  # fmt: skip
    prefix = str(tmp_path / "bundle")
    with BundleWriter(prefix) as writer:
        for key, value in inputs.items():
            writer.add(key, value)
    reader = BundleReader(prefix)
    for key, value in inputs.items():
        expected = np.asarray(value)
        read = reader.read(key)
        assert read.shape == expected.shape and np.array_equal(read, expected), key
    assert reader.read("big_endian").dtype == np.dtype("<f8")
    assert reader.read("scalar").tobytes() == np.float32(-0.0).tobytes() and reader.shape("scalar") == ()


def test_string_tensors_round_trip(tmp_path) -> None:
    values = {
        "mixed": np.array([b"", b"a", "\u00e9t\u00e9", b"\x00\xff" * 100], dtype=object),
        "fixed_bytes": np.array([[b"ab", b"c"], [b"", b"def"]]),
        "unicode": np.array(["x", "\u4e2d\u6587"]),
        "scalar": np.array(b"hello", dtype=object),
        "empty_tensor": np.zeros((0, 3), dtype=object),
        "empty_strings": np.array([b"", b""], dtype=object),
        "long": np.array([b"y" * 70000], dtype=object),  # A 3-byte varint length.
    }
    prefix = str(tmp_path / "bundle")
    with BundleWriter(prefix) as writer:
        for key, value in values.items():
            writer.add(key, value)
    reader = BundleReader(prefix)
    assert reader.entry("empty_tensor").size == 4  # Just the crc of no lengths.
    for key, value in values.items():
        read = reader.read(key)
        expected = [element.encode() if isinstance(element, str) else bytes(element) for element in value.ravel()]
        assert read.shape == value.shape and list(read.ravel()) == expected, key
        reader.verify(key)
    with pytest.raises(UsageError, match="bytes or str"):
        BundleWriter(str(tmp_path / "other")).add("bad", np.array([b"a", 3], dtype=object))


def test_string_length_crc_uses_fixed_width_lengths() -> None:
    # Lengths are checksummed as uint32, or uint64 past 4 GiB, not as their varints.
    lengths = [5, 2**32, 300]
    expected = _crc.value(struct.pack("<I", 5) + struct.pack("<Q", 2**32) + struct.pack("<I", 300))
    assert _lengths_crc(lengths) == expected and _lengths_crc([5, 300]) == _crc.value(struct.pack("<II", 5, 300))


def test_partitioned_variables_with_explicit_and_whole_extents(tmp_path) -> None:
    full = np.arange(40, dtype=np.int32).reshape(8, 5)
    prefix = str(tmp_path / "bundle")
    with BundleWriter(prefix) as writer:
        writer.add_slice("explicit", (8, 5), [(0, 3), (0, 5)], full[:3])
        writer.add_slice("explicit", (8, 5), [Extent(3, 5), Extent(0, 5)], full[3:])
        writer.add_slice("whole", (8, 5), [(0, None), (0, 2)], full[:, :2])
        writer.add_slice("whole", (8, 5), [(0, None), (2, 3)], full[:, 2:])
        writer.add_slice("single", (8, 5), [(0, None), (0, 5)], full)  # Full: a plain entry.
        with pytest.raises(UsageError, match="does not fit"):
            writer.add_slice("explicit", (8, 5), [(6, 3), (0, 5)], full[:3])
        with pytest.raises(UsageError, match="disagrees"):
            writer.add_slice("explicit", (8, 6), [(0, 1), (0, 5)], full[:1])
    reader = BundleReader(prefix)
    assert reader.keys() == ["explicit", "single", "whole"]
    for key in reader.keys():
        assert np.array_equal(reader.read(key), full)
    assert not reader.entry("single").slices
    assert reader.entry("whole").slices[0][0] == Extent(0, None)
    assert [key for key, _ in reader.raw_items() if key.startswith(b"\x00whole")][0].endswith(b"\x80\x7f\x80\x82")


def test_partitioned_strings_and_uncommon_dtypes_assemble(tmp_path) -> None:
    # TensorFlow itself cannot assemble these from other slices (see BundleWriter.add_slice); we can.
    values = {
        "strings": np.array([[b"a", b""], [b"ccc", "\u00e9"]], dtype=object),
        "halves": np.arange(8, dtype=np.float16).reshape(4, 2),
        "wide": np.arange(4, dtype=np.uint64),
    }
    prefix = str(tmp_path / "bundle")
    with BundleWriter(prefix) as writer:
        for key, value in values.items():
            rows = value.shape[0]
            extents = [(0, 1)] + [(0, None)] * (value.ndim - 1)
            writer.add_slice(key, value.shape, extents, value[:1])
            writer.add_slice(key, value.shape, [(1, rows - 1)] + extents[1:], value[1:])
    reader = BundleReader(prefix)
    assert reader.read("strings").tolist() == [[b"a", b""], [b"ccc", "\u00e9".encode()]]
    assert same_bits(reader.read("halves"), values["halves"]) and same_bits(reader.read("wide"), values["wide"])
    for key in values:
        reader.verify(key)


def test_multi_shard_writer_and_custom_paths(tmp_path) -> None:
    final = str(tmp_path / "model")
    temporary = [str(tmp_path / f"tmp-data-{shard}") for shard in range(3)]
    writer = BundleWriter(final, num_shards=3, index_path=str(tmp_path / "tmp-index"), data_paths=temporary)
    writer.add("a", np.ones(3), shard_id=0)
    writer.add("b", np.zeros(2, np.int8), shard_id=1)
    writer.finish()
    assert os.path.getsize(temporary[2]) == 0  # Unused shard: created empty.
    assert not os.path.exists(final + ".index")
    for shard in range(3):
        LOCAL.replace(temporary[shard], data_path(final, shard, 3))
    LOCAL.replace(str(tmp_path / "tmp-index"), final + ".index")
    reader = BundleReader(final)
    assert reader.num_shards == 3 and reader.read("b").tolist() == [0, 0] and reader.entry("b").shard_id == 1
    with pytest.raises(UsageError, match="finished"):
        writer.add("c", np.ones(1))


def test_writer_refuses_misuse(tmp_path) -> None:
    writer = BundleWriter(str(tmp_path / "bundle"), num_shards=2)
    writer.add("a", np.ones(2))
    for call, message in ((lambda: writer.add("a", np.ones(2)), "Duplicate"), (lambda: writer.add("", 1), "empty key"),
                          (lambda: writer.add("x", np.ones(1), shard_id=2), "shard_id"),
                          (lambda: writer.add(7, np.ones(1)), "str"),
                          (lambda: writer.add("x", np.ones(2), dtype="int64"), "cast")):  # fmt: skip
        with pytest.raises(UsageError, match=message):
            call()
    with pytest.raises(UsageError, match="Inconsistent"):
        BundleWriter(str(tmp_path / "b"), num_shards=2, data_paths=["one"])


def test_abort_and_exceptions_remove_written_files(tmp_path) -> None:
    prefix = str(tmp_path / "bundle")
    with pytest.raises(RuntimeError):
        with BundleWriter(prefix) as writer:
            writer.add("a", np.ones(3))
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []
    writer = BundleWriter(prefix)
    writer.add("a", np.ones(3))
    writer.finish()
    writer.abort()  # A finished checkpoint is the caller's: abort() leaves it alone.
    assert sorted(os.listdir(tmp_path)) == ["bundle.data-00000-of-00001", "bundle.index"]


def test_copy_from_copies_bytes_and_renames_slices(tmp_path) -> None:
    sources = {name: BundleReader(fixture_prefix(name)) for name in ("partitioned", "dash", "object")}
    prefix = str(tmp_path / "copy")
    with BundleWriter(prefix) as writer:
        writer.copy_from(sources["partitioned"], "emb/rows", "renamed/rows")
        writer.copy_from(sources["dash"], "v")
        writer.copy_from(sources["object"], "_CHECKPOINTABLE_OBJECT_GRAPH")
        writer.copy_from(sources["object"], "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE", "kernel")
    reader = BundleReader(prefix)
    assert reader.keys() == ["_CHECKPOINTABLE_OBJECT_GRAPH", "kernel", "renamed/rows", "v"]
    assert same_bits(reader.read("renamed/rows"), sources["partitioned"].read("emb/rows"))
    assert same_bits(reader.read("v"), sources["dash"].read("v"))
    source_kernel = sources["object"].entry("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    assert reader.entry("kernel").crc32c == source_kernel.crc32c
    graph = "_CHECKPOINTABLE_OBJECT_GRAPH"
    assert reader.read(graph).item() == sources["object"].read(graph).item()


def test_copy_from_refuses_a_duplicate_before_copying_slices(tmp_path) -> None:
    source = BundleReader(fixture_prefix("dash"))
    writer = BundleWriter(str(tmp_path / "bundle"))
    writer.copy_from(source, "w")
    with pytest.raises(UsageError, match="Duplicate"):
        writer.copy_from(source, "w")
    assert len(writer.entries) == 3  # "w" and its two slices: no orphan slice entries.
    writer.abort()


def test_add_raw_checks_when_asked_and_a_bad_source_fails_the_copy(tmp_path) -> None:
    source = BundleReader(fixture_prefix("object"))
    key = "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    entry = source.entry(key)
    damaged = bytearray(source.read_raw(key).tobytes())
    damaged[3] ^= 1
    writer = BundleWriter(str(tmp_path / "a"))
    with pytest.raises(CorruptCheckpointError, match="crc32c"):
        writer.add_raw("k", entry, bytes(damaged), check=True)
    with pytest.raises(UsageError, match="failed"):
        writer.finish()
    writer.abort()
    strings = BundleWriter(str(tmp_path / "b"))
    graph_entry = source.entry("_CHECKPOINTABLE_OBJECT_GRAPH")
    graph = bytearray(source.read_raw("_CHECKPOINTABLE_OBJECT_GRAPH").tobytes())
    graph[-1] ^= 1
    with pytest.raises(CorruptCheckpointError):
        strings.add_raw("g", graph_entry, bytes(graph), check=True)
    # Unchecked, the bytes go in with the source's crc: the reader then refuses them.
    unchecked = BundleWriter(str(tmp_path / "c"))
    unchecked.add_raw("k", entry, bytes(damaged))
    unchecked.finish()
    with pytest.raises(CorruptCheckpointError, match=r"c.data-00000-of-00001.*'k'"):
        BundleReader(str(tmp_path / "c")).read("k")


def test_index_only_rename_of_partitioned_and_dash_variables(tmp_path) -> None:
    cases = (("partitioned", {"emb/rows": "renamed/rows", "plain": "emb/plain"}), ("dash", {"w": "z/w", "v": "w"}),
             ("object", {"model/step/.ATTRIBUTES/VARIABLE_VALUE": "step"}))  # fmt: skip
    for name, renames in cases:
        original = BundleReader(fixture_prefix(name))
        header, entries = read_index(fixture_prefix(name))
        prefix = str(tmp_path / name / "bundle")
        os.makedirs(os.path.dirname(prefix))
        for shard in range(header.num_shards):  # Same data files under the new prefix.
            assert LOCAL.link(original.data_path(shard), data_path(prefix, shard, header.num_shards))
        write_index(prefix + ".index", header, rename_entries(entries, renames))
        renamed = BundleReader(prefix)
        assert sorted(renamed.keys()) == sorted(renames.get(key, key) for key in original.keys())
        for key in original.keys():
            assert same_bits(renamed.read(renames.get(key, key)), original.read(key))
        for _, entry in renamed.raw_items():  # Entry bytes untouched.
            assert entry.raw in {old.raw for _, old in original.raw_items()}
    with pytest.raises(VariableNotFoundError):
        rename_entries(entries, {"missing": "x"})
    with pytest.raises(NameMapError):
        rename_entries(read_index(fixture_prefix("dash"))[1], {"w": "v"})


def test_64_bit_offsets_and_sizes_through_the_index(tmp_path) -> None:
    big = Entry(dtype=1, shape=(3 * 2**29,), shard_id=0, offset=5 * 2**30 + 12, size=6 * 2**30, crc32c=1234)
    prefix = str(tmp_path / "big")
    with open(data_path(prefix, 0, 1), "wb") as file:
        file.write(b"\x00" * 64)
    write_index(prefix + ".index", Header(num_shards=1), {"big": big, "small": Entry(dtype=3, shape=(), size=4)})
    header, entries = read_index(prefix)
    assert entries[b"big"] == big and entries[b"big"].offset > 2**32 and entries[b"big"].size > 2**32
    reader = BundleReader(prefix)
    assert reader.nbytes("big") == 6 * 2**30
    with pytest.raises(CorruptCheckpointError, match=r"big.data-00000-of-00001.*'big'.*past its end"):
        reader.read("big")

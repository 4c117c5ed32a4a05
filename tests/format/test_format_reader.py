"""BundleReader on checkpoints TensorFlow wrote (committed fixtures), compared with TensorFlow's own reader."""

from __future__ import annotations

import os

import numpy as np
import pytest

from partialsaver.errors import CheckpointNotFoundError, UsageError, VariableNotFoundError
from partialsaver.format import BundleReader, UnsupportedCheckpointError, numpy_dtype, read_index
from partialsaver.format.table import read_table

from ._helpers import HAS_ML_DTYPES, ML_DTYPE_NAMES, copy_fixture, expected_tensors, fixture_prefix

FIXTURE_NAMES = ("dtypes", "partitioned", "dash", "sharded", "object")


def check_against_tensorflow(reader: BundleReader, key: str, record: dict) -> None:
    """The value read is bit-identical to what TensorFlow's reader returned."""
    assert reader.dtype_name(key) == record["dtype"]
    assert reader.shape(key) == tuple(record["shape"])
    if record["dtype"] == "string":
        value = reader.read(key)
        assert value.dtype == object and value.shape == tuple(record["shape"])
        assert [element.hex() for element in value.ravel()] == record["strings"]
        assert reader.nbytes(key) is None
        return
    expected = bytes.fromhex(record["hex"])
    assert reader.nbytes(key) == len(expected)
    if record["dtype"] in ML_DTYPE_NAMES and not HAS_ML_DTYPES:
        with pytest.raises(UnsupportedCheckpointError, match="ml_dtypes"):
            reader.read(key)
    else:
        value = reader.read(key)
        assert value.shape == tuple(record["shape"]) and value.dtype == numpy_dtype(reader.entry(key).dtype)
        assert value.tobytes() == expected  # Bytes, not values: NaN payloads and -0.0 included.
    if not reader.entry(key).slices:
        assert reader.read_raw(key).tobytes() == expected


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_reads_exactly_what_tensorflow_reads(name: str) -> None:
    expected = expected_tensors(name)
    with BundleReader(fixture_prefix(name)) as reader:
        assert reader.keys() == sorted(expected)  # Slice keys hidden, as TensorFlow lists them.
        for key, record in expected.items():
            check_against_tensorflow(reader, key, record)
            reader.verify(key)


def test_every_dtype_is_in_the_dtypes_fixture() -> None:
    names = {record["dtype"] for record in expected_tensors("dtypes").values()}
    assert len(names) == 31  # Every dtype but resource and variant (not saveable as values).
    keys = expected_tensors("dtypes")
    assert keys["float32/scalar"]["shape"] == [] and keys["int4/empty"]["shape"] == [0, 4]


def test_entries_re_encode_to_tensorflows_bytes() -> None:
    for name in FIXTURE_NAMES:
        path = fixture_prefix(name) + ".index"
        with open(path, "rb") as file:
            stored = dict(read_table(file.read(), path))
        header, entries = read_index(fixture_prefix(name))
        assert header.raw == stored[b""]
        for key, entry in entries.items():
            assert entry.raw == stored[key] and entry.replace().raw == stored[key]


def test_partitioned_variables_are_assembled_and_their_slices_reachable() -> None:
    reader = BundleReader(fixture_prefix("partitioned"))
    rows = reader.entry("emb/rows")
    assert rows.shape == (7, 4) and len(rows.slices) == 3 and rows.size == 0
    slices = reader.slice_entries("emb/rows")
    assert [entry.shape for _, _, entry in slices] == [(3, 4), (2, 4), (2, 4)]
    full = reader.read("emb/rows")
    first_key, first_spec, _ = slices[0]
    assert first_key in reader and first_key not in reader.keys()
    assert np.array_equal(reader.read(first_key), full[0:3])
    with pytest.raises(UsageError, match="partitioned"):
        reader.read_raw("emb/rows")
    assert sum(1 for _ in reader.raw_items()) == 8  # 3 full entries + 5 slice entries.
    # A whole-dimension ('-') slice keeps length None; an explicit one keeps its length.
    assert BundleReader(fixture_prefix("dash")).entry("w").slices[0][1].length is None
    assert rows.slices[0][1].length == 4


def test_sharded_bundle_reads_from_both_data_files() -> None:
    reader = BundleReader(fixture_prefix("sharded"))
    assert reader.num_shards == 2
    assert {reader.entry("a").shard_id, reader.entry("b").shard_id} == {0, 1}
    assert reader.data_path(1).endswith("bundle.data-00001-of-00002")
    assert reader.read("split").tolist() == np.arange(10).reshape(5, 2).tolist()  # Slices in both shards.


def test_object_based_checkpoint_keys() -> None:
    reader = BundleReader(fixture_prefix("object"))
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in reader.keys()
    assert reader.dtype_name("_CHECKPOINTABLE_OBJECT_GRAPH") == "string"
    assert reader.shape("_CHECKPOINTABLE_OBJECT_GRAPH") == ()
    graph = reader.read("_CHECKPOINTABLE_OBJECT_GRAPH").item()
    assert b"model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE" in graph  # The graph names the keys.


def test_iter_raw_streams_in_chunks_and_checks_at_the_end() -> None:
    reader = BundleReader(fixture_prefix("partitioned"))
    chunks = list(reader.iter_raw("plain", chunk_size=16))
    assert [chunk.size for chunk in chunks] == [16, 16, 8]
    assert b"".join(chunk.tobytes() for chunk in chunks) == np.arange(5, dtype="<f8").tobytes()
    assert len(list(reader.iter_raw("plain", chunk_size=1 << 20))) == 1


def test_missing_files_and_keys(tmp_path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="nothing.index"):
        BundleReader(str(tmp_path / "nothing"))
    prefix = copy_fixture("sharded", str(tmp_path))
    os.remove(prefix + ".data-00001-of-00002")
    reader = BundleReader(prefix)
    assert reader.read("a").tolist() == [1.5, 2.5]  # Shard 0 is there.
    with pytest.raises(CheckpointNotFoundError, match=r"data-00001-of-00002"):
        reader.read("b")
    with pytest.raises(VariableNotFoundError, match="nope"):
        reader.read("nope")
    with pytest.raises(VariableNotFoundError):
        reader.entry(b"\x00nope")
    with pytest.raises(UsageError, match="not valid text"):
        reader.entry("\ud800")
    reader.close()
    reader.close()


def test_close_with_live_views_does_not_fail() -> None:
    reader = BundleReader(fixture_prefix("partitioned"))
    chunk = next(reader.iter_raw("plain"))
    reader.close()  # The memory map stays alive while ``chunk`` does.
    assert chunk.tobytes()[:8] == np.float64(0).tobytes()

"""Damaged checkpoints: every failure is a PartialSaverError naming the file, never a crash or a hang."""

from __future__ import annotations

import os
import random
import signal
from typing import Dict, List

import numpy as np
import pytest

from partialsaver.errors import CheckpointNotFoundError, CorruptCheckpointError, PartialSaverError
from partialsaver.format import (
    LOCAL,
    BundleReader,
    BundleWriter,
    Entry,
    Extent,
    FileSystem,
    Header,
    UnsupportedCheckpointError,  # fmt: skip
    data_path,
    write_index,
)

from ._helpers import MemoryFileSystem, copy_fixture, expected_tensors, load_into_memory, mutate


def damage_file(path: str, position: int) -> None:
    with open(path, "r+b") as file:
        file.seek(position)
        byte = file.read(1)
        file.seek(position)
        file.write(bytes([byte[0] ^ 0x10]))


def test_data_crc_damage_names_the_data_file_and_key(tmp_path) -> None:
    prefix = copy_fixture("object", str(tmp_path))
    reader = BundleReader(prefix)
    kernel = "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    damage_file(reader.data_path(0), reader.entry(kernel).offset + 5)
    for call in (reader.read, reader.verify, reader.read_raw, lambda key: list(reader.iter_raw(key, chunk_size=4))):
        with pytest.raises(CorruptCheckpointError) as caught:
            call(kernel)
        message = str(caught.value)
        assert reader.data_path(0) in message and kernel in message and "crc32c" in message and "Re-copy" in message
    assert reader.read("model/step/.ATTRIBUTES/VARIABLE_VALUE") == 7  # The rest still reads.


def test_string_damage_in_lengths_and_bytes(tmp_path) -> None:
    prefix = copy_fixture("dtypes", str(tmp_path))
    reader = BundleReader(prefix)
    entry = reader.entry("string/vector")
    damage_file(reader.data_path(0), entry.offset)  # A length.
    with pytest.raises(CorruptCheckpointError, match="string/vector"):
        reader.read("string/vector")
    prefix = copy_fixture("dtypes", str(tmp_path))
    damage_file(reader.data_path(0), entry.offset + entry.size - 1)  # The last string byte.
    with pytest.raises(CorruptCheckpointError, match="crc32c"):
        BundleReader(prefix).read("string/vector")


def test_truncated_data_file(tmp_path) -> None:
    prefix = copy_fixture("partitioned", str(tmp_path))
    with open(data_path(prefix, 0, 1), "r+b") as file:
        file.truncate(100)
    reader = BundleReader(prefix)
    with pytest.raises(CorruptCheckpointError, match=r"past its end \(100 bytes\): truncated"):
        reader.read("plain")
    with pytest.raises(CorruptCheckpointError, match="emb/rows"):
        reader.read("emb/rows")


def test_damaged_index_names_the_index(tmp_path) -> None:
    prefix = copy_fixture("dtypes", str(tmp_path))
    damage_file(prefix + ".index", 100)
    with pytest.raises(CorruptCheckpointError, match=r"bundle\.index.*crc32c"):
        BundleReader(prefix)


def write_bundle(prefix: str, header: Header, entries: Dict[str, Entry], data: bytes = b"\x00" * 64) -> None:
    with open(data_path(prefix, 0, max(header.num_shards, 1)), "wb") as file:
        file.write(data)
    write_index(prefix + ".index", header, entries)


@pytest.mark.parametrize(
    "entries, message",
    [({"x": Entry(dtype=1, shape=(3,), size=8)}, "8 bytes stored for 3 elements"),
     ({"x": Entry(dtype=1, shape=(1,), shard_id=4, size=4)}, "data file 4 of 1"),
     ({"x": Entry(dtype=1, shape=(1,), offset=-3, size=4)}, "past its end"),
     ({"x": Entry(dtype=7, shape=(40,), size=20)}, "cannot fit"),
     ({"x": Entry(dtype=1, shape=(4,), slices=((Extent(0, 2),),))}, "slice .* is missing"),
     ({"x": Entry(dtype=1, shape=(4,), slices=((Extent(0, 9),),)),
       b"\x00x\x00\x01\x01\x01\x80\x89": Entry(dtype=1, shape=(9,), size=36)}, "does not fit"),
     ({"x": Entry(dtype=1, shape=(4,), slices=((Extent(0, 2),),)),
       b"\x00x\x00\x01\x01\x01\x80\x82": Entry(dtype=1, shape=(2,), size=8)}, "uncovered"),
     ({"x": Entry(dtype=1, shape=(4,), slices=((Extent(0, 3),), (Extent(1, 3),))),
       b"\x00x\x00\x01\x01\x01\x80\x83": Entry(dtype=1, shape=(3,), size=12),
       b"\x00x\x00\x01\x01\x01\x81\x83": Entry(dtype=1, shape=(3,), size=12)}, "overlap"),
     ({"x": Entry(dtype=1, shape=(4,), slices=((Extent(0, 4),),)),
       b"\x00x\x00\x01\x01\x01\x80\x84": Entry(dtype=2, shape=(4,), size=32)}, "does not match"),
     ({"x": Entry(dtype=77, shape=(1,), size=4)}, "Unknown TensorFlow DataType enum 77")],
)  # fmt: skip
def test_inconsistent_entries_are_refused(tmp_path, entries, message: str) -> None:
    prefix = str(tmp_path / "bundle")
    write_bundle(prefix, Header(num_shards=1), entries)
    reader = BundleReader(prefix)
    for check in (reader.read, reader.verify):
        with pytest.raises(PartialSaverError, match=message):
            check("x")


@pytest.mark.parametrize(
    "header, error, message",
    [(Header(num_shards=0), CorruptCheckpointError, "0 data files"),
     (Header(num_shards=1, min_consumer=2), UnsupportedCheckpointError, "newer TensorFlow"),
     (Header(num_shards=1, bad_consumers=(1,)), UnsupportedCheckpointError, "newer TensorFlow"),
     (Header(num_shards=1, producer=-1), UnsupportedCheckpointError, "newer TensorFlow")],
)  # fmt: skip
def test_headers_tensorflow_refuses_are_refused(tmp_path, header: Header, error: type, message: str) -> None:
    prefix = str(tmp_path / "bundle")
    write_bundle(prefix, header, {"x": Entry(dtype=1, shape=(), size=4)})
    with pytest.raises(error, match=message):
        BundleReader(prefix)


def test_big_endian_bundles_list_and_verify_but_do_not_decode(tmp_path) -> None:
    prefix = str(tmp_path / "bundle")
    data = np.arange(3, dtype=">i4").tobytes()
    from partialsaver.format import _crc

    write_bundle(prefix, Header(num_shards=1, endianness=1),
                 {"x": Entry(dtype=3, shape=(3,), size=12, crc32c=_crc.mask(_crc.value(data)))}, data)  # fmt: skip
    reader = BundleReader(prefix)
    assert reader.keys() == ["x"] and reader.shape("x") == (3,)
    reader.verify("x")
    with pytest.raises(UnsupportedCheckpointError, match="big-endian"):
        reader.read("x")


def test_empty_data_file_with_empty_tensors(tmp_path) -> None:
    prefix = str(tmp_path / "bundle")
    with BundleWriter(prefix) as writer:
        writer.add("empty", np.zeros((0, 3), np.float32))
    assert os.path.getsize(data_path(prefix, 0, 1)) == 0  # Cannot be memory-mapped.
    reader = BundleReader(prefix)
    assert reader.read("empty").shape == (0, 3) and reader.entry("empty").crc32c == 0xA282EAD8  # mask(0)
    reader.verify("empty")


def test_memory_file_system_reads_and_writes() -> None:
    fs = MemoryFileSystem()
    assert isinstance(fs, FileSystem) and isinstance(LOCAL, FileSystem)
    prefix = load_into_memory("sharded", fs)
    reader = BundleReader(prefix, fs=fs)
    assert reader.read("split").tolist() == np.arange(10).reshape(5, 2).tolist()
    with BundleWriter("mem://out/copy", fs=fs) as writer:
        for key in reader.keys():
            writer.copy_from(reader, key)
    copy = BundleReader("mem://out/copy", fs=fs)
    assert [copy.read(key).tolist() for key in copy.keys()] == [reader.read(key).tolist() for key in reader.keys()]
    del fs.files[reader.data_path(1)]
    with pytest.raises(CheckpointNotFoundError, match="mem://bucket/sharded/bundle.data-00001-of-00002"):
        BundleReader(prefix, fs=fs).read("b")


class CaseTimeout(Exception):
    """A fuzz case ran too long (a hang)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise CaseTimeout()


def read_everything(prefix: str, fs: FileSystem) -> None:
    """What a user does with a checkpoint: open, list, read and verify every key."""
    with BundleReader(prefix, fs=fs) as reader:
        for key in reader.keys():
            reader.dtype_name(key), reader.shape(key), reader.nbytes(key)
            reader.read(key)
            reader.verify(key)


def test_seeded_corruption_fuzz_raises_only_partialsaver_errors(tmp_path) -> None:
    """Flip / truncate / insert / delete / overwrite bytes of index and data files, 600 seeded cases."""
    names = ("dtypes", "partitioned", "dash", "sharded", "object")
    outcomes: Dict[str, int] = {"read fine": 0, "refused": 0}
    failures: List[str] = []
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for case in range(600):
            rng = random.Random(case)
            name = names[case % len(names)]
            use_memory = case % 2 == 0  # Half through an in-memory fs, half through local files (mmap).
            fs = MemoryFileSystem() if use_memory else LOCAL
            if use_memory:
                prefix = load_into_memory(name, fs)
                files = sorted(path for path in fs.files)
            else:
                directory = tmp_path / f"case{case}"
                directory.mkdir()
                prefix = copy_fixture(name, str(directory))
                files = sorted(str(path) for path in directory.iterdir())
            target = rng.choice(files)
            original = fs.files[target] if use_memory else open(target, "rb").read()
            damaged, how = mutate(original, rng)
            if use_memory:
                fs.files[target] = damaged
            else:
                with open(target, "wb") as file:
                    file.write(damaged)
            signal.setitimer(signal.ITIMER_REAL, 5.0)
            try:
                read_everything(prefix, fs)
                outcomes["read fine"] += 1
            except PartialSaverError:
                outcomes["refused"] += 1
            except BaseException as error:  # noqa: B036 - anything else is the bug this test looks for.
                failures.append(f"case {case} ({name}, {os.path.basename(target)}, {how}): {error!r}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(f"\nformat fuzz: {dict(outcomes)}")  # shown with -s; docs/reliability.md quotes it
    assert not failures, "\n".join(failures[:20])
    assert outcomes["refused"] > 300 and outcomes["read fine"] > 0, outcomes


def test_fixture_values_survive_damage_elsewhere(tmp_path) -> None:
    """Damage to one tensor's bytes never changes what another tensor reads as."""
    prefix = copy_fixture("dtypes", str(tmp_path))
    reader = BundleReader(prefix)
    victim = reader.entry("float64/matrix")
    damage_file(reader.data_path(0), victim.offset)
    reader = BundleReader(prefix)
    for key, record in expected_tensors("dtypes").items():
        if key == "float64/matrix":
            with pytest.raises(CorruptCheckpointError):
                reader.verify(key)
        elif "hex" in record:
            assert reader.read_raw(key).tobytes().hex() == record["hex"]

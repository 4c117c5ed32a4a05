"""Offline tools: list, load, rename (streamed, atomic, bit-identical) and diff."""

import hashlib
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import (
    OPTIMIZER_SLOTS,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NameMapError,
    SmartSaver,
    UsageError,
    VariableNotFoundError,
    diff_checkpoints,
    list_variables,
    load_variable,
    rename_variables,
)

v1 = tf.compat.v1

# Every dtype a tf.compat.v1.train.Saver checkpoints, with awkward values where they exist.
SPECIAL_FLOATS = [np.nan, -0.0, np.inf, -np.inf, 1e-8, 65504.0]
DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
          "uint32", "uint64", "bool", "string", "complex64", "complex128", "qint8", "quint8", "qint32"]


def value_of(dtype_name):
    dtype = tf.as_dtype(dtype_name)
    if dtype == tf.string:
        return tf.constant([b"plain", b"\x00\xff binary", "unicode \u00e9\u4e2d".encode(), b""])
    if dtype == tf.bool:
        return tf.constant([True, False, True])
    if dtype.is_floating:
        return tf.constant(SPECIAL_FLOATS, dtype=dtype)
    if dtype.is_complex:
        return tf.constant([1 + 2j, np.nan + 0j, -0.0 - 1j], dtype=dtype)
    if dtype.is_quantized:
        return tf.cast(tf.constant([1, 2, 3]), dtype)
    return tf.constant([dtype.min, 0, dtype.max], dtype=dtype)


@pytest.fixture
def all_dtypes_checkpoint(tmp_path):
    with tf.Graph().as_default():
        for name in DTYPES:
            v1.get_variable(f"dtypes/{name}", initializer=value_of(name))
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver().save(sess, str(tmp_path / "src" / "model.ckpt"))


def raw(reader, key):
    value = reader.get_tensor(key)
    return value.tolist() if value.dtype == object else (value.dtype.str, value.shape, value.tobytes())


def file_hashes(prefix):
    directory = os.path.dirname(prefix)
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory)) if os.path.isfile(os.path.join(directory, name))}


def test_list_variables_reports_names_shapes_dtypes_and_sizes(all_dtypes_checkpoint):
    infos = list_variables(all_dtypes_checkpoint)
    assert [info.name for info in infos] == sorted(f"dtypes/{name}" for name in DTYPES)
    by_name = {info.name: info for info in infos}
    assert by_name["dtypes/bfloat16"][1:] == ((6,), "bfloat16", 12)
    assert by_name["dtypes/string"][1:] == ((4,), "string", None)
    assert by_name["dtypes/complex128"].nbytes == 48


def test_load_variable_and_its_near_miss_message(seed_checkpoint):
    np.testing.assert_array_equal(load_variable(seed_checkpoint, "v3"), [-2] * 4)
    with pytest.raises(VariableNotFoundError, match="no variable 'v3_x'; did you mean 'v3'") as caught:
        load_variable(seed_checkpoint, "v3_x")
    assert isinstance(caught.value, KeyError)


def test_rename_is_bit_identical_for_every_dtype(all_dtypes_checkpoint, tmp_path):
    dst = str(tmp_path / "dst" / "model.ckpt")
    os.makedirs(os.path.dirname(dst))
    renames = rename_variables(all_dtypes_checkpoint, dst, {"dtypes/": "renamed/"}, memory_budget=16)
    assert renames["dtypes/bfloat16"] == "renamed/bfloat16"
    src, out = v1.train.NewCheckpointReader(all_dtypes_checkpoint), v1.train.NewCheckpointReader(dst)
    for name in DTYPES:
        assert raw(out, f"renamed/{name}") == raw(src, f"dtypes/{name}"), name
    assert {key: dtype.name for key, dtype in out.get_variable_to_dtype_map().items()} == {
        f"renamed/{name}": name for name in DTYPES}
    assert v1.train.latest_checkpoint(os.path.dirname(dst)) == dst


def test_src_is_never_modified_and_no_temporary_file_is_left(all_dtypes_checkpoint, tmp_path):
    before = file_hashes(all_dtypes_checkpoint)
    dst = str(tmp_path / "src" / "renamed.ckpt")  # the same directory as the source
    rename_variables(all_dtypes_checkpoint, dst, {re.compile(r"^dtypes/(.*)$"): r"\1"}, memory_budget=100)
    after = file_hashes(all_dtypes_checkpoint)
    assert {k: v for k, v in after.items() if k.startswith("model.ckpt")} == before_without_state(before)
    assert not [name for name in os.listdir(tmp_path / "src") if name.startswith(".partialsaver")]


def before_without_state(hashes):
    return {k: v for k, v in hashes.items() if k.startswith("model.ckpt")}


def test_a_real_saver_restores_the_renamed_checkpoint_partitioned_any_way(write_checkpoint, tmp_path):
    value = np.arange(40, dtype=np.float32).reshape(10, 4)
    src = write_checkpoint({"old/emb": value, "old/w": np.ones(3, np.float32)}, partitions={"old/emb": 4})
    dst = str(tmp_path / "model.ckpt")
    rename_variables(src, dst, {"old/": "new/"})
    assert [(i.name, i.shape) for i in list_variables(dst)] == [("new/emb", (10, 4)), ("new/w", (3,))]
    for partitions in (1, 3, 5):
        with tf.Graph().as_default():
            partitioner = v1.fixed_size_partitioner(partitions) if partitions > 1 else None
            emb = v1.get_variable("new/emb", [10, 4], partitioner=partitioner)
            v1.get_variable("new/w", [3])
            with v1.Session() as sess:
                v1.train.Saver().restore(sess, dst)
                restored = sess.run(emb.as_tensor() if partitioner else emb)
        np.testing.assert_array_equal(restored, value)


def test_exclude_optimizer_slots_strips_optimizer_state(tmp_path):
    with tf.Graph().as_default():
        w = v1.get_variable("w", initializer=tf.constant([1.0, 2.0]))
        train = v1.train.AdamOptimizer().minimize(tf.reduce_sum(w * w), global_step=v1.train.get_or_create_global_step())
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            src = v1.train.Saver().save(sess, str(tmp_path / "adam" / "model.ckpt"))
    assert len(list_variables(src)) == 6  # w, its two slots, two beta powers, global_step
    dst = str(tmp_path / "weights.ckpt")
    renames = rename_variables(src, dst, None, exclude=OPTIMIZER_SLOTS)
    assert sorted(renames) == ["global_step", "w"]
    assert [info.name for info in list_variables(dst)] == ["global_step", "w"]


def test_a_rename_that_drops_keys_copies_in_chunks_within_the_budget(write_checkpoint, tmp_path, monkeypatch):
    from partialsaver.format import BundleReader

    values = {f"t{i}": np.full(1000, i, np.float32) for i in range(5)}
    src = write_checkpoint(dict(values, dropped=np.ones(10, np.float32)))
    chunks = []
    real_iter_raw = BundleReader.iter_raw

    def counted(self, key, chunk_size=8 << 20):
        for chunk in real_iter_raw(self, key, chunk_size):
            chunks.append(chunk.size)
            yield chunk

    monkeypatch.setattr(BundleReader, "iter_raw", counted)
    progress = []
    rename_variables(src, str(tmp_path / "out.ckpt"), {re.compile("^t"): "u"}, exclude="dropped", memory_budget=1000,
                     progress=lambda done, total: progress.append((done, total)))
    assert progress == [(4000 * (i + 1), 20000) for i in range(5)]
    assert max(chunks) == 1000 and sum(chunks) == 20000  # every kept byte once, never more than the budget at once
    for i in range(5):
        np.testing.assert_array_equal(load_variable(str(tmp_path / "out.ckpt"), f"u{i}"), values[f"t{i}"])


def test_a_list_value_writes_one_key_under_several_names(seed_checkpoint, tmp_path):
    renames = rename_variables(seed_checkpoint, str(tmp_path / "m.ckpt"), {"v3": ["a/v3", "b/v3"]})
    assert renames["v3"] == ("a/v3", "b/v3")
    np.testing.assert_array_equal(load_variable(str(tmp_path / "m.ckpt"), "b/v3"), [-2] * 4)


def test_overwrite_replaces_dst_and_refuses_without_it(seed_checkpoint, tmp_path):
    dst = str(tmp_path / "m.ckpt")
    rename_variables(seed_checkpoint, dst, {"v3": "v3_x"})
    with pytest.raises(UsageError, match="already exists; pass overwrite=True"):
        rename_variables(seed_checkpoint, dst, {"v3": "v3_y"})
    rename_variables(seed_checkpoint, dst, {"v3": "v3_y"}, overwrite=True)
    assert [info.name for info in list_variables(dst)] == ["v1", "v2", "v3_y"]


@pytest.mark.parametrize("case", ["collision", "renames_nothing", "bad_regex", "dst_is_src",
                                  "missing_source", "data_gone", "garbage_index", "truncated_index", "filters_all"])
def test_bad_input_is_a_clear_error_and_leaves_no_output(seed_checkpoint, tmp_path, case):
    dst = str(tmp_path / "out" / "m.ckpt")
    os.makedirs(os.path.dirname(dst))
    src, name_map, kwargs = seed_checkpoint, {"v3": "v3_x"}, {}
    expected = {
        "collision": (NameMapError, r"'w' <- \['v1', 'v2'\]"),
        "renames_nothing": (NameMapError, "renames nothing.*matched no key: exact rule 'v9'"),
        "bad_regex": (NameMapError, "invalid replacement"),
        "dst_is_src": (UsageError, "is the source checkpoint; pass another dst, or overwrite=True"),
        "missing_source": (CheckpointNotFoundError, "no checkpoint at"),
        "data_gone": (CheckpointNotFoundError, "missing 1 of its 1 data file.*copy all of them"),
        "garbage_index": (CorruptCheckpointError, "Corrupt checkpoint file .*model.ckpt.index: not a TensorFlow checkpoint"),
        "truncated_index": (CorruptCheckpointError, "Corrupt checkpoint file .*model.ckpt.index"),
        "filters_all": (NameMapError, "leave no key"),
    }[case]
    if case == "collision":
        name_map = {"v1": "w", "v2": "w"}
    elif case == "renames_nothing":
        name_map = {"v9": "v10"}
    elif case == "bad_regex":
        name_map = {re.compile("v(3)"): r"\2"}
    elif case == "dst_is_src":
        dst = seed_checkpoint
    elif case == "missing_source":
        src = str(tmp_path / "nothing" / "here")
    elif case == "data_gone":
        os.remove(seed_checkpoint + ".data-00000-of-00001")
    elif case == "garbage_index":
        open(seed_checkpoint + ".index", "wb").write(b"\x00garbage" * 50)
    elif case == "truncated_index":
        data = open(seed_checkpoint + ".index", "rb").read()
        open(seed_checkpoint + ".index", "wb").write(data[: len(data) // 2])
    elif case == "filters_all":
        kwargs = {"include": "nothing_like_this"}
    before = sorted(os.listdir(os.path.dirname(seed_checkpoint))) if os.path.exists(seed_checkpoint + ".index") else None
    with pytest.raises(expected[0], match=expected[1]):
        rename_variables(src, dst, name_map, **kwargs)
    assert os.listdir(tmp_path / "out") == []
    if before is not None:
        assert sorted(os.listdir(os.path.dirname(seed_checkpoint))) == before


def test_tensorflow_restores_a_drop_of_interleaved_slots(write_checkpoint, tmp_path):
    rng = np.random.default_rng(3)
    values = {"a": rng.standard_normal(77).astype(np.float32), "a/Momentum": np.ones(77, np.float32),
              "b": rng.standard_normal((600, 500)).astype(np.float32), "b/Momentum": np.ones((600, 500), np.float32),
              "c": rng.standard_normal(400_000).astype(np.float64)}
    src = write_checkpoint(values)
    dst = str(tmp_path / "out" / "model.ckpt")
    rename_variables(src, dst, {"b": "net/b"}, exclude=OPTIMIZER_SLOTS)
    assert os.path.getsize(dst + ".data-00000-of-00001") == sum(values[k].nbytes for k in "abc")  # packed
    with tf.Graph().as_default():
        variables = {name: v1.get_variable(name, shape=values[key].shape, dtype=values[key].dtype)
                     for key, name in (("a", "a"), ("b", "net/b"), ("c", "c"))}
        with v1.Session() as sess:
            v1.train.Saver(variables).restore(sess, dst)
            for (key, variable) in zip("abc", variables.values()):
                np.testing.assert_array_equal(sess.run(variable), values[key])


def test_a_corrupt_source_data_file_writes_nothing(write_checkpoint, tmp_path):
    src = write_checkpoint({"a": np.ones(1000, np.float32), "b": np.ones(1, np.float32)})
    with open(src + ".data-00000-of-00001", "r+b") as data:
        data.seek(100)
        data.write(b"\x13" * 50)
    with pytest.raises(CorruptCheckpointError, match="fail their crc32c check"):
        rename_variables(src, str(tmp_path / "m.ckpt"), {"a": "c"}, exclude="b")  # bytes copied: each checked
    assert not [name for name in os.listdir(tmp_path) if name.startswith(("m.ckpt", "checkpoint"))]


TEMP_PREFIX_NAME = ".partialsaver-tmp-"


def test_diff_reports_every_kind_of_difference(write_checkpoint):
    a = write_checkpoint({"same": np.ones(3, np.float32), "gone": np.ones(1, np.float32),
                          "reshaped": np.ones(4, np.float32), "retyped": np.ones(2, np.float32),
                          "moved": np.array([1.0, 2.0, np.nan], np.float32), "text": np.array([b"a", b"b"])}, subdir="a")
    b = write_checkpoint({"same": np.ones(3, np.float32), "new": np.ones(1, np.float32),
                          "reshaped": np.ones([2, 2], np.float32), "retyped": np.ones(2, np.float64),
                          "moved": np.array([1.0, 2.5, np.nan], np.float32), "text": np.array([b"a", b"c"])}, subdir="b")
    diff = diff_checkpoints(a, b)
    assert not diff.same
    assert diff.only_in_a == ("gone",) and diff.only_in_b == ("new",)
    assert [tuple(c) for c in diff.shape_changes] == [("reshaped", (4,), (2, 2))]
    assert [tuple(c) for c in diff.dtype_changes] == [("retyped", "float32", "float64")]
    moved, text = diff.value_changes
    assert (moved.key, moved.index, moved.changed, moved.max_abs_diff) == ("moved", (1,), 1, 0.5)
    assert (text.key, text.a, text.b, text.max_abs_diff) == ("text", b"b", b"c", None)
    assert json.loads(json.dumps(diff.to_dict()))["value_changes"][1]["b"] == "c"
    assert "moved: 1 element(s) differ, max |a-b| = 0.5" in str(diff)
    assert diff_checkpoints(a, a).same


def test_diff_of_a_rename_round_trip_is_same(all_dtypes_checkpoint, tmp_path):
    there = str(tmp_path / "there.ckpt")
    back = str(tmp_path / "back.ckpt")
    rename_variables(all_dtypes_checkpoint, there, {"dtypes/": "x/"})
    rename_variables(there, back, {"x/": "dtypes/"})
    assert diff_checkpoints(all_dtypes_checkpoint, back).same


def test_smart_saver_restores_a_renamed_checkpoint(seed_checkpoint, renamed_graph, sess, tmp_path):
    dst = str(tmp_path / "renamed" / "model.ckpt")
    os.makedirs(os.path.dirname(dst))
    rename_variables(seed_checkpoint, dst, {"v3": "v3_x"})
    plan = SmartSaver(strict=True).restore(sess, os.path.dirname(dst))
    assert plan.ok and sess.run(renamed_graph["v3_x"]).tolist() == [-2] * 4


def test_rename_into_a_training_directory_keeps_its_latest_checkpoint(write_checkpoint, caplog):
    src = write_checkpoint({"v1": np.ones(2, np.float32)}, global_step=5)
    directory = os.path.dirname(src)
    import logging
    with caplog.at_level(logging.WARNING, logger="partialsaver"):
        rename_variables(src, os.path.join(directory, "renamed.ckpt"), {"v1": "w"})
    assert v1.train.latest_checkpoint(directory) == src  # a resuming job still finds its own
    assert "left unchanged: pass the prefix" in caplog.text


def test_a_dst_spelled_like_a_data_file_names_its_prefix(seed_checkpoint, tmp_path):
    rename_variables(seed_checkpoint, str(tmp_path / "x.data-00000-of-00001"), {"v3": "v3_x"})
    assert [info.name for info in list_variables(str(tmp_path / "x"))] == ["v1", "v2", "v3_x"]


def test_temporaries_of_dead_runs_go_and_those_of_other_hosts_stay(seed_checkpoint, tmp_path):
    import socket
    import subprocess
    import sys

    from partialsaver._temporaries import TEMP_MARK

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_own = tmp_path / f"m.ckpt.index{TEMP_MARK}{socket.gethostname()}-{int(dead.stdout)}-abcdef12"
    live_own = tmp_path / f"m.ckpt.index{TEMP_MARK}{socket.gethostname()}-{os.getpid()}-abcdef12"
    foreign = tmp_path / f"m.ckpt.index{TEMP_MARK}otherhost-1-abcdef12"
    for path in (dead_own, live_own, foreign):
        path.write_bytes(b"partial")
    rename_variables(seed_checkpoint, str(tmp_path / "m.ckpt"), {"v3": "v3_x"})
    assert not dead_own.exists() and live_own.exists() and foreign.exists()
    old = os.path.getmtime(foreign) - 2 * 24 * 3600
    os.utime(foreign, (old, old))  # a day-old temporary of another host belongs to no live run
    rename_variables(seed_checkpoint, str(tmp_path / "m.ckpt"), {"v3": "v3_y"}, overwrite=True)
    assert not foreign.exists() and live_own.exists()


def test_overwrite_drops_the_stale_meta_of_the_replaced_checkpoint(seed_checkpoint, tmp_path):
    assert os.path.exists(seed_checkpoint + ".meta")
    rename_variables(seed_checkpoint, seed_checkpoint, {"v3": "v3_x"}, overwrite=True)
    assert not os.path.exists(seed_checkpoint + ".meta")
    assert [info.name for info in list_variables(seed_checkpoint)] == ["v1", "v2", "v3_x"]


def test_diff_tells_object_based_from_name_based_keys(tmp_path, write_checkpoint):
    module = tf.Module()
    module.w = tf.Variable([1.0, 2.0])
    object_based = tf.train.Checkpoint(net=module).save(str(tmp_path / "object" / "ckpt"))
    name_based = write_checkpoint({"net/w": np.array([1.0, 2.0], np.float32),
                                   "save_counter": np.array(1, np.int64)})
    diff = diff_checkpoints(object_based, name_based)
    assert not diff.same
    assert diff.only_in_a == ("net/w/.ATTRIBUTES/VARIABLE_VALUE", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
    assert diff.only_in_b == ("net/w", "save_counter")


def test_diff_json_is_strict_for_complex_and_nan(write_checkpoint):
    a = write_checkpoint({"c": np.array([1 + 1j], np.complex64), "f": np.array([np.nan, 1.0], np.float32)}, subdir="a")
    b = write_checkpoint({"c": np.array([1 + 2j], np.complex64), "f": np.array([np.nan, np.inf], np.float32)}, subdir="b")
    payload = json.loads(json.dumps(diff_checkpoints(a, b).to_dict(), allow_nan=False))
    complex_change, float_change = payload["value_changes"]
    assert complex_change["a"] == [1.0, 1.0] and complex_change["b"] == [1.0, 2.0]
    assert float_change["b"] is None and float_change["max_abs_diff"] is None

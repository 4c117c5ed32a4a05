"""Compatibility with real TensorFlow, both ways: what it writes we read bit for bit, what we write it restores."""

from __future__ import annotations

import os
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

tf = pytest.importorskip("tensorflow")

import numpy as np  # noqa: E402

from partialsaver.format import (  # noqa: E402
    BundleReader,
    BundleWriter,
    Extent,
    build_table,
    data_path,
    dtype_enum,
    dtype_name,
    read_table,
)

from ._helpers import (  # noqa: E402
    file_bytes,
    numeric_dtype_names,
    random_array,
    rewrite_in_stored_order,
    same_bits,
)

v1 = tf.compat.v1


def tensorflow_knows(name: str) -> bool:
    """Whether the installed TensorFlow has this dtype (2.13 has no int4, int2, float4...)."""
    try:
        tf.as_dtype(name)
    except TypeError:
        return False
    return True


NUMERIC = [name for name in numeric_dtype_names() if tensorflow_knows(name)]
# Graph-mode variables of these cannot even be initialized on CPU (no kernels): the Saver cannot save
# them, so they are covered through the SaveV2 op the Saver runs (and the committed fixtures).
NO_VARIABLES = {"float8_e4m3fnuz", "float8_e4m3b11fnuz", "float8_e5m2fnuz", "qint16", "quint16"}


def variables_work(name: str) -> bool:
    """Whether this TensorFlow can initialize a variable of the dtype on CPU (2.13: no float8)."""
    if name in NO_VARIABLES:
        return False
    with tf.Graph().as_default():
        variable = v1.get_variable("probe", shape=[1], dtype=tf.as_dtype(name), initializer=v1.zeros_initializer(),
                                   use_resource=True)
        with v1.Session() as session:
            try:
                session.run(variable.initializer)
            except tf.errors.OpError:
                return False
    return True


STRINGS = {
    "string/vector": np.array([b"", b"a", b"\x00\xff\x80", "\u00e9".encode()], dtype=object),
    "string/scalar": np.array(b"hello", dtype=object),
    "string/empty_tensor": np.zeros((0, 2), dtype=object),
    "string/empty_strings": np.array([b"", b""], dtype=object),
}
# The dtypes this TensorFlow cannot hold in a variable: covered through SaveV2 and the fixtures.
CANNOT_BE_VARIABLES = {name for name in NUMERIC if not variables_work(name)}


def sample_values(seed: int) -> dict:
    """A matrix, a scalar and an empty tensor of every numeric dtype, and string tensors."""
    rng = np.random.default_rng(seed)
    values = {}
    for name in NUMERIC:
        values[f"{name}/matrix"] = random_array(rng, name, (2, 3))
        values[f"{name}/scalar"] = random_array(rng, name, ())
        values[f"{name}/empty"] = random_array(rng, name, (0, 4))
    values.update(STRINGS)
    return values


# TensorFlow's graph-mode constants store these sub-byte values sign-extended (-3 as int4 is 0xfd), while
# ml_dtypes and eager tensors keep 0x0d: the same value, other bytes. Against our own inputs they
# compare by value; against what TensorFlow reads, by bytes as everything else.
SUB_BYTE = {"int4", "uint4", "int2", "uint2", "float4_e2m1fn"}


def dtype_of(key: str) -> str:
    return key.split("/")[0]


def same_value_as_input(read: np.ndarray, value: np.ndarray, key: str) -> bool:
    """Bit-identical to what the test put in, by value for the sub-byte types (see SUB_BYTE)."""
    if dtype_of(key) in SUB_BYTE:
        return read.shape == value.shape and np.array_equal(read.astype(np.float32), value.astype(np.float32))
    return same_bits(read, value)


def tf_bits(value: object) -> np.ndarray:
    """A value TensorFlow returned, as something same_bits compares (quantized types come as records)."""
    array = np.asarray(value)
    if array.dtype.names:  # qint8 & co: a one-field structured dtype.
        array = array[array.dtype.names[0]]
    return array


def assert_tensorflow_agrees(prefix: str, reader: BundleReader) -> None:
    """Keys, dtypes, shapes and bits as TensorFlow's own checkpoint reader sees them."""
    tf_reader = v1.train.NewCheckpointReader(prefix)
    shapes = tf_reader.get_variable_to_shape_map()
    dtypes = tf_reader.get_variable_to_dtype_map()
    assert sorted(reader.keys()) == sorted(shapes)
    for key in reader.keys():
        assert reader.dtype_name(key) == dtypes[key].name, key
        assert list(reader.shape(key)) == shapes[key], key
        ours, theirs = reader.read(key), tf_bits(tf_reader.get_tensor(key))
        if ours.dtype == object:
            assert ours.shape == theirs.shape and [bytes(x) for x in theirs.ravel()] == list(ours.ravel()), key
        else:
            assert same_bits(ours, theirs), key


def as_tensorflow_numpy(key: str, value: np.ndarray) -> np.ndarray:
    """``value`` with TensorFlow's own numpy dtype for it: before 2.14 TensorFlow had its own
    bfloat16 / float8 numpy types, distinct from ml_dtypes' (the same bits, another type)."""
    wanted = tf.as_dtype(dtype_of(key)).as_numpy_dtype
    if value.dtype != object and value.dtype.name == np.dtype(wanted).name and value.dtype != wanted:
        return value.view(wanted)
    return value


def eager_tensor(key: str, value: np.ndarray) -> "tf.Tensor":
    if dtype_of(key).startswith(("qint", "quint")):
        return tf.raw_ops.Bitcast(input=tf.constant(value), type=tf.as_dtype(dtype_of(key)))
    return tf.constant(as_tensorflow_numpy(key, value), dtype=tf.as_dtype(dtype_of(key)))


def test_every_dtype_savev2_writes_reads_bit_identically(tmp_path) -> None:
    values = sample_values(7)
    prefix = str(tmp_path / "savev2")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(values), shape_and_slices=[""] * len(values),
                      tensors=[eager_tensor(key, value) for key, value in values.items()])  # fmt: skip
    reader = BundleReader(prefix)
    assert len({reader.dtype_name(key) for key in reader.keys()}) == len(NUMERIC) + 1  # and string
    assert_tensorflow_agrees(prefix, reader)
    for key, value in values.items():
        assert same_bits(reader.read(key), value), key


def test_every_variable_dtype_the_saver_saves_reads_bit_identically(tmp_path) -> None:
    values = {key: value for key, value in sample_values(11).items() if dtype_of(key) not in CANNOT_BE_VARIABLES}
    partitioned = {"part/rows": np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32),
                   "part/cols": np.arange(24, dtype=np.int64).reshape(3, 8)}  # fmt: skip
    prefix = str(tmp_path / "model.ckpt")
    with tf.Graph().as_default():
        variables = [v1.get_variable(key, initializer=tf.constant(as_tensorflow_numpy(key, value),
                                                                  dtype=tf.as_dtype(dtype_of(key))),
                                     use_resource=True) for key, value in values.items()]  # fmt: skip
        assignments = []
        for key, value in partitioned.items():
            axis = 0 if key.endswith("rows") else 1
            parts = v1.get_variable(key, shape=value.shape, dtype=tf.as_dtype(value.dtype), use_resource=True,
                                    initializer=v1.zeros_initializer(),
                                    partitioner=v1.fixed_size_partitioner(3 - axis, axis=axis))  # fmt: skip
            variables.append(parts)
            for part in parts:
                info = part._get_save_slice_info()
                index = tuple(slice(start, start + size) for start, size in zip(info.var_offset, info.var_shape))
                assignments.append(part.assign(value[index]))
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(assignments)
            v1.train.Saver(variables).save(session, prefix, write_meta_graph=False, write_state=False)
    reader = BundleReader(prefix)
    assert_tensorflow_agrees(prefix, reader)
    for key, value in {**values, **partitioned}.items():
        assert same_value_as_input(reader.read(key), value, key), key
    assert len(reader.entry("part/rows").slices) == 3 and len(reader.entry("part/cols").slices) == 2
    # Our writer reproduces TensorFlow's files exactly from the same tensors in the same order.
    rewrite_in_stored_order(reader, str(tmp_path / "again"))
    assert file_bytes(str(tmp_path / "again.index")) == file_bytes(prefix + ".index")
    assert file_bytes(data_path(str(tmp_path / "again"), 0, 1)) == file_bytes(reader.data_path(0))


def test_sharded_save_over_two_devices(tmp_path) -> None:
    prefix = str(tmp_path / "sharded.ckpt")
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            first = v1.get_variable("first", initializer=tf.constant(np.arange(6, dtype=np.float32)))
        with tf.device("/cpu:1"):
            second = v1.get_variable("second", initializer=tf.constant([b"x", b"yz"]))
            third = v1.get_variable("third", initializer=tf.constant(np.eye(3, dtype=np.float64)))
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": 2})) as session:
            session.run(v1.global_variables_initializer())
            saved = v1.train.Saver([first, second, third], sharded=True).save(session, prefix, write_meta_graph=False,
                                                                             write_state=False)  # fmt: skip
    reader = BundleReader(saved)
    assert reader.num_shards == 2
    assert {reader.entry(key).shard_id for key in reader.keys()} == {0, 1}
    assert_tensorflow_agrees(saved, reader)


def test_object_based_checkpoint(tmp_path) -> None:
    model = tf.Module()
    model.dense = tf.Module()
    model.dense.kernel = tf.Variable(np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32))
    model.dense.bias = tf.Variable(tf.zeros(3, dtype=tf.bfloat16))
    model.vocabulary = tf.Variable([b"a", b"b"])
    saved = tf.train.Checkpoint(model=model).save(str(tmp_path / "object"))
    reader = BundleReader(saved)
    assert reader.keys() == sorted(name for name, _ in tf.train.list_variables(saved))
    assert "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE" in reader.keys()
    assert {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"} <= set(reader.keys())
    assert_tensorflow_agrees(saved, reader)


def write_everything(prefix: str) -> dict:
    """Write every dtype, strings, and partitioned variables over 2 shards with BundleWriter; return the values."""
    values = sample_values(23)
    full = np.random.default_rng(4).standard_normal((6, 5)).astype(np.float32)
    wide = np.arange(40, dtype=np.int64).reshape(4, 10)
    with BundleWriter(prefix, num_shards=2) as writer:
        for index, (key, value) in enumerate(values.items()):
            quantized = dtype_of(key) if dtype_of(key).startswith(("qint", "quint")) else None
            writer.add(key, value, dtype=quantized, shard_id=index % 2)
        writer.add_slice("part/explicit", (6, 5), [(0, 4), (0, 5)], full[:4], shard_id=0)
        writer.add_slice("part/explicit", (6, 5), [(4, 2), (0, 5)], full[4:], shard_id=1)
        writer.add_slice("part/whole", (4, 10), [Extent(0, None), Extent(0, 3)], wide[:, :3], shard_id=1)
        writer.add_slice("part/whole", (4, 10), [Extent(0, None), Extent(3, 7)], wide[:, 3:], shard_id=0)
    return {**values, "part/explicit": full, "part/whole": wide}


def test_tensorflow_reads_everything_we_write(tmp_path) -> None:
    prefix = str(tmp_path / "ours")
    values = write_everything(prefix)
    reader = BundleReader(prefix)
    assert_tensorflow_agrees(prefix, reader)
    for key in values:
        theirs = tf_bits(tf.train.load_variable(prefix, key))
        assert same_bits(theirs.astype(object) if values[key].dtype == object else theirs, values[key]), key


def test_saver_restores_what_we_write(tmp_path) -> None:
    prefix = str(tmp_path / "ours")
    values = write_everything(prefix)
    with tf.Graph().as_default():
        variables = {}
        for key, value in values.items():
            if key.startswith("part/") or dtype_of(key) in CANNOT_BE_VARIABLES:
                continue
            variables[key] = v1.get_variable(key, shape=value.shape, dtype=tf.as_dtype(dtype_of(key)),
                                             use_resource=True, initializer=v1.zeros_initializer()
                                             if value.dtype != object else None)  # fmt: skip
        # Restored into another partitioning than the one written: TensorFlow assembles from our slices.
        variables["part/explicit"] = v1.get_variable("part/explicit", shape=(6, 5), use_resource=True,
                                                     partitioner=v1.fixed_size_partitioner(3),
                                                     initializer=v1.zeros_initializer())  # fmt: skip
        variables["part/whole"] = v1.get_variable("part/whole", shape=(4, 10), dtype=tf.int64, use_resource=True,
                                                  initializer=v1.zeros_initializer())  # fmt: skip
        with v1.Session() as session:
            v1.train.Saver(list(variables.values())).restore(session, prefix)
            restored = session.run({key: tf.convert_to_tensor(variable) for key, variable in variables.items()})
    assert len(restored) == len(values) - 3 * len(CANNOT_BE_VARIABLES)
    for key, got in restored.items():
        value, got = values[key], tf_bits(got)
        if value.dtype == object:
            assert got.shape == value.shape and [bytes(x) for x in got.ravel()] == list(value.ravel()), key
        else:
            assert same_value_as_input(got, value, key), key


def test_init_from_checkpoint_reads_what_we_write(tmp_path) -> None:
    prefix = str(tmp_path / "ours")
    values = write_everything(prefix)
    keys = [key for key in values if dtype_of(key) not in CANNOT_BE_VARIABLES]
    with tf.Graph().as_default():
        created = {}
        for key in keys:
            value = values[key]
            partitioned = key.startswith("part/")
            created[key] = v1.get_variable(f"restored/{key}", shape=value.shape, use_resource=True,
                                           dtype=tf.as_dtype(value.dtype if partitioned else dtype_of(key)),
                                           partitioner=v1.fixed_size_partitioner(2) if partitioned else None,
                                           initializer=None if value.dtype == object else v1.zeros_initializer())
        v1.train.init_from_checkpoint(prefix, {key: f"restored/{key}" for key in keys})
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            restored = session.run({key: tf.convert_to_tensor(variable) for key, variable in created.items()})
    assert len(keys) == len(values) - 3 * len(CANNOT_BE_VARIABLES)
    for key in keys:
        got = tf_bits(restored[key])
        if values[key].dtype == object:
            assert [bytes(x) for x in got.ravel()] == list(values[key].ravel())
        else:
            assert same_value_as_input(got, values[key], key), key


def test_index_byte_identical_to_tensorflows_with_many_keys(tmp_path) -> None:
    """12,000 keys make an index of several 256 KiB blocks: TensorFlow's bytes, and ours, agree."""
    names = [f"{zlib.crc32(str(index).encode()):08x}/block_{index:05d}/{'conv' if index % 3 else 'batch_norm'}/kernel"
             for index in range(12000)]  # fmt: skip
    tensors = [tf.constant(np.full((index % 3,), index, dtype=np.int32)) for index in range(len(names))]
    prefix = str(tmp_path / "many")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    index = file_bytes(prefix + ".index")
    assert len(index) > 2 * 256 * 1024  # At least 3 data blocks, so index keys get shortened.
    items = read_table(index, prefix + ".index")
    assert len(items) == 12001 and build_table(items) == index
    reader = BundleReader(prefix)
    rewrite_in_stored_order(reader, str(tmp_path / "ours"))
    assert file_bytes(str(tmp_path / "ours.index")) == index
    assert file_bytes(data_path(str(tmp_path / "ours"), 0, 1)) == file_bytes(reader.data_path(0))


def test_dtype_table_matches_tensorflows() -> None:
    from partialsaver.format.dtypes import _ALL

    for dtype in _ALL:
        if not tensorflow_knows(dtype.name):
            continue  # a newer TensorFlow's dtype; its enum must still be free here
        assert tf.as_dtype(dtype.enum).name == dtype.name
        assert dtype_enum(dtype.name) == tf.as_dtype(dtype.name).as_datatype_enum
        if dtype.itemsize is not None and dtype.name not in ("bool",):
            assert tf.as_dtype(dtype.name).size == dtype.itemsize, dtype.name
    known = {dtype.enum for dtype in _ALL}
    for enum in range(1, 34):  # Every DataType TensorFlow (2.21) defines below the _REF types.
        assert enum in known
        if tensorflow_knows(dtype_name(enum)):
            assert dtype_name(enum) == tf.as_dtype(enum).name

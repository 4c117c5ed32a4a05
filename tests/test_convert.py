"""export_checkpoint / import_checkpoint: TensorFlow checkpoints to and from .safetensors
and .npz, checked with the safetensors package itself and with TensorFlow's own readers."""

import os
import re
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import GLOBAL_STEP, OPTIMIZER_SLOTS, SmartSaver, UsageError, list_variables
from partialsaver.convert import export_checkpoint, import_checkpoint

safetensors = pytest.importorskip("safetensors")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
v1 = tf.compat.v1

VALUES = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f64": np.array([np.pi, -0.0, np.nan], np.float64),
    "f16": np.arange(5, dtype=np.float16),
    "i8": np.array([-128, 0, 127], np.int8),
    "u16": np.array([0, 65535], np.uint16),
    "i64": np.array(2**40, np.int64),
    "flag": np.array([True, False]),
    "c64": np.array([1 + 2j], np.complex64),
    "empty": np.zeros((0, 3), np.float32),
}


@pytest.fixture
def source(write_checkpoint):
    values = dict(VALUES, bf16=tf.constant([1.5, -2.25, 3.0e38], tf.bfloat16).numpy())
    return write_checkpoint(values, partitions={"f32": 3}), values


def bits(array):
    array = np.asarray(array)
    return array.dtype.str if array.dtype.kind != "V" else None, array.shape, array.tobytes()


def test_export_to_safetensors_is_read_bit_identically_by_the_safetensors_package(source, tmp_path):
    checkpoint, values = source
    out = str(tmp_path / "model.safetensors")
    renames = export_checkpoint(checkpoint, out, lambda key: "model." + key)
    assert renames["f32"] == "model.f32"
    with open(out, "rb") as file:
        loaded = {name: info for name, info in safetensors.deserialize(file.read())}
    assert set(loaded) == {"model." + name for name in values}
    for name, value in values.items():
        info = loaded["model." + name]
        assert tuple(info["shape"]) == value.shape and info["data"] == np.ascontiguousarray(value).tobytes(), name
    assert loaded["model.bf16"]["dtype"] == "bfloat16" or loaded["model.bf16"]["dtype"] == "BF16"
    numpy_side = safetensors_numpy.load_file(out)  # the numpy loader (no bfloat16 in numpy)
    np.testing.assert_array_equal(numpy_side["model.f32"], values["f32"])


def test_export_to_npz_is_read_by_numpy_and_imported_back_bit_identically(source, tmp_path):
    checkpoint, values = source
    out = str(tmp_path / "model.npz")
    with pytest.raises(UsageError, match="bf16 \\(bfloat16\\).*exclude them.*or write .safetensors"):
        export_checkpoint(checkpoint, out)
    assert not os.path.exists(out)
    export_checkpoint(checkpoint, out, exclude="bf16")
    with np.load(out, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(set(values) - {"bf16"})
        for name in archive.files:
            assert bits(archive[name]) == bits(values[name]), name
    back = str(tmp_path / "back" / "model.ckpt")
    import_checkpoint(out, back)
    for name in set(values) - {"bf16"}:
        assert bits(tf.train.load_variable(back, name)) == bits(values[name]), name


def test_safetensors_round_trip_through_tensorflows_own_saver(source, tmp_path):
    checkpoint, values = source
    out = str(tmp_path / "model.safetensors")
    export_checkpoint(checkpoint, out)
    back = str(tmp_path / "back" / "model.ckpt")
    import_checkpoint(out, back)
    assert v1.train.latest_checkpoint(str(tmp_path / "back")) == back
    with tf.Graph().as_default():
        variables = {name: v1.get_variable(name, initializer=tf.constant(np.zeros_like(value)))
                     for name, value in values.items()}
        with v1.Session() as sess:
            v1.train.Saver().restore(sess, back)
            restored = sess.run(variables)
    for name, value in values.items():
        assert bits(restored[name]) == bits(value), name


def test_strings_go_to_npz_and_are_refused_by_safetensors_naming_the_way_out(write_checkpoint, tmp_path):
    checkpoint = write_checkpoint({"vocab": np.array([b"a", b"", b"\xff\x00x"]), "w": np.ones(2, np.float32)})
    with pytest.raises(UsageError, match="'vocab \\(string\\)'.*exclude them .* or write .npz"):
        export_checkpoint(checkpoint, str(tmp_path / "m.safetensors"))
    export_checkpoint(checkpoint, str(tmp_path / "m.npz"))
    back = str(tmp_path / "back" / "m.ckpt")
    import_checkpoint(str(tmp_path / "m.npz"), back)
    assert tf.train.load_variable(back, "vocab").tolist() == [b"a", b"", b"\xff\x00x"]


def bert_layout_checkpoint(directory):
    """A TF1 checkpoint laid out as Google BERT's: weights, AdamWeightDecay slots, global_step."""
    names = {"bert/embeddings/word_embeddings": [6, 4], "bert/embeddings/LayerNorm/gamma": [4],
             "bert/encoder/layer_0/attention/self/query/kernel": [4, 4],
             "bert/encoder/layer_0/attention/self/query/bias": [4], "cls/predictions/output_bias": [6]}
    rng = np.random.default_rng(0)
    values = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in names.items()}
    everything = dict(values)
    for name, shape in names.items():
        everything[f"{name}/adam_m"] = np.zeros(shape, np.float32)
        everything[f"{name}/adam_v"] = np.zeros(shape, np.float32)
    everything["global_step"] = np.array(1000, np.int64)
    from tests.conftest import save_values
    return save_values(directory, everything), values


HF_NAMES = {  # TF1 BERT -> HuggingFace-style names, as a regex map
    re.compile(r"^bert/embeddings/LayerNorm/gamma$"): "bert.embeddings.LayerNorm.weight",
    re.compile(r"^bert/embeddings/word_embeddings$"): "bert.embeddings.word_embeddings.weight",
    re.compile(r"^bert/encoder/layer_(\d+)/attention/self/(\w+)/kernel$"): r"bert.encoder.layer.\1.attention.self.\2.weight",
    re.compile(r"^bert/encoder/layer_(\d+)/attention/self/(\w+)/bias$"): r"bert.encoder.layer.\1.attention.self.\2.bias",
    re.compile(r"^cls/predictions/output_bias$"): "cls.predictions.bias",
}


def test_a_bert_checkpoint_to_hugging_face_names_and_back_into_the_original_graph(tmp_path):
    checkpoint, values = bert_layout_checkpoint(str(tmp_path / "bert"))
    exported = str(tmp_path / "bert.safetensors")
    renames = export_checkpoint(checkpoint, exported, HF_NAMES, exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP])
    assert sorted(renames) == sorted(values)  # no optimizer state, no step
    loaded = safetensors_numpy.load_file(exported)
    assert sorted(loaded) == sorted(renames.values())
    np.testing.assert_array_equal(loaded["bert.encoder.layer.0.attention.self.query.weight"],
                                  values["bert/encoder/layer_0/attention/self/query/kernel"])
    back = str(tmp_path / "back" / "model.ckpt")
    inverse = {new: old for old, new in renames.items()}
    import_checkpoint(exported, back, inverse)
    assert sorted(info.name for info in list_variables(back)) == sorted(values)
    with tf.Graph().as_default():  # the original training graph: weights and fresh optimizer state
        variables = {name: v1.get_variable(name, value.shape) for name, value in values.items()}
        slots = [v1.get_variable(f"{name}/adam_m", value.shape) for name, value in values.items()]
        step = v1.train.get_or_create_global_step()
        with v1.Session() as sess:
            plan = SmartSaver(exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP], strict=True).restore(sess, back)
            assert plan.ok and len(plan.restored) == len(values)
            for name, variable in variables.items():
                assert sess.run(variable).tobytes() == values[name].tobytes()
            assert sess.run(step) == 0 and all(sess.run(slot).shape for slot in slots)


def test_outputs_are_complete_or_absent(source, tmp_path, monkeypatch):
    checkpoint, _ = source
    out = tmp_path / "m.safetensors"
    export_checkpoint(checkpoint, str(out))
    before = out.read_bytes()
    with pytest.raises(UsageError, match="already exists; pass overwrite=True"):
        export_checkpoint(checkpoint, str(out))
    with open(checkpoint + ".data-00000-of-00001", "r+b") as data:  # damage a tensor: the export stops
        data.seek(8)
        data.write(b"\xff\xff")
    with pytest.raises(Exception, match="crc32c"):
        export_checkpoint(checkpoint, str(out), overwrite=True)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["ckpt", "m.safetensors"]


def test_import_of_a_damaged_or_foreign_file_is_a_clear_error(tmp_path):
    from partialsaver import CorruptCheckpointError

    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CorruptCheckpointError, match="is not a safetensors file"):
        import_checkpoint(str(tmp_path / "bad.safetensors"), str(tmp_path / "out" / "m"))
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("x.npy", b"garbage")
    with pytest.raises(CorruptCheckpointError, match="is not an .npz file"):
        import_checkpoint(str(tmp_path / "bad.npz"), str(tmp_path / "out" / "m"))
    with pytest.raises(UsageError, match="must end in .safetensors or .npz"):
        import_checkpoint(str(tmp_path / "bad.bin"), str(tmp_path / "out" / "m"))
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []

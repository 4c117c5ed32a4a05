"""Where a rename writes: relative and absolute dst, an existing directory, a file name, a
missing parent; the state file TensorFlow follows from anywhere; in place in O(index)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import list_variables, load_variable, rename_variables
from partialsaver.cli import main

v1 = tf.compat.v1


@pytest.fixture
def pre(write_checkpoint):
    return write_checkpoint({"backbone/w": np.arange(4, dtype=np.float32), "head/w": np.ones(2, np.float32)},
                            subdir="pre")


def test_a_relative_dst_writes_a_state_file_tensorflow_follows(pre, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["rename", pre, "out/m.ckpt", "--map", "backbone/=model/backbone/", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("wrote out/m.ckpt: 2 variables (1 renamed, 0 dropped)")
    assert (tmp_path / "out" / "checkpoint").read_text().splitlines()[0] == 'model_checkpoint_path: "m.ckpt"'
    assert v1.train.latest_checkpoint("out") == os.path.join("out", "m.ckpt")
    monkeypatch.chdir(tmp_path / "out")
    assert v1.train.latest_checkpoint(".") == os.path.join(".", "m.ckpt")
    monkeypatch.chdir("/")
    assert v1.train.latest_checkpoint(str(tmp_path / "out")) == str(tmp_path / "out" / "m.ckpt")


def test_an_existing_directory_as_dst_gets_the_sources_name(pre, tmp_path, capsys):
    (tmp_path / "d2").mkdir()
    assert main(["rename", pre, str(tmp_path / "d2") + "/", "--map", "head/w=head/v", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'd2' / 'model.ckpt'}: ")
    assert [info.name for info in list_variables(tmp_path / "d2")] == ["backbone/w", "head/v"]
    rename_variables(pre, str(tmp_path / "d2"), {"head/w": "head/u"}, overwrite=True)  # without the slash too
    assert [info.name for info in list_variables(tmp_path / "d2" / "model.ckpt")] == ["backbone/w", "head/u"]


def test_a_dst_named_like_an_index_file_prints_and_writes_its_prefix(pre, tmp_path, capsys):
    assert main(["rename", pre, str(tmp_path / "d3" / "model.ckpt.index"), "--map", "head/w=head/v", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'd3' / 'model.ckpt'}: ")
    assert sorted(os.listdir(tmp_path / "d3")) == ["checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def test_a_missing_parent_is_created(pre, tmp_path):
    dst = str(tmp_path / "a" / "b" / "c" / "m.ckpt")
    rename_variables(pre, dst, {"head/w": "head/v"})
    assert load_variable(dst, "head/v").tolist() == [1, 1]


def test_a_pure_rename_links_the_data_and_an_in_place_one_rewrites_only_the_index(pre, tmp_path):
    data = pre + ".data-00000-of-00001"
    dst = str(tmp_path / "linked" / "m.ckpt")
    rename_variables(pre, dst, {"head/w": "head/v"})
    assert os.path.samefile(dst + ".data-00000-of-00001", data)  # the same bytes, not a copy
    inode = os.stat(data).st_ino
    rename_variables(pre, pre, {"backbone/": "model/"}, overwrite=True)
    assert os.stat(data).st_ino == inode  # in place: the data file is untouched
    assert [info.name for info in list_variables(pre)] == ["head/w", "model/w"]
    assert load_variable(dst, "backbone/w").tolist() == [0, 1, 2, 3]  # the linked copy still reads its own names


def test_overwriting_a_dst_with_as_many_shards_never_writes_through_its_files(pre, tmp_path):
    dst = str(tmp_path / "m.ckpt")
    rename_variables(pre, dst, {"head/w": "head/v"})
    rename_variables(pre, dst, {"head/w": "head/u"}, overwrite=True)  # the old dst's data: a link to pre's
    assert [info.name for info in list_variables(dst)] == ["backbone/w", "head/u"]
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith("m.ckpt.data")) == [
        "m.ckpt.data-00000-of-00002", "m.ckpt.data-00001-of-00002"]  # another shard count: no name reused
    assert tf.train.load_variable(dst, "head/u").tolist() == [1, 1]  # TensorFlow reads it, the empty shard too
    rename_variables(dst, dst, {"backbone/w": "b"}, exclude="head", overwrite=True)
    assert [info.name for info in list_variables(dst)] == ["b"] and load_variable(pre, "head/w").tolist() == [1, 1]
    with tf.Graph().as_default():
        b = v1.get_variable("b", [4])
        with v1.Session() as sess:
            v1.train.Saver().restore(sess, dst)
            assert sess.run(b).tolist() == [0, 1, 2, 3]


def test_rename_and_export_on_tensorflows_ram_file_system(pre, tmp_path):
    from partialsaver._files import filesystem_for, has_atomic_replace
    from partialsaver.convert import export_checkpoint, import_checkpoint

    ram = "ram://partialsaver-rename"
    for name in os.listdir(os.path.dirname(pre)):
        tf.io.gfile.copy(os.path.join(os.path.dirname(pre), name), f"{ram}/pre/{name}", overwrite=True)
    try:
        from tensorflow.python.lib.io import file_io

        index = f"{ram}/pre/model.ckpt.index"  # atomic moves where TensorFlow's file system says it has them
        assert has_atomic_replace(filesystem_for(ram), index) == file_io.has_atomic_move(index)
        rename_variables(f"{ram}/pre", f"{ram}/out/m.ckpt", {"backbone/": "model/"})
        rename_variables(f"{ram}/out/m.ckpt", f"{ram}/out/m.ckpt", exclude="head", overwrite=True)
        assert [info.name for info in list_variables(f"{ram}/out")] == ["model/w"]
        # (tf.train.load_variable itself fails on ram://: it asks isdir first, which is true of a prefix there)
        assert v1.train.NewCheckpointReader(f"{ram}/out/m.ckpt").get_tensor("model/w").tolist() == [0, 1, 2, 3]
        export_checkpoint(f"{ram}/out", f"{ram}/m.npz")
        import_checkpoint(f"{ram}/m.npz", f"{ram}/back/m.ckpt")
        assert v1.train.latest_checkpoint(f"{ram}/back") == f"{ram}/back/m.ckpt"
        assert not [name for name in tf.io.gfile.listdir(f"{ram}/out") if "partialsaver-tmp" in name]
    finally:
        for path in tf.io.gfile.glob(f"{ram}/*") + tf.io.gfile.glob(f"{ram}/*/*"):
            if not tf.io.gfile.isdir(path):
                tf.io.gfile.remove(path)

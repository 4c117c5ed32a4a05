"""resolve_checkpoint: directories, prefixes and the files of a checkpoint, or a clear error."""

import os
import shutil

import numpy as np
import pytest

from partialsaver import CheckpointNotFoundError, CorruptCheckpointError, SmartSaver, list_variables, resolve_checkpoint


@pytest.fixture
def prefix(write_checkpoint):
    return write_checkpoint({"a": np.ones(2, np.float32)}, global_step=3)


@pytest.mark.parametrize("suffix", ["", ".index", ".meta", ".data-00000-of-00001"])
def test_a_prefix_and_its_files_resolve_to_the_prefix(prefix, suffix):
    assert resolve_checkpoint(prefix + suffix) == prefix


def test_a_directory_resolves_to_its_latest_checkpoint(prefix, write_checkpoint):
    later = write_checkpoint({"a": np.ones(2, np.float32)}, global_step=9)
    assert resolve_checkpoint(os.path.dirname(prefix)) == later


def test_a_pathlike_resolves(prefix):
    from pathlib import Path
    assert resolve_checkpoint(Path(prefix)) == prefix


def test_a_missing_path_says_what_is_there(prefix):
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint at .*model.ckpt-4.*prefixes in .*model.ckpt-3"):
        resolve_checkpoint(prefix[:-1] + "4")


def test_a_missing_directory(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as caught:
        resolve_checkpoint(tmp_path / "nope" / "model.ckpt")
    assert isinstance(caught.value, FileNotFoundError)


def test_an_empty_directory(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="holds no checkpoint \\(it is empty\\)"):
        resolve_checkpoint(tmp_path)


def test_a_directory_without_state_file_lists_the_prefixes(prefix):
    os.remove(os.path.join(os.path.dirname(prefix), "checkpoint"))
    with pytest.raises(CheckpointNotFoundError, match="no 'checkpoint' state file.*model.ckpt-3"):
        resolve_checkpoint(os.path.dirname(prefix))


def test_a_state_file_pointing_to_a_deleted_prefix(prefix, write_checkpoint):
    later = write_checkpoint({"a": np.ones(2, np.float32)}, global_step=9)
    for name in os.listdir(os.path.dirname(later)):
        if name.startswith("model.ckpt-9"):
            os.remove(os.path.join(os.path.dirname(later), name))
    with pytest.raises(CheckpointNotFoundError, match="points to .*model.ckpt-9.*does not exist.*model.ckpt-3"):
        resolve_checkpoint(os.path.dirname(prefix))


def test_a_moved_directory_still_resolves(prefix, tmp_path):
    moved = tmp_path / "moved"
    shutil.move(os.path.dirname(prefix), moved)  # its state file holds absolute paths to the old place
    assert resolve_checkpoint(moved) == os.path.join(str(moved), "model.ckpt-3")


def test_a_prefix_whose_data_file_is_gone(prefix):
    os.remove(prefix + ".data-00000-of-00001")
    with pytest.raises(CheckpointNotFoundError, match="missing 1 of its 1 data file.*model.ckpt-3.data-00000-of-00001"):
        resolve_checkpoint(prefix)


def test_garbage_in_the_index_is_a_corrupt_checkpoint(prefix, graph):
    with open(prefix + ".index", "wb") as index:
        index.write(b"this is not a table" * 10)
    with pytest.raises(CorruptCheckpointError, match="model.ckpt-3.index: not a TensorFlow checkpoint index"):
        list_variables(prefix)
    with pytest.raises(CorruptCheckpointError):
        SmartSaver().plan(prefix)


def test_the_state_file_itself_resolves_like_its_directory(prefix, write_checkpoint):
    later = write_checkpoint({"a": np.ones(2, np.float32)}, global_step=9)
    assert resolve_checkpoint(os.path.join(os.path.dirname(prefix), "checkpoint")) == later


def test_a_checkpoint_on_tensorflows_ram_file_system_resolves_from_its_prefix_and_directory(graph, sess):
    import tensorflow as tf

    from partialsaver import diff_checkpoints, load_variable

    variable = tf.compat.v1.get_variable("a", initializer=tf.constant([1.0, 2.0]))
    sess.run(variable.initializer)
    saved = SmartSaver().save(sess, "ram://partialsaver-test/run/model.ckpt")
    try:
        assert tf.io.gfile.isdir(saved)  # why the index is asked first: on ram:// a prefix is a "directory"
        assert resolve_checkpoint(saved) == saved
        assert resolve_checkpoint("ram://partialsaver-test/run") == saved
        assert [info.name for info in list_variables(saved)] == ["a"]
        assert load_variable(saved, "a").tolist() == [1.0, 2.0]
        assert diff_checkpoints("ram://partialsaver-test/run", saved).same
        sess.run(variable.assign([0.0, 0.0]))
        assert SmartSaver().restore(sess, saved).ok and sess.run(variable).tolist() == [1.0, 2.0]
    finally:
        tf.io.gfile.rmtree("ram://partialsaver-test")

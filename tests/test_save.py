"""save() mirrors restore(): each variable goes under the key restore() would read it from."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import NameMapError, SmartSaver, UsageError

v1 = tf.compat.v1


def keys_of(path):
    return sorted(v1.train.NewCheckpointReader(path).get_variable_to_shape_map())


def test_exact_map_saves_under_the_checkpoint_name(renamed_graph, sess, tmp_path):
    sess.run(v1.global_variables_initializer())
    path = SmartSaver(name_map={"v3": "v3_x"}).save(sess, str(tmp_path / "out" / "model.ckpt"))
    assert keys_of(path) == ["v1", "v2", "v3"]


def test_scope_map_round_trips(graph, sess, tmp_path):
    w = v1.get_variable("backbone/InceptionV1/w", initializer=tf.constant([1.0, 2.0]))
    head = v1.get_variable("head/b", initializer=tf.constant([3.0]))
    saver = SmartSaver(name_map={"InceptionV1/": "backbone/InceptionV1/"})
    sess.run(v1.global_variables_initializer())
    path = saver.save(sess, str(tmp_path / "model.ckpt"))
    assert keys_of(path) == ["InceptionV1/w", "head/b"]

    sess.run([w.assign([0.0, 0.0]), head.assign([0.0])])
    plan = saver.restore(sess, path)
    assert plan.ok and not plan.unused
    np.testing.assert_array_equal(sess.run(w), [1, 2])


def test_max_to_keep_and_global_step_are_passed_through(renamed_graph, sess, tmp_path):
    sess.run(v1.global_variables_initializer())
    saver = SmartSaver(max_to_keep=2)
    paths = [saver.save(sess, str(tmp_path / "model.ckpt"), global_step=step) for step in (1, 2, 3, 4)]
    assert paths[-1].endswith("model.ckpt-4")
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith(".index")) == [
        "model.ckpt-3.index", "model.ckpt-4.index"]
    assert v1.train.latest_checkpoint(str(tmp_path)) == paths[-1]


def test_save_creates_the_parent_directory(renamed_graph, sess, tmp_path):
    sess.run(v1.global_variables_initializer())
    path = SmartSaver().save(sess, str(tmp_path / "a" / "b" / "model.ckpt"))
    assert os.path.exists(path + ".index")


def test_regex_rules_are_not_inverted_variables_keep_their_graph_names(graph, sess, tmp_path):
    """Documented: regex and callable rules cannot be inverted, so save() uses graph names;
    the same SmartSaver restores such a checkpoint (no rule matches), and says that its rule
    matched nothing."""
    bias = v1.get_variable("l/bias", initializer=tf.constant([1.0]))
    saver = SmartSaver(name_map={re.compile(r"^(.*)/biases$"): r"\1/bias"})
    sess.run(v1.global_variables_initializer())
    path = saver.save(sess, str(tmp_path / "model.ckpt"))
    assert keys_of(path) == ["l/bias"]
    sess.run(bias.assign([0.0]))
    plan = saver.restore(sess, path)
    assert sess.run(bias) == [1.0] and [r.graph_name for r in plan.restored] == ["l/bias"]
    assert not plan.ok and [d.kind for d in plan.diagnostics] == ["unmatched_rule"]


def test_save_refuses_two_variables_under_one_key(graph, sess, tmp_path):
    v1.get_variable("tower0/w", initializer=tf.constant([1.0]))
    v1.get_variable("w", initializer=tf.constant([2.0]))
    sess.run(v1.global_variables_initializer())
    with pytest.raises(NameMapError, match="'w' <- \\['w', 'tower0/w'\\]|'w' <- \\['tower0/w', 'w'\\]"):
        SmartSaver(name_map={"/": "tower0/"}).save(sess, str(tmp_path / "model.ckpt"))
    assert not os.path.exists(tmp_path / "model.ckpt.index")


def test_save_only_writes_the_selected_variables(renamed_graph, sess, tmp_path):
    sess.run(v1.global_variables_initializer())
    path = SmartSaver(exclude="v2").save(sess, str(tmp_path / "model.ckpt"))
    assert keys_of(path) == ["v1", "v3_x"]


def test_unknown_saver_arguments_are_refused():
    with pytest.raises(UsageError, match="max_to_keeep"):
        SmartSaver(max_to_keeep=3)


def test_save_removes_only_stale_partial_files_of_killed_saves(renamed_graph, sess, tmp_path):
    sess.run(v1.global_variables_initializer())
    stale = tmp_path / "model.ckpt-3.data-00000-of-00001.tempstate42"
    fresh = tmp_path / "model.ckpt-4.data-00000-of-00001.tempstate43"
    other = tmp_path / "other.ckpt-3.data-00000-of-00001.tempstate44"
    for path in (stale, fresh, other):
        path.write_bytes(b"partial")
    for path in (stale, other):
        os.utime(path, (0, 0))
    SmartSaver().save(sess, str(tmp_path / "model.ckpt"), global_step=5)
    assert not stale.exists() and fresh.exists() and other.exists()


def test_save_into_an_existing_directory_is_refused(graph, sess, tmp_path):
    v1.get_variable("w", initializer=tf.constant([1.0]))
    sess.run(v1.global_variables_initializer())
    (tmp_path / "run").mkdir()
    with pytest.raises(UsageError, match="is a directory; pass a checkpoint prefix in it, e.g. '.*run/model.ckpt'"):
        SmartSaver().save(sess, str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_saver_argument_errors_are_usage_errors_not_disk_space(graph, sess, tmp_path):
    v1.get_variable("w", initializer=tf.constant([1.0]))
    sess.run(v1.global_variables_initializer())
    with pytest.raises(UsageError, match="cannot save .*'latest_filename' collides with 'save_path'") as caught:
        SmartSaver().save(sess, str(tmp_path / "model.ckpt"), latest_filename="model.ckpt")
    assert "disk space" not in str(caught.value)

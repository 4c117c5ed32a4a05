"""restore(): what is set, what is initialized, what is never touched, what the graph keeps."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CheckpointMismatchError, SmartSaver, UsageError
from tests.conftest import zeros_variable

v1 = tf.compat.v1


def test_every_variable_ends_initialized_and_restored_values_match(write_checkpoint, graph, sess):
    values = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([5], np.int64)}
    checkpoint = write_checkpoint(values)
    a, b = zeros_variable("a", [2, 3]), zeros_variable("b", [1], tf.int64)
    fresh = zeros_variable("fresh", [2])
    local = v1.get_variable("counter", [], initializer=v1.ones_initializer(),
                            collections=[v1.GraphKeys.LOCAL_VARIABLES])

    SmartSaver().restore(sess, checkpoint)

    assert sess.run(v1.report_uninitialized_variables()).size == 0
    np.testing.assert_array_equal(sess.run(a), values["a"])
    np.testing.assert_array_equal(sess.run(b), values["b"])
    np.testing.assert_array_equal(sess.run(fresh), [0, 0])
    assert sess.run(local) == 1.0


def test_a_variable_assigned_before_restore_keeps_its_value(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    zeros_variable("a", [2])
    mine = zeros_variable("mine", [2])
    local = v1.get_variable("local", [2], initializer=v1.zeros_initializer(),
                            collections=[v1.GraphKeys.LOCAL_VARIABLES])
    sess.run([mine.initializer, local.initializer])
    sess.run([mine.assign([3.0, 4.0]), local.assign([5.0, 6.0])])

    SmartSaver().restore(sess, checkpoint)

    np.testing.assert_array_equal(sess.run(mine), [3, 4])
    np.testing.assert_array_equal(sess.run(local), [5, 6])


def test_restoring_twice_adds_no_ops_the_second_time(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    zeros_variable("a", [2])
    zeros_variable("head", [3])
    saver = SmartSaver()
    saver.restore(sess, checkpoint)
    ops_after_first = len(graph.get_operations())

    saver.restore(sess, checkpoint)
    saver.restore(sess, checkpoint)

    assert len(graph.get_operations()) == ops_after_first


def test_restore_runs_in_a_finalized_graph_once_its_ops_exist(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    a = zeros_variable("a", [2])
    overwrite = a.assign([9.0, 9.0])
    saver = SmartSaver()
    saver.restore(sess, checkpoint)
    graph.finalize()
    sess.run(overwrite)
    saver.restore(sess, checkpoint)
    np.testing.assert_array_equal(sess.run(a), [1, 1])


def test_a_new_graph_without_ops_says_to_use_init_fn_when_finalized(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    zeros_variable("a", [2])
    graph.finalize()
    with pytest.raises(UsageError, match="finalized.*init_fn"):
        SmartSaver().restore(sess, checkpoint)


@pytest.mark.parametrize("use_resource", [True, False], ids=["resource", "ref"])
def test_resource_and_ref_variables(write_checkpoint, graph, sess, use_resource):
    checkpoint = write_checkpoint({"w": np.full([2, 2], 3, np.float32), "b": np.array([1, 2], np.int32)})
    w = v1.get_variable("w", [2, 2], initializer=v1.zeros_initializer(), use_resource=use_resource)
    b = v1.Variable([0, 0], name="b", use_resource=use_resource)
    new = v1.Variable([7.0], name="new", use_resource=use_resource)

    plan = SmartSaver().restore(sess, checkpoint)

    assert [r.graph_name for r in plan.restored] == ["b", "w"] and plan.missing == ("new",)
    np.testing.assert_array_equal(sess.run(w), np.full([2, 2], 3))
    np.testing.assert_array_equal(sess.run(b), [1, 2])
    np.testing.assert_array_equal(sess.run(new), [7])


def test_shape_and_dtype_mismatches_are_reported_all_at_once_and_block_the_restore(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"w": np.ones([4, 3], np.float32), "k": np.ones([2], np.float32),
                                   "n": np.ones([2], np.int32), "ok": np.ones([2], np.float32)})
    zeros_variable("w", [3, 4])
    zeros_variable("k", [5])
    zeros_variable("n", [2], tf.int64)
    ok = zeros_variable("ok", [2])

    with pytest.raises(CheckpointMismatchError, match="skip_mismatched=True") as caught:
        SmartSaver().restore(sess, checkpoint)

    plan = caught.value.plan
    assert [(m.graph_name, m.graph, m.checkpoint) for m in plan.shape_mismatches] == [
        ("k", (5,), (2,)), ("w", (3, 4), (4, 3))]
    assert [(m.graph_name, m.graph, m.checkpoint) for m in plan.dtype_mismatches] == [("n", "int64", "int32")]
    assert "graph 'w' (3, 4)  vs  checkpoint 'w' (4, 3)" in str(caught.value)
    assert sess.run(v1.report_uninitialized_variables()).size == 4  # nothing restored, nothing initialized
    del ok


def test_skip_mismatched_initializes_the_mismatched_variables(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"w": np.ones([4, 3], np.float32), "ok": np.ones([2], np.float32)})
    w = zeros_variable("w", [3, 4])
    ok = zeros_variable("ok", [2])

    plan = SmartSaver(skip_mismatched=True).restore(sess, checkpoint)

    assert plan.initialized == ("w",) and [r.graph_name for r in plan.restored] == ["ok"]
    np.testing.assert_array_equal(sess.run(w), np.zeros([3, 4]))
    np.testing.assert_array_equal(sess.run(ok), [1, 1])


def test_partitioned_variable_is_one_name_with_its_full_shape(write_checkpoint, graph, sess):
    value = np.arange(30, dtype=np.float32).reshape(10, 3)
    checkpoint = write_checkpoint({"emb": value}, partitions={"emb": 4})
    emb = v1.get_variable("emb", [10, 3], partitioner=v1.fixed_size_partitioner(3))
    seen = []

    plan = SmartSaver(include=lambda variable: seen.append(variable) or True).restore(sess, checkpoint)

    assert [(r.graph_name, r.shape) for r in plan.restored] == [("emb", (10, 3))]
    assert [variable.name for variable in seen] == ["emb"]  # the one PartitionedVariable, not part_N
    np.testing.assert_array_equal(sess.run(emb.as_tensor()), value)


def test_init_unrestored_false_leaves_the_rest_alone(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    zeros_variable("a", [2])
    zeros_variable("head", [2])
    SmartSaver().restore(sess, checkpoint, init_unrestored=False)
    assert sess.run(v1.report_uninitialized_variables()).tolist() == [b"head"]


def test_the_report_is_logged_at_warning_when_something_is_missing(seed_checkpoint, renamed_graph, sess, caplog):
    with caplog.at_level(logging.INFO, logger="partialsaver"):
        SmartSaver().restore(sess, seed_checkpoint)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings and "v3_x" in warnings[0].getMessage()


def test_a_session_is_required_in_graph_mode(seed_checkpoint, renamed_graph):
    with pytest.raises(UsageError, match="Session is needed in graph mode"):
        SmartSaver().restore(None, seed_checkpoint)


def test_a_closed_session_is_refused(seed_checkpoint, renamed_graph, graph):
    closed = v1.Session(graph=graph)
    closed.close()
    with pytest.raises(UsageError, match="session is closed"):
        SmartSaver().restore(closed, seed_checkpoint)


def test_variables_of_another_graph_are_refused(seed_checkpoint, renamed_graph, sess):
    with tf.Graph().as_default():
        other = zeros_variable("v1", [3])
    with pytest.raises(UsageError, match="another graph"):
        SmartSaver(var_list=[other]).restore(sess, seed_checkpoint)

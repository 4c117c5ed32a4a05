"""restore() is all or nothing, and leaves no variable uninitialized that the plan covers."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CorruptCheckpointError, SmartSaver, UsageError
from tests.conftest import zeros_variable

v1 = tf.compat.v1


def corrupt_middle(prefix):
    data = prefix + ".data-00000-of-00001"
    blob = bytearray(open(data, "rb").read())
    blob[len(blob) // 2: len(blob) // 2 + 64] = b"\xff" * 64
    open(data, "wb").write(bytes(blob))


def uninitialized(sess):
    return sorted(name.decode() for name in sess.run(v1.report_uninitialized_variables()))


def test_a_key_feeding_several_variables_never_restores_partly(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.full(4, 7, np.float32), "b": np.full(1 << 16, 5, np.float32)})
    corrupt_middle(checkpoint)
    for name, shape in (("x", [4]), ("y", [4]), ("b", [1 << 16])):
        zeros_variable(name, shape)
    with pytest.raises(CorruptCheckpointError, match="no variable was changed"):
        SmartSaver(name_map={"a": ["x", "y"]}).restore(sess, checkpoint)
    assert uninitialized(sess) == ["b", "x", "y"]


def test_the_read_error_names_its_cause(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"b": np.full(1 << 16, 5, np.float32)})
    with open(checkpoint + ".data-00000-of-00001", "r+b") as data:
        data.truncate(1000)
    zeros_variable("b", [1 << 16])
    with pytest.raises(CorruptCheckpointError) as caught:
        SmartSaver().restore(sess, checkpoint)
    assert "Graph execution error" not in str(caught.value)
    assert "OutOfRangeError: Read less bytes than requested" in str(caught.value)


def test_a_var_list_variable_outside_the_collections_is_initialized(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    a = zeros_variable("a", [2])
    head = v1.get_variable("head", [3], initializer=v1.ones_initializer(), collections=[])
    plan = SmartSaver(var_list=[a, head]).restore(sess, checkpoint)
    assert plan.initialized == ("head",)
    assert sess.run(head).tolist() == [1, 1, 1]


def test_slices_left_out_of_a_var_list_are_initialized(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"emb": np.ones([6, 4], np.float32)}, partitions={"emb": 2})
    emb = v1.get_variable("emb", [6, 4], partitioner=v1.fixed_size_partitioner(2), initializer=v1.zeros_initializer())
    first, second = list(emb)
    SmartSaver(var_list=[first]).restore(sess, checkpoint)
    assert uninitialized(sess) == []
    assert sess.run(first).tolist() == np.ones([3, 4]).tolist()
    assert sess.run(second).tolist() == np.zeros([3, 4]).tolist()


def test_an_initializer_that_needs_a_feed_is_refused_before_anything_is_restored(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    a = zeros_variable("a", [2])
    embedding = tf.compat.v1.placeholder(tf.float32, [3], name="embedding_values")
    v1.Variable(embedding, name="embedding")
    with pytest.raises(UsageError, match="need.* a fed placeholder: 'embedding \\(feeds embedding_values\\)'"):
        SmartSaver(include="a").restore(sess, checkpoint)
    assert uninitialized(sess) == ["a", "embedding"]
    SmartSaver(include="a").restore(sess, checkpoint, init_unrestored=False)
    assert sess.run(a).tolist() == [1, 1]


def test_a_session_works_outside_the_graph_context(write_checkpoint):
    checkpoint = write_checkpoint({"a": np.ones(2, np.float32)})
    graph = tf.Graph()
    with graph.as_default():
        a = zeros_variable("a", [2])
        saver = SmartSaver()
    with v1.Session(graph=graph) as sess:  # the default graph here is not `graph`
        assert saver.restore(sess, checkpoint).ok
        assert sess.run(a).tolist() == [1, 1]


def test_an_include_typo_is_logged_at_warning(write_checkpoint, graph, sess, caplog):
    checkpoint = write_checkpoint({"backbone/w": np.ones(2, np.float32)})
    zeros_variable("backbone/w", [2])
    with caplog.at_level(logging.WARNING, logger="partialsaver"):
        plan = SmartSaver(include="backbon").restore(sess, checkpoint)
    assert plan.restored == () and "include scope 'backbon' matched no variable" in caplog.text


def test_callables_see_a_partitioned_shape_as_a_tensor_shape(write_checkpoint, graph):
    checkpoint = write_checkpoint({"emb": np.ones([6, 4], np.float32)})
    v1.get_variable("emb", [6, 4], partitioner=v1.fixed_size_partitioner(2))
    plan = SmartSaver(include=lambda variable: variable.shape == (6, 4) and variable.shape.rank == 2).plan(checkpoint)
    assert [r.graph_name for r in plan.restored] == ["emb"]


def check_ops(graph):
    return {op.type for op in graph.get_operations() if op.name.startswith("partialsaver_initialized")}


@pytest.mark.parametrize("count", [200, 330])
@pytest.mark.parametrize("preset_every", [0, 3])
def test_many_candidates_are_checked_in_one_loop_and_kept_when_set(write_checkpoint, graph, sess, count, preset_every):
    # From 200 resource-variable candidates on the check is one while loop over their
    # stacked handles (in rows of 64, the last padded); it must still name each variable right.
    checkpoint = write_checkpoint({"restored": np.full(2, 7, np.float32)})
    zeros_variable("restored", [2])
    rest = [v1.get_variable(f"rest/v{index}", [3], initializer=v1.ones_initializer()) for index in range(count)]
    preset = set(range(0, count, preset_every)) if preset_every else set()
    sess.run([rest[index].initializer for index in preset])
    sess.run([rest[index].assign(np.full(3, 9, np.float32)) for index in preset])
    SmartSaver().restore(sess, checkpoint)
    assert {"While", "StatelessWhile"} & check_ops(graph)
    assert uninitialized(sess) == []
    values = sess.run(rest)
    assert [value.tolist() for value in values] == [[9.0] * 3 if index in preset else [1.0] * 3 for index in range(count)]


def test_many_reference_variables_are_checked_one_flag_each(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"restored": np.full(2, 7, np.float32)})
    zeros_variable("restored", [2])
    rest = [v1.Variable(np.ones(3, np.float32), name=f"ref{index}", use_resource=False) for index in range(250)]
    sess.run(rest[0].initializer)
    sess.run(rest[0].assign(np.full(3, 9, np.float32)))
    SmartSaver().restore(sess, checkpoint)
    assert "IsVariableInitialized" in check_ops(graph) and not {"While", "StatelessWhile"} & check_ops(graph)
    assert uninitialized(sess) == []
    assert sess.run(rest[0]).tolist() == [9, 9, 9] and sess.run(rest[-1]).tolist() == [1, 1, 1]

"""Real training setups: MonitoredTrainingSession warm start, optimizer state,
partitioned variables, one key into several towers."""

import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import GLOBAL_STEP, OPTIMIZER_SLOTS, SmartSaver, load_variable
from tests.conftest import zeros_variable

v1 = tf.compat.v1

PRETRAINED = {"backbone/w": np.arange(16, dtype=np.float32).reshape(4, 4) / 10, "backbone/b": np.ones(4, np.float32)}


def fine_tune_graph():
    """backbone (pretrained) + a new head + a train op; returns (train_op, variables by name)."""
    inputs = tf.constant(np.ones([2, 4], np.float32))
    w = v1.get_variable("backbone/w", [4, 4])
    b = v1.get_variable("backbone/b", [4])
    head = v1.get_variable("head/w", [4, 2], initializer=v1.constant_initializer(0.5))
    loss = tf.reduce_sum(tf.square(tf.matmul(tf.nn.relu(tf.matmul(inputs, w) + b), head) - 1.0))
    step = v1.train.get_or_create_global_step()
    train = v1.train.GradientDescentOptimizer(0.001).minimize(loss, global_step=step)
    return train, {"backbone/w": w, "backbone/b": b, "head/w": head, "global_step": step}


def monitored(checkpoint_dir, scaffold):
    return v1.train.MonitoredTrainingSession(
        checkpoint_dir=checkpoint_dir, scaffold=scaffold, save_summaries_steps=None, save_summaries_secs=None,
        log_step_count_steps=None)


def test_fine_tune_lifecycle_with_monitored_training_session(write_checkpoint, tmp_path):
    pretrained = write_checkpoint(PRETRAINED, subdir="pretrained")
    run_dir = str(tmp_path / "finetune")

    with tf.Graph().as_default():  # first run: an empty checkpoint_dir, so the warm start applies
        train, variables = fine_tune_graph()
        with monitored(run_dir, SmartSaver(include="backbone", strict=True).scaffold(pretrained)) as sess:
            first = sess.run(variables)
            for _ in range(3):
                sess.run(train)
            trained = sess.run(variables)
    np.testing.assert_array_equal(first["backbone/w"], PRETRAINED["backbone/w"])
    np.testing.assert_array_equal(first["head/w"], np.full([4, 2], 0.5))
    assert first["global_step"] == 0 and trained["global_step"] == 3
    assert not np.array_equal(trained["backbone/w"], PRETRAINED["backbone/w"])

    with tf.Graph().as_default():  # second run: resumes from its own checkpoint, no warm start
        train, variables = fine_tune_graph()
        with monitored(run_dir, SmartSaver(include="backbone").scaffold(pretrained)) as sess:
            resumed = sess.run(variables)
    assert resumed["global_step"] == 3
    for name in ("backbone/w", "head/w"):
        np.testing.assert_array_equal(resumed[name], trained[name])
        np.testing.assert_array_equal(resumed[name], load_variable(run_dir, name))


def test_init_fn_fails_before_training_when_the_plan_is_wrong(write_checkpoint):
    pretrained = write_checkpoint(PRETRAINED, subdir="pretrained")
    with tf.Graph().as_default():
        fine_tune_graph()
        with pytest.raises(Exception, match="missing"):
            SmartSaver(include="head", strict=True).init_fn(pretrained)


@pytest.fixture
def adam_checkpoint(tmp_path):
    with tf.Graph().as_default():
        w = v1.get_variable("model/w", initializer=tf.constant([1.0, 2.0]))
        b = v1.get_variable("model/b", initializer=tf.constant([0.5]))
        step = v1.train.get_or_create_global_step()
        train = v1.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(w * w) + b[0] ** 2, global_step=step)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(5):
                sess.run(train)
            weights = sess.run({"model/w": w, "model/b": b})
            return v1.train.Saver().save(sess, str(tmp_path / "adam" / "model.ckpt")), weights


def model_graph(optimizer=None):
    w = zeros_variable("model/w", [2])
    b = zeros_variable("model/b", [1])
    step = v1.train.get_or_create_global_step()
    if optimizer is not None:
        optimizer.minimize(tf.reduce_sum(w * w) + b[0] ** 2, global_step=step)
    return w, b, step


def test_adam_checkpoint_into_a_momentum_graph(adam_checkpoint, graph, sess):
    checkpoint, weights = adam_checkpoint
    w, _, step = model_graph(v1.train.MomentumOptimizer(0.1, 0.9))

    plan = SmartSaver().restore(sess, checkpoint)
    assert sorted(plan.missing) == ["model/b/Momentum", "model/w/Momentum"]
    assert sorted(plan.unused) == ["beta1_power", "beta2_power", "model/b/Adam", "model/b/Adam_1",
                                   "model/w/Adam", "model/w/Adam_1"]
    text = str(plan)
    assert "missing optimizer state: initialized if not yet (2)" in text and "unused optimizer state (6)" in text
    assert "unused checkpoint keys" not in text  # no model weight is unused
    np.testing.assert_array_equal(sess.run(w), weights["model/w"])
    assert sess.run(step) == 5

    clean = SmartSaver(exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP]).restore(sess, checkpoint)
    assert [r.graph_name for r in clean.restored] == ["model/b", "model/w"] and clean.ok
    # Adam's keys name no variable of this graph: unused (as the report defines them), not errors.
    assert clean.not_selected == ("global_step",) and len(clean.unused) == 6


def test_weights_only_restarts_the_step(adam_checkpoint, graph, sess):
    checkpoint, weights = adam_checkpoint
    w, b, step = model_graph()  # no optimizer at all
    plan = SmartSaver(exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP]).restore(sess, checkpoint)
    assert plan.ok and plan.not_selected == ("global_step",)
    assert sess.run(step) == 0
    np.testing.assert_array_equal(sess.run(b), weights["model/b"])


VALUE = np.arange(60, dtype=np.float32).reshape(12, 5)


@pytest.mark.parametrize("saved_parts, restored_parts", [(4, 3), (4, 1), (1, 4), (3, 3)])
def test_partitioned_variables_repartition_under_a_renamed_scope(write_checkpoint, graph, sess, saved_parts,
                                                                  restored_parts):
    partitions = {"old/emb": saved_parts} if saved_parts > 1 else {}
    checkpoint = write_checkpoint({"old/emb": VALUE}, partitions=partitions)
    partitioner = v1.fixed_size_partitioner(restored_parts) if restored_parts > 1 else None
    emb = v1.get_variable("new/emb", [12, 5], partitioner=partitioner)

    plan = SmartSaver(include="new/emb", name_map={"old/": "new/"}, strict=True).restore(sess, checkpoint)

    assert [(r.checkpoint_key, r.graph_name, r.shape) for r in plan.restored] == [("old/emb", "new/emb", (12, 5))]
    np.testing.assert_array_equal(sess.run(emb.as_tensor() if partitioner else emb), VALUE)


def test_filters_and_maps_never_see_part_names(write_checkpoint, graph):
    checkpoint = write_checkpoint({"emb": VALUE}, partitions={"emb": 4})
    v1.get_variable("emb", [12, 5], partitioner=v1.fixed_size_partitioner(3))
    plan = SmartSaver(include=re.compile("part_")).plan(checkpoint)
    assert plan.restored == () and plan.diagnostics[0].kind == "unmatched_include"


def test_a_partitioned_shape_mismatch_compares_the_full_shape(write_checkpoint, graph):
    checkpoint = write_checkpoint({"emb": VALUE}, partitions={"emb": 4})
    v1.get_variable("emb", [12, 6], partitioner=v1.fixed_size_partitioner(3))
    plan = SmartSaver().plan(checkpoint)
    assert [(m.graph_name, m.graph, m.checkpoint) for m in plan.shape_mismatches] == [("emb", (12, 6), (12, 5))]


def test_one_key_into_two_towers(write_checkpoint, graph, sess):
    values = {"backbone/conv/w": np.full([3, 3], 2, np.float32), "backbone/fc/b": np.ones(4, np.float32)}
    checkpoint = write_checkpoint(values)
    towers = {f"tower{i}/backbone/{name}": zeros_variable(f"tower{i}/backbone/{name}", shape)
              for i in (0, 1) for name, shape in (("conv/w", [3, 3]), ("fc/b", [4]))}

    saver = SmartSaver(name_map={"backbone/": ["tower0/backbone/", "tower1/backbone/"]}, strict=True)
    plan = saver.restore(sess, checkpoint)

    assert sorted((r.checkpoint_key, r.graph_name) for r in plan.restored) == [
        ("backbone/conv/w", "tower0/backbone/conv/w"), ("backbone/conv/w", "tower1/backbone/conv/w"),
        ("backbone/fc/b", "tower0/backbone/fc/b"), ("backbone/fc/b", "tower1/backbone/fc/b")]
    for name, variable in towers.items():
        np.testing.assert_array_equal(sess.run(variable), values[name.split("/", 1)[1]])
    ops = len(graph.get_operations())
    saver.restore(sess, checkpoint)
    assert len(graph.get_operations()) == ops

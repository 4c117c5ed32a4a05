"""A real network written by someone else: tf-slim's VGG-16, head swapped from 1000 to 5 classes."""

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import SmartSaver
from tests.conftest import build_vgg

pytest.importorskip("tf_slim")

v1 = tf.compat.v1
FC8 = ["vgg_16/fc8/biases", "vgg_16/fc8/weights"]


def first_weights(sess, name="vgg_16/conv1/conv1_1/weights"):
    variable = next(v for v in v1.global_variables() if v.op.name == name)
    return sess.run(variable)


def test_skip_mismatched_restores_every_layer_but_the_new_head(imagenet_vgg, graph, sess):
    checkpoint, conv1 = imagenet_vgg
    build_vgg(5)
    plan = SmartSaver(skip_mismatched=True).restore(sess, checkpoint)

    assert [(m.graph_name, m.graph, m.checkpoint) for m in plan.shape_mismatches] == [
        ("vgg_16/fc8/biases", (5,), (1000,)), ("vgg_16/fc8/weights", (1, 1, 4096, 5), (1, 1, 4096, 1000))]
    assert plan.initialized == tuple(FC8)
    assert len(plan.restored) == 30 and not plan.missing and not plan.unused
    assert "graph 'vgg_16/fc8/weights' (1, 1, 4096, 5)  vs  checkpoint 'vgg_16/fc8/weights' (1, 1, 4096, 1000)" in str(plan)
    np.testing.assert_array_equal(first_weights(sess), conv1)
    assert sess.run(v1.report_uninitialized_variables()).size == 0


def test_excluding_the_head_has_no_mismatch_at_all(imagenet_vgg, graph, sess):
    checkpoint, conv1 = imagenet_vgg
    build_vgg(5)
    plan = SmartSaver(exclude="vgg_16/fc8", strict=False).restore(sess, checkpoint)
    assert plan.ok and not plan.shape_mismatches and plan.not_selected == tuple(FC8)
    assert len(plan.restored) == 30
    np.testing.assert_array_equal(first_weights(sess), conv1)


def test_a_net_under_a_new_scope_needs_one_map_entry(imagenet_vgg, graph, sess):
    checkpoint, conv1 = imagenet_vgg
    build_vgg(1000, scope="backbone/vgg_16")
    assert SmartSaver().plan(checkpoint).proposed_name_map == {"vgg_16/": "backbone/vgg_16/"}
    plan = SmartSaver(name_map={"vgg_16/": "backbone/vgg_16/"}, strict=True).restore(sess, checkpoint)
    assert plan.ok and len(plan.restored) == 32
    np.testing.assert_array_equal(first_weights(sess, "backbone/vgg_16/conv1/conv1_1/weights"), conv1)

"""A real parameter-server cluster on localhost: 2 ps tasks + 1 worker, each its own process.

Variables are placed with replica_device_setter; SmartSaver(sharded=True) saves from the
cluster and restores partially into a single-process graph and back into the cluster
under a renamed scope.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import SmartSaver, list_variables

v1 = tf.compat.v1

def build(scope, spec):
    setter = v1.train.replica_device_setter(ps_tasks=2, cluster=tf.train.ClusterSpec(spec))
    with v1.device(setter):
        variables = {name: v1.get_variable(f"{scope}/{name}", initializer=tf.constant(value))
                     for name, value in VALUES.items()}
        head = v1.get_variable(f"{scope}/head", initializer=tf.constant([7.0, 7.0]))
    return variables, head


VALUES = {"conv/w": np.arange(6, dtype=np.float32).reshape(2, 3), "conv/b": np.ones(3, np.float32),
          "fc/w": np.full([3, 2], 2, np.float32)}


@pytest.fixture(scope="module")
def cluster_checkpoint(cluster, tmp_path_factory):
    spec, target = cluster
    directory = tmp_path_factory.mktemp("cluster_ckpt")
    with tf.Graph().as_default():
        variables, _ = build("old", spec)
        devices = sorted({variable.device for variable in variables.values()})
        with v1.Session(target) as sess:
            sess.run(v1.global_variables_initializer())
            path = SmartSaver(sharded=True).save(sess, str(directory / "model.ckpt"), global_step=1)
    return path, devices


def test_variables_live_on_both_ps_tasks_and_the_save_is_sharded(cluster_checkpoint):
    path, devices = cluster_checkpoint
    assert devices == ["/job:ps/task:0", "/job:ps/task:1"]
    shards = [name for name in os.listdir(os.path.dirname(path)) if ".data-" in name]
    assert len(shards) == 2  # one shard per parameter server
    assert [info.name for info in list_variables(path)] == ["old/conv/b", "old/conv/w", "old/fc/w", "old/head"]


def test_partial_restore_into_a_single_process_graph(cluster_checkpoint, graph, sess):
    path, _ = cluster_checkpoint
    conv_w = v1.get_variable("old/conv/w", [2, 3])
    v1.get_variable("old/conv/b", [3])
    head = v1.get_variable("old/head", [2], initializer=v1.zeros_initializer())
    plan = SmartSaver(include="old/conv").restore(sess, path)
    assert [r.graph_name for r in plan.restored] == ["old/conv/b", "old/conv/w"] and plan.ok
    np.testing.assert_array_equal(sess.run(conv_w), VALUES["conv/w"])
    np.testing.assert_array_equal(sess.run(head), [0, 0])


def test_restore_into_the_cluster_under_a_renamed_scope(cluster, cluster_checkpoint):
    spec, target = cluster
    path, _ = cluster_checkpoint
    with tf.Graph().as_default():
        variables, head = build("new", spec)
        saver = SmartSaver(exclude="new/head", name_map={"old/": "new/"}, sharded=True)
        with v1.Session(target) as sess:
            plan = saver.restore(sess, path)
            assert len(plan.restored) == 3 and plan.not_selected == ("old/head",)
            for name, variable in variables.items():
                np.testing.assert_array_equal(sess.run(variable), VALUES[name])
            np.testing.assert_array_equal(sess.run(head), [7, 7])  # initialized on its ps, not restored
            assert sess.run(v1.report_uninitialized_variables()).size == 0

"""The seed experiments that started partialsaver, reproduced exactly."""

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CheckpointMismatchError, SmartSaver

v1 = tf.compat.v1


def test_plain_saver_fails_late_on_the_first_missing_key(seed_checkpoint, renamed_graph, sess):
    with pytest.raises(tf.errors.NotFoundError, match="Key v3_x not found in checkpoint"):
        v1.train.Saver().restore(sess, seed_checkpoint)


def test_smart_saver_restores_what_matches_and_initializes_the_rest(seed_checkpoint, renamed_graph, sess):
    plan = SmartSaver().restore(sess, seed_checkpoint)

    values = sess.run(renamed_graph)
    np.testing.assert_array_equal(values["v1"], [1, 1, 1])
    np.testing.assert_array_equal(values["v2"], [-1] * 5)
    np.testing.assert_array_equal(values["v3_x"], [0] * 4)
    assert plan.missing == ("v3_x",)
    assert plan.unused == ("v3",)
    assert plan.initialized == ("v3_x",)
    assert [(r.checkpoint_key, r.graph_name) for r in plan.restored] == [("v1", "v1"), ("v2", "v2")]
    assert plan.suggestions["v3_x"][0] == "v3"
    assert not plan.ok


def test_name_map_restores_the_renamed_variable(seed_checkpoint, renamed_graph, sess):
    plan = SmartSaver(name_map={"v3": "v3_x"}).restore(sess, seed_checkpoint)

    np.testing.assert_array_equal(sess.run(renamed_graph["v3_x"]), [-2] * 4)
    assert plan.missing == () and plan.unused == () and plan.ok
    assert str(plan).splitlines()[1].strip() == "all 3 variables restored"


def test_strict_raises_before_any_variable_changes(seed_checkpoint, renamed_graph, sess):
    sess.run(v1.global_variables_initializer())
    sess.run(renamed_graph["v1"].assign([7.0, 7.0, 7.0]))

    with pytest.raises(CheckpointMismatchError, match="v3_x") as caught:
        SmartSaver(strict=True).restore(sess, seed_checkpoint)

    message = str(caught.value)
    assert "did you mean 'v3'" in message and "name_map={'v3': 'v3_x'}" in message
    assert caught.value.plan.missing == ("v3_x",)
    np.testing.assert_array_equal(sess.run(renamed_graph["v1"]), [7, 7, 7])  # untouched


def test_strict_raises_in_a_fresh_session_and_leaves_everything_uninitialized(seed_checkpoint, renamed_graph, sess):
    with pytest.raises(CheckpointMismatchError):
        SmartSaver().restore(sess, seed_checkpoint, strict=True)
    assert sorted(sess.run(v1.report_uninitialized_variables())) == [b"v1", b"v2", b"v3_x"]

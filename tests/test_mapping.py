"""name_map: exact > longest scope > first regex, no chaining, and every bad entry listed."""

import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import NameMapError, SmartSaver, UsageError
from partialsaver.mapping import NameMap
from tests.conftest import zeros_variable

v1 = tf.compat.v1

PRECEDENCE_MAP = {
    "a/w": "exact/w",
    "a/": "scope_a/",
    "a/b/": "scope_ab/",
    re.compile(r"^a/(.*)$"): r"regex_first/\1",
    re.compile(r"^(.*)/biases$"): r"\1/bias",
    re.compile(r"^net/(.*)$"): r"never/\1",
}


@pytest.mark.parametrize("key, expected", [
    ("a/w", ("exact/w",)),            # exact beats scope and regex
    ("a/v", ("scope_a/v",)),          # scope beats regex
    ("a/b/v", ("scope_ab/v",)),       # the longest scope wins
    ("a/bc/v", ("scope_a/bc/v",)),    # scopes are segment-aware
    ("net/biases", ("net/bias",)),    # the first matching regex wins (insertion order)
    ("net/w", ("never/w",)),
    ("zzz", ("zzz",)),                # untouched keys keep their names
])
def test_precedence(key, expected):
    assert NameMap(PRECEDENCE_MAP).apply(key)[0] == expected


@pytest.mark.parametrize("name_map, key, expected", [
    ({"/": "tower0/"}, "conv/w", "tower0/conv/w"),
    ({"/": "tower0/", "conv/": "c/"}, "conv/w", "c/w"),
    ({"net/": "/"}, "net/conv/w", "conv/w"),
    ({"a": "b", "b": "c"}, "a", "b"),  # rules do not chain
    ({re.compile(r"^(.*)/ExponentialMovingAverage$"): r"\1"}, "w/ExponentialMovingAverage", "w"),
])
def test_root_scopes_and_no_chaining(name_map, key, expected):
    assert NameMap(name_map).apply(key)[0] == (expected,)


def test_a_callable_map_and_none_keeps_the_name():
    name_map = NameMap(lambda key: key.replace("weights", "kernel") if "weights" in key else None)
    assert name_map.apply("l/weights") == (("l/kernel",), name_map.rules[0])
    assert name_map.apply("l/bias") == (("l/bias",), None)


def test_every_bad_entry_is_listed_at_once():
    with pytest.raises(NameMapError) as caught:
        NameMap({"a/": "b", "c": "d/", re.compile("(x)"): r"\2", "e": 5, "": "f"})
    message = str(caught.value)
    assert "5 invalid entries" in message
    for fragment in ("'a/' -> ['b']", "'c' -> ['d/']", "invalid replacement '\\\\2'", "target 5", "''"):
        assert fragment in message
    assert "e.g. 'a/': 'b/'" in message  # says how to fix it


@pytest.mark.parametrize("bad", [["v3", "v3_x"], "v3=v3_x", 3])
def test_a_map_that_is_neither_dict_nor_callable(bad):
    with pytest.raises(NameMapError, match="name_map must be a dict"):
        SmartSaver(name_map=bad)


def test_keys_mapped_by_rules_onto_one_variable_collide(write_checkpoint, graph):
    checkpoint = write_checkpoint({"x/w": np.ones(2, np.float32), "y/w": np.ones(2, np.float32),
                                   "a": np.ones(1, np.float32), "b": np.ones(1, np.float32)})
    zeros_variable("w", [2])
    zeros_variable("t", [1])
    saver = SmartSaver(name_map={re.compile(r"^x/(.*)"): r"\1", re.compile(r"^y/(.*)"): r"\1", "a": "t", "b": "t"})
    with pytest.raises(NameMapError, match="2 case") as caught:
        saver.plan(checkpoint)
    assert "'t' <- 'a' (exact rule 'a' -> 't') and 'b'" in str(caught.value)
    assert "'w' <- 'x/w'" in str(caught.value)


def test_a_mapped_key_beats_a_key_that_kept_its_name(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"w": np.zeros(2, np.float32), "w/ExponentialMovingAverage": np.ones(2, np.float32)})
    w = zeros_variable("w", [2])
    plan = SmartSaver(name_map={re.compile(r"^(.*)/ExponentialMovingAverage$"): r"\1"}).restore(sess, checkpoint)
    assert [(r.checkpoint_key, r.graph_name) for r in plan.restored] == [("w/ExponentialMovingAverage", "w")]
    assert plan.unused == () and plan.superseded == ("w",)  # superseded, never unused
    np.testing.assert_array_equal(sess.run(w), [1, 1])


def test_targets_that_name_no_variable_are_listed(seed_checkpoint, renamed_graph):
    with pytest.raises(NameMapError, match="2 graph variable") as caught:
        SmartSaver(name_map={"v3": "v3_y", "v1": "v1_y"}).plan(seed_checkpoint)
    assert "'v1' -> 'v1_y'" in str(caught.value) and "'v3' -> 'v3_y'" in str(caught.value)


def test_variable_objects_as_values(seed_checkpoint, renamed_graph, sess):
    plan = SmartSaver(name_map={"v3": renamed_graph["v3_x"]}).restore(sess, seed_checkpoint)
    assert plan.ok
    np.testing.assert_array_equal(sess.run(renamed_graph["v3_x"]), [-2] * 4)


def test_variable_objects_from_another_graph_are_refused(seed_checkpoint, renamed_graph):
    with tf.Graph().as_default():
        stranger = zeros_variable("v3_x", [4])
    with pytest.raises(UsageError, match="another graph"):
        SmartSaver(name_map={"v3": stranger}).plan(seed_checkpoint)


def test_a_rule_that_matched_nothing_is_a_diagnostic(seed_checkpoint, renamed_graph):
    plan = SmartSaver(name_map={"v3": "v3_x", "old/": "new/"}).plan(seed_checkpoint)
    assert [(d.kind, d.subject) for d in plan.diagnostics] == [("unmatched_rule", "scope rule 'old/' -> 'new/'")]


def test_scope_map_restores_a_moved_backbone(write_checkpoint, graph, sess):
    values = {"InceptionV1/conv/w": np.full([2, 2], 5, np.float32), "InceptionV1/Logits/w": np.ones([2, 9], np.float32)}
    checkpoint = write_checkpoint(values)
    conv = zeros_variable("backbone/InceptionV1/conv/w", [2, 2])
    zeros_variable("backbone/InceptionV1/Logits/w", [2, 3])
    saver = SmartSaver(include="backbone", exclude="backbone/InceptionV1/Logits",
                       name_map={"InceptionV1/": "backbone/InceptionV1/"})
    plan = saver.restore(sess, checkpoint)
    assert plan.ok and plan.not_selected == ("InceptionV1/Logits/w",) and plan.diagnostics == ()
    np.testing.assert_array_equal(sess.run(conv), values["InceptionV1/conv/w"])


def test_a_dict_var_list_is_taken_like_saver_takes_it(seed_checkpoint, renamed_graph, sess):
    saver = SmartSaver({"v3": renamed_graph["v3_x"], "v1": renamed_graph["v1"]})
    plan = saver.restore(sess, seed_checkpoint)
    assert [(r.checkpoint_key, r.graph_name) for r in plan.restored] == [("v1", "v1"), ("v3", "v3_x")]
    assert plan.ok and plan.not_selected == ("v2",) and plan.diagnostics == ()
    with pytest.raises(UsageError, match="either the dict or name_map"):
        SmartSaver({"v3": renamed_graph["v3_x"]}, name_map={"a": "b"})

"""include / exclude / expect_new: scopes are segment-aware, include then exclude."""

import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import GLOBAL_STEP, OPTIMIZER_SLOTS, CheckpointMismatchError, NameMapError, SmartSaver
from partialsaver.selection import in_scope
from partialsaver.selection import select
from tests.conftest import zeros_variable

v1 = tf.compat.v1

NAMES = ["useful_scope/w", "useful_scope/b", "useful_scope_1/w", "useful_scopex", "useful_scope",
         "other/useful_scope/w", "net/conv1/weights", "net/conv1/biases", "net/fc/weights"]


@pytest.mark.parametrize("scope, expected", [
    ("useful_scope", ["useful_scope/w", "useful_scope/b", "useful_scope"]),
    ("useful_scope/", ["useful_scope/w", "useful_scope/b", "useful_scope"]),
    ("useful_scope/w", ["useful_scope/w"]),
    ("net/conv1", ["net/conv1/weights", "net/conv1/biases"]),
    ("net/conv", []),
    ("", NAMES),
])
def test_scopes_are_segment_aware(scope, expected):
    assert [name for name in NAMES if in_scope(name, scope)] == expected


@pytest.mark.parametrize("include, exclude, expected", [
    (None, None, NAMES),
    ("net", None, ["net/conv1/weights", "net/conv1/biases", "net/fc/weights"]),
    ("net", "net/fc", ["net/conv1/weights", "net/conv1/biases"]),
    (["net/fc", "useful_scope_1"], None, ["useful_scope_1/w", "net/fc/weights"]),
    (re.compile(r"/weights$"), None, ["net/conv1/weights", "net/fc/weights"]),
    (re.compile(r"/weights$"), re.compile("fc"), ["net/conv1/weights"]),
    (lambda name: name.endswith("/w"), "other", ["useful_scope/w", "useful_scope_1/w"]),
    (None, ["useful_scope", "net"], ["useful_scope_1/w", "useful_scopex", "other/useful_scope/w"]),
])
def test_include_then_exclude(include, exclude, expected):
    from partialsaver.selection import normalize_specs
    selection = select(NAMES, normalize_specs(include, "include"), normalize_specs(exclude, "exclude"))
    assert list(selection.selected) == expected
    assert selection.diagnostics == ()


@pytest.mark.parametrize("argument, spec, fragment", [
    ("include", "net/conv2", "include scope 'net/conv2' matched no variable"),
    ("exclude", "net/Logit", "exclude scope 'net/Logit' matched no included variable"),
    ("exclude", re.compile("^head/"), "exclude regex '^head/' matched no included variable"),
])
def test_a_spec_that_matches_nothing_is_a_diagnostic(argument, spec, fragment):
    include = ["net"] if argument == "exclude" else [spec]
    exclude = [spec] if argument == "exclude" else []
    selection = select(NAMES, include, exclude)
    assert [d.message for d in selection.diagnostics][0].startswith(fragment)
    assert selection.diagnostics[0].kind == f"unmatched_{argument}"


def test_presets_match_optimizer_state_and_global_step_only():
    names = ["w", "w/Adam", "w/Adam_1", "w/Momentum", "w/RMSProp_1", "scope/b/Adagrad", "beta1_power", "beta2_power",
             "w/Ftrl_1", "global_step", "Adam", "adam_kernel", "net/global_step", "global_step_x"]
    assert [n for n in names if OPTIMIZER_SLOTS.search(n)] == [
        "w/Adam", "w/Adam_1", "w/Momentum", "w/RMSProp_1", "scope/b/Adagrad", "beta1_power", "beta2_power", "w/Ftrl_1"]
    assert [n for n in names if GLOBAL_STEP.search(n)] == ["global_step", "net/global_step"]
    # Presets are generic: matching nothing is not a typo worth a diagnostic.
    assert select(["w"], (), (OPTIMIZER_SLOTS, GLOBAL_STEP)).diagnostics == ()


@pytest.mark.parametrize("bad", [5, [re.compile("x"), 3.0], {"a": 1}])
def test_a_spec_of_the_wrong_type_is_a_name_map_error(bad):
    with pytest.raises(NameMapError, match="include"):
        SmartSaver(include=bad)


def test_callables_see_variables_and_can_test_shape_and_dtype(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"big": np.ones([4, 4], np.float32), "small": np.ones([2], np.float32),
                                   "count": np.array(3, np.int64)})
    zeros_variable("big", [4, 4])
    zeros_variable("small", [2])
    zeros_variable("count", [], tf.int64)

    saver = SmartSaver(include=lambda variable: variable.dtype.base_dtype == tf.float32,
                       exclude=lambda variable: variable.shape.num_elements() > 10)
    plan = saver.restore(sess, checkpoint)

    assert [r.graph_name for r in plan.restored] == ["small"]
    assert plan.not_selected == ("big", "count")
    assert plan.unselected == ("big", "count")


def test_the_unmatched_spec_shows_in_the_plan_and_fails_strict(seed_checkpoint, renamed_graph, sess):
    saver = SmartSaver(exclude="v3x", name_map={"v3": "v3_x"})
    plan = saver.plan(seed_checkpoint)
    assert [d.subject for d in plan.diagnostics] == ["scope 'v3x'"]
    assert "perhaps you misspelled it?" in str(plan)
    with pytest.raises(CheckpointMismatchError, match="matched nothing: scope 'v3x'"):
        saver.restore(sess, seed_checkpoint, strict=True)


def test_excluded_variables_are_initialized_never_restored(seed_checkpoint, renamed_graph, sess):
    plan = SmartSaver(exclude="v2", name_map={"v3": "v3_x"}).restore(sess, seed_checkpoint)
    assert plan.not_selected == ("v2",) and plan.ok
    np.testing.assert_array_equal(sess.run(renamed_graph["v2"]), np.zeros(5))

"""Nothing silent, nothing false: what a restore did less than asked is in the plan, makes it
not ok and reaches stderr; what was handled as asked is reported as handled."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CheckpointMismatchError, NameMapError, SmartSaver, VariableNotFoundError, load_variable
from tests.conftest import save_tensors, zeros_variable

v1 = tf.compat.v1
ROOT = Path(__file__).resolve().parents[1]
BACKBONE = {"model/backbone/conv1/w": np.ones([2, 2], np.float32), "model/backbone/conv1/b": np.ones(2, np.float32),
            "model/head/w": np.ones(3, np.float32)}


@pytest.fixture
def backbone(write_checkpoint, graph):
    checkpoint = write_checkpoint(BACKBONE)
    variables = {name: zeros_variable(name, value.shape) for name, value in BACKBONE.items()}
    return checkpoint, variables


def test_an_include_typo_restores_nothing_and_the_plan_is_not_ok(backbone, sess):
    checkpoint, _ = backbone
    plan = SmartSaver(include="model/backbon").restore(sess, checkpoint)
    assert plan.restored == () and not plan.ok
    assert plan.problems == ("nothing restored", "1 spec/rule matched nothing")
    message = plan.diagnostics[0].message
    assert message.startswith("include scope 'model/backbon' matched no variable (closest: 'model/backbone'")
    assert "not ok: nothing restored; 1 spec/rule matched nothing" in str(plan)


@pytest.mark.parametrize("glob, expected", [
    ("model/backbone/*", ["model/backbone/conv1/b", "model/backbone/conv1/w"]),
    ("model/*/w", ["model/backbone/conv1/w", "model/head/w"]),
    ("model/backbone/conv1/[wx]", ["model/backbone/conv1/w"]),
    ("model/backbone/conv?/b", ["model/backbone/conv1/b"]),
])
def test_globs_select_whole_names(backbone, glob, expected):
    checkpoint, _ = backbone
    plan = SmartSaver(include=glob).plan(checkpoint)
    assert [r.graph_name for r in plan.restored] == expected and plan.ok


def test_a_restore_that_did_less_than_asked_is_on_stderr_without_any_logging_setup(tmp_path):
    script = """
import os, sys
import numpy as np, tensorflow as tf
from partialsaver import SmartSaver
from tests.conftest import save_values
v1 = tf.compat.v1
path = save_values(sys.argv[1], {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)})
with tf.Graph().as_default():
    for name in ("a", "b"):
        v1.get_variable(name, [2])
    with v1.Session() as sess:
        SmartSaver(include=sys.argv[2]).restore(sess, path)
print("done")
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    runs = {}
    for include in ("typo", "a"):
        result = subprocess.run([sys.executable, "-c", script, str(tmp_path / include), include], capture_output=True,
                                text=True, env=env, timeout=300)
        assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
        runs[include] = [line for line in result.stderr.splitlines()  # TensorFlow's own start-up lines aside
                         if not line.startswith(("I0000", "W0000", "WARNING: All log messages before absl"))]
    assert "  0 of 0 selected variables restored, 2 variables outside the selection, 1 diagnostic" in runs["typo"]
    assert "  not ok: nothing restored; 1 spec/rule matched nothing" in runs["typo"]
    assert runs["a"] == []  # a clean restore is quiet


def test_skipped_mismatches_are_reported_as_skipped_and_the_plan_is_ok(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"w": np.ones([2, 2], np.float32), "b": np.ones(2, np.float32)})
    zeros_variable("w", [2, 3])
    zeros_variable("b", [2])
    plan = SmartSaver(skip_mismatched=True).restore(sess, checkpoint)
    assert plan.ok and plan.shape_mismatches[0].graph_name == "w" and plan.initialized == ("w",)
    text = str(plan)
    assert "shape mismatch: skipped (as asked), initialized if not yet (1)" in text
    assert "skip_mismatched=True" not in text and "to fix" not in text
    assert not SmartSaver().plan(checkpoint).ok  # the same mismatch, not asked to skip it


def test_the_ema_map_with_strict_restores_the_shadows_and_supersedes_the_raw_keys(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"w": np.zeros(2, np.float32), "w/ExponentialMovingAverage": np.ones(2, np.float32),
                                   "b": np.zeros(1, np.float32), "b/ExponentialMovingAverage": np.ones(1, np.float32)})
    w, b = zeros_variable("w", [2]), zeros_variable("b", [1])
    ema_map = {re.compile(r"^(.*)/ExponentialMovingAverage$"): r"\1"}
    plan = SmartSaver(name_map=ema_map, strict=True).restore(sess, checkpoint)
    assert plan.ok and plan.unused == () and plan.superseded == ("b", "w")
    assert sess.run(w).tolist() == [1, 1] and sess.run(b).tolist() == [1]
    assert "checkpoint keys superseded by a key mapped onto their variable (2)" in str(plan)


@pytest.mark.parametrize("resource", [True, False])
def test_reshape_true_restores_a_tensor_of_the_same_size_into_another_shape(write_checkpoint, graph, sess, resource):
    checkpoint = write_checkpoint({"w": np.arange(3, dtype=np.float32), "v": np.ones(4, np.float32)})
    w = v1.get_variable("w", [1, 3], initializer=v1.zeros_initializer(), use_resource=resource)
    v1.get_variable("v", [2, 3], initializer=v1.zeros_initializer(), use_resource=resource)  # 6 elements: no
    with pytest.raises(CheckpointMismatchError, match="2 shape/dtype mismatch"):
        SmartSaver().restore(sess, checkpoint)
    plan = SmartSaver(reshape=True, skip_mismatched=True).restore(sess, checkpoint)
    assert [(m.graph_name, m.checkpoint, m.graph) for m in plan.reshaped] == [("w", (3,), (1, 3))]
    assert [m.graph_name for m in plan.shape_mismatches] == ["v"] and plan.ok
    assert sess.run(w).tolist() == [[0, 1, 2]]
    assert "restored reshaped (reshape=True) (1)" in str(plan)


def test_tensor_names_with_output_suffix_in_specs_and_maps(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"learning_rate": np.float32(0.1), "w": np.ones(2, np.float32),
                                   "old_w": np.ones(3, np.float32)})
    rate, _ = zeros_variable("learning_rate", []), zeros_variable("w", [2])
    zeros_variable("new_w", [3])
    plan = SmartSaver(exclude="learning_rate:0", name_map={"old_w": "new_w:0"}).restore(sess, checkpoint)
    assert plan.not_selected == ("learning_rate",) and plan.ok and plan.diagnostics == ()
    assert sess.run(rate) == 0


def test_keys_stored_with_an_output_suffix_get_suggestions_and_a_proposed_map(tmp_path, graph):
    checkpoint = save_tensors(str(tmp_path / "old" / "model"), {"fc/W:0": np.ones([2, 2], np.float32),
                                                                "fc/b:0": np.ones(2, np.float32)})
    zeros_variable("fc/W", [2, 2])
    zeros_variable("fc/b", [2])
    plan = SmartSaver().plan(checkpoint)
    assert plan.suggestions == {"fc/W": ("fc/W:0",), "fc/b": ("fc/b:0",)}
    proposed = dict(plan.proposed_name_map)
    assert SmartSaver(name_map=proposed, strict=True).plan(checkpoint).ok


def test_load_variable_compares_the_spelling_as_written(write_checkpoint):
    checkpoint = write_checkpoint({"backbone/conv1/weights": np.ones(2, np.float32),
                                   "backbone/conv1/biases": np.ones(2, np.float32), "head/weights": np.ones(1)})
    with pytest.raises(VariableNotFoundError, match="did you mean 'backbone/conv1/weights'\\?"):
        load_variable(checkpoint, "backbone/conv1/weight")
    with pytest.raises(VariableNotFoundError, match="did you mean 'head/weights'\\?"):
        load_variable(checkpoint, "head/weight")


def test_init_from_checkpoints_list_of_partitions_is_one_target(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"old/emb": np.arange(24, dtype=np.float32).reshape(6, 4)}, partitions={"old/emb": 3})
    emb = v1.get_variable("new/emb", [6, 4], partitioner=v1.fixed_size_partitioner(2),
                          initializer=v1.zeros_initializer())
    plan = SmartSaver(name_map={"old/emb": list(emb)}, strict=True).restore(sess, checkpoint)
    assert [(r.checkpoint_key, r.graph_name) for r in plan.restored] == [("old/emb", "new/emb")]
    assert np.concatenate(sess.run(list(emb))).tolist() == np.arange(24).reshape(6, 4).tolist()


def test_a_failed_require_names_the_spec_in_the_first_line(backbone, sess):
    checkpoint, _ = backbone
    with pytest.raises(CheckpointMismatchError) as caught:
        SmartSaver(require=["model/backbone", "model/neck"], exclude="model/backbone").restore(sess, checkpoint)
    first_line = str(caught.value).splitlines()[0]
    assert "require scope 'model/backbone': 0 of 2 variables would be restored" in first_line
    assert "require scope 'model/neck': 0 of 0 variables would be restored" in first_line


def test_an_exact_entry_meant_as_a_scope_says_so(write_checkpoint, graph):
    checkpoint = write_checkpoint({"backbone/w": np.ones(2, np.float32)})
    zeros_variable("model/backbone/w", [2])
    with pytest.raises(NameMapError, match="end both sides with '/': \\{'backbone/': 'model/backbone/'\\}"):
        SmartSaver(name_map={"backbone": "model/backbone"}).plan(checkpoint)
    zeros_variable("model/b", [2])
    plan = SmartSaver(name_map={"backbone": "model/b"}).plan(checkpoint)
    assert "end both sides with '/': {'backbone/': 'model/b/'}" in plan.diagnostics[0].message

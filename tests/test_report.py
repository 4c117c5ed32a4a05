"""The report people act on: suggestions, guardrails, the text, the JSON schema."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CheckpointMismatchError, SmartSaver
from partialsaver._suggest import suggest
from tests.conftest import zeros_variable

v1 = tf.compat.v1
F = "float32"


@pytest.mark.parametrize("missing, unused, expected", [
    # weights <-> kernel, biases <-> bias
    ({"dense/kernel": ((3, 4), F)}, {"dense/weights": ((3, 4), F), "dense/biases": ((4,), F)}, ("dense/weights",)),
    ({"fc/biases": ((4,), F)}, {"fc/bias": ((4,), F)}, ("fc/bias",)),
    # FC <-> fully_connected
    ({"logits/FC/w": ((8, 2), F)}, {"logits/fully_connected/weights": ((8, 2), F)}, ("logits/fully_connected/weights",)),
    # _1 suffixes from a graph built twice; the nearest spelling first
    ({"dense_2/kernel": ((2, 2), F)}, {"dense_1/kernel": ((2, 2), F), "dense_2/weights": ((2, 2), F)},
     ("dense_2/weights", "dense_1/kernel")),
    # the same shape ranks first, a closer name of another shape after it
    ({"conv/kernel": ((3, 3), F)}, {"conv/kernal": ((3, 4), F), "conv/weights": ((3, 3), F)},
     ("conv/weights", "conv/kernal")),
    # the right answer is no suggestion: nothing alike
    ({"head/logits/w": ((5,), F)}, {"backbone/conv1/gamma": ((64,), F), "global_step": ((), "int64")}, None),
])
def test_suggestion_kinds(missing, unused, expected):
    assert suggest(missing, unused).get(next(iter(missing))) == expected


def test_require_fails_before_restoring_when_a_scope_would_restore_nothing(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"InceptionV1/conv/w": np.ones(2, np.float32), "InceptionV1/conv/b": np.ones(1)})
    conv = zeros_variable("backbone/InceptionV1/conv/w", [2])
    zeros_variable("backbone/InceptionV1/conv/b", [1], tf.float64)
    saver = SmartSaver(require=["backbone/InceptionV1"])  # forgot the name_map
    with pytest.raises(CheckpointMismatchError, match="require scope 'backbone/InceptionV1': 0 of 2") as caught:
        saver.restore(sess, checkpoint)
    assert "name_map={'InceptionV1/': 'backbone/InceptionV1/'}  # fixes 2 missing variables" in str(caught.value)
    assert len(sess.run(v1.report_uninitialized_variables())) == 2
    plan = SmartSaver(require=["backbone/InceptionV1"], name_map={"InceptionV1/": "backbone/InceptionV1/"}).restore(
        sess, checkpoint)
    assert plan.ok
    np.testing.assert_array_equal(sess.run(conv), [1, 1])


def test_min_restored_fraction(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({f"net/l{i}": np.ones(1, np.float32) for i in range(3)})
    for i in range(4):
        zeros_variable(f"net/l{i}" if i < 3 else "net/new", [1])
    SmartSaver(require="net", min_restored_fraction=0.75).restore(sess, checkpoint)  # 3 of 4
    with pytest.raises(CheckpointMismatchError, match=r"3 of 4 variables would be restored \(less than min_restored_fraction=0.9\)"):
        SmartSaver(require="net", min_restored_fraction=0.9).restore(sess, checkpoint)


def test_expect_new_is_new_not_missing_and_flagged_when_found(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"InceptionV1/conv/w": np.ones(2, np.float32),
                                   "InceptionV1/Logits/w": np.ones(3, np.float32)})
    zeros_variable("InceptionV1/conv/w", [2])
    zeros_variable("InceptionV1/Logits/w", [3])
    zeros_variable("InceptionV1/Logits2/w", [3])
    plan = SmartSaver(expect_new=["InceptionV1/Logits", "InceptionV1/Logits2"]).restore(sess, checkpoint, strict=True)
    assert plan.expected_new == ("InceptionV1/Logits/w", "InceptionV1/Logits2/w") and plan.missing == ()
    assert plan.initialized == plan.expected_new and plan.not_selected == ("InceptionV1/Logits/w",)
    assert [(d.kind, d.subject) for d in plan.diagnostics] == [("expected_new_found", "InceptionV1/Logits/w")]
    assert "new (expected): initialized if not yet (2)" in str(plan)
    np.testing.assert_array_equal(sess.run(v1.global_variables()[1]), [0, 0, 0])


EXPECTED_REPORT = """\
RestorePlan for {checkpoint}
  3 of 6 selected variables restored, 2 missing, 1 mismatch, 2 unused keys, 1 variable outside the selection
  not ok: 2 missing; 1 mismatched

restored (3)
  model/conv1/b  (2,)     float32
  model/conv1/w  (3, 3)   float32
  model/dense/w  (3, 10)  float32  <- 'model/fc/w'
missing in checkpoint: initialized if not yet (2)
  model/conv2/kernel  (3, 3)  float32
      did you mean 'model/conv2/weights' (3, 3)?
  model/head/w        (10,)   float32
shape mismatch, not restored (1)
  graph 'model/conv1/bias' (4,)  vs  checkpoint 'model/conv1/bias' (2,)
unused checkpoint keys (1)
  model/conv2/weights  (3, 3)  float32
unused optimizer state (1)
  model/conv1/w/Adam  (3, 3)  float32
graph variables outside the selection: initialized if not yet (1)
  global_step  ()  int64
to fix, pass:
  name_map={{'model/conv2/weights': 'model/conv2/kernel'}}
  skip_mismatched=True  # initialize the mismatched variables instead
  exclude=['model/conv1/bias']  # or leave them out of the restore
"""


def test_the_report_text_for_a_known_case(write_checkpoint, graph):
    checkpoint = write_checkpoint({
        "model/conv1/w": np.ones([3, 3], np.float32), "model/conv1/b": np.ones(2, np.float32),
        "model/conv1/bias": np.ones(2, np.float32), "model/conv2/weights": np.ones([3, 3], np.float32),
        "model/fc/w": np.ones([3, 10], np.float32), "model/conv1/w/Adam": np.ones([3, 3], np.float32)})
    for name, shape in (("model/conv1/w", [3, 3]), ("model/conv1/b", [2]), ("model/conv1/bias", [4]),
                        ("model/conv2/kernel", [3, 3]), ("model/dense/w", [3, 10]), ("model/head/w", [10])):
        zeros_variable(name, shape)
    v1.train.get_or_create_global_step()
    plan = SmartSaver(include="model", name_map={"model/fc/w": "model/dense/w"}).plan(checkpoint)
    assert str(plan) == EXPECTED_REPORT.format(checkpoint=checkpoint)
    assert all(len(line) <= 80 for line in str(plan).splitlines()[2:])


def test_the_json_schema(write_checkpoint, graph):
    checkpoint = write_checkpoint({"w": np.ones([2, 2], np.float32), "old": np.ones(1, np.float32)})
    zeros_variable("w", [2, 3])
    zeros_variable("new", [1])
    as_dict = json.loads(json.dumps(SmartSaver(exclude="zzz").plan(checkpoint).to_dict()))
    assert as_dict == {
        "checkpoint": checkpoint, "ok": False,
        "summary": "0 of 2 selected variables restored, 1 missing, 1 mismatch, 1 unused key, 1 diagnostic",
        "restored": [], "missing": ["new"], "unused": ["old"], "not_selected": [], "superseded": [],
        "problems": ["nothing restored", "1 missing", "1 mismatched", "1 spec/rule matched nothing"],
        "skip_mismatched": False, "reshaped": [],
        "shape_mismatches": [{"checkpoint_key": "w", "graph_name": "w", "checkpoint": [2, 2], "graph": [2, 3]}],
        "dtype_mismatches": [], "initialized": ["new", "w"], "unselected": [], "expected_new": [],
        "diagnostics": [{"kind": "unmatched_exclude", "subject": "scope 'zzz'",
                         "message": "exclude scope 'zzz' matched no variable; check it for a typo (perhaps you misspelled it?)"}],
        "suggestions": {}, "proposed_name_map": {},
        "fix": ["skip_mismatched=True  # initialize the mismatched variables instead",
                "exclude=['w']  # or leave them out of the restore"],
    }


def test_a_long_report_is_grouped_by_scope_with_counts(write_checkpoint, graph):
    values = {f"InceptionV1/Mixed_{b}/Branch_{i}/w": np.ones(1, np.float32) for b in ("5b", "5c") for i in range(12)}
    checkpoint = write_checkpoint(values)
    for name in values:
        zeros_variable(name, [1])
    text = str(SmartSaver().plan(checkpoint))
    assert "restored (24)\n  InceptionV1/Mixed_5b/*  12 variables\n  InceptionV1/Mixed_5c/*  12 variables\n" in text


def test_long_lists_are_capped(write_checkpoint, graph):
    checkpoint = write_checkpoint({f"k{i:02d}": np.ones(1, np.float32) for i in range(30)})
    zeros_variable("x", [1])
    text = str(SmartSaver().plan(checkpoint))
    assert re.search(r"unused checkpoint keys \(30\)\n(  k\d\d .*\n){12}  \.\.\. and 18 more\n", text)


def test_several_proposed_entries_are_one_name_map_to_paste(write_checkpoint, graph):
    values = {f"net/l{i}/weights": np.ones(2, np.float32) for i in range(2)}
    values.update({f"net/l{i}/biases": np.ones(1, np.float32) for i in range(2)})
    checkpoint = write_checkpoint(values)
    for i in range(2):
        zeros_variable(f"model/l{i}/kernel", [2])
        zeros_variable(f"model/l{i}/bias", [1])
    plan = SmartSaver().plan(checkpoint)
    fix = "\n".join(plan.to_dict()["fix"])
    assert fix.startswith("name_map={\n") and fix.endswith("\n}")
    proposed = eval(fix.split("=", 1)[1], {"re": re})  # the text is valid Python
    assert SmartSaver(name_map=proposed, strict=True).plan(checkpoint).ok


def test_exclude_advice_names_every_mismatch(write_checkpoint, graph):
    checkpoint = write_checkpoint({f"l{i}/w": np.ones(2, np.float32) for i in range(5)})
    for i in range(5):
        zeros_variable(f"l{i}/w", [3])
    fix = SmartSaver().plan(checkpoint).to_dict()["fix"]
    assert "exclude=['l0/w', 'l1/w', 'l2/w', 'l3/w', 'l4/w']" in fix[-1]


def test_a_mistyped_scope_target_says_where_keys_went(write_checkpoint, graph):
    checkpoint = write_checkpoint({"InceptionV1/w": np.ones(2, np.float32)})
    zeros_variable("backbone/InceptionV1/w", [2])
    plan = SmartSaver(name_map={"InceptionV1/": "backbone/Inception/"}).plan(checkpoint)
    assert "InceptionV1/w  (2,)  float32  -> 'backbone/Inception/w' (no such variable)" in str(plan)
    assert [d.kind for d in plan.diagnostics] == ["rule_targets_missing"]

"""plan(): metadata only, immutable, suggestions, the report, the JSON form."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CorruptCheckpointError, SmartSaver
from partialsaver._suggest import propose_name_map, suggest
from tests.conftest import zeros_variable

v1 = tf.compat.v1


def test_plan_reads_only_the_index_and_touches_no_session(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"a": np.ones(4, np.float32)})
    a = zeros_variable("a", [4])
    with open(checkpoint + ".data-00000-of-00001", "r+b") as data:
        data.write(b"\xff" * 16)  # tensor bytes are now garbage; the index is intact
    ops_before = len(graph.get_operations())

    plan = SmartSaver().plan(checkpoint)

    assert plan.ok and plan.restored[0].graph_name == "a"
    assert len(graph.get_operations()) == ops_before
    with pytest.raises(CorruptCheckpointError, match="model.ckpt"):
        SmartSaver().restore(sess, checkpoint)
    assert sess.run(v1.report_uninitialized_variables()).tolist() == [b"a"]  # left as it was
    del a


def test_the_plan_is_immutable(seed_checkpoint, renamed_graph):
    plan = SmartSaver().plan(seed_checkpoint)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.missing = ()
    with pytest.raises(TypeError):
        plan.suggestions["v3_x"] = ("v1",)
    again = SmartSaver().plan(seed_checkpoint)
    assert again == plan and hash(again) == hash(plan) and len({plan, again}) == 1  # a value: hashable


def test_to_dict_is_json_and_complete(seed_checkpoint, renamed_graph):
    as_dict = json.loads(json.dumps(SmartSaver().plan(seed_checkpoint).to_dict()))
    assert as_dict["missing"] == ["v3_x"] and as_dict["unused"] == ["v3"] and as_dict["ok"] is False
    assert as_dict["restored"][0] == {"checkpoint_key": "v1", "graph_name": "v1", "shape": [3], "dtype": "float32"}
    assert as_dict["suggestions"] == {"v3_x": ["v3"]}
    assert set(as_dict) >= {"checkpoint", "shape_mismatches", "dtype_mismatches", "initialized", "diagnostics",
                            "not_selected", "proposed_name_map"}


def test_html_view_is_the_report_as_a_table(seed_checkpoint, renamed_graph):
    page = SmartSaver().plan(seed_checkpoint)._repr_html_()
    # three sections (restored, missing, unused), one header row each, four variable rows
    assert page.count("<th") == 3 and page.count("<tr") == 7
    assert "missing in checkpoint: initialized if not yet (1)" in page
    assert "did you mean &#x27;v3&#x27; (4,)?" in page and "name_map={&#x27;v3&#x27;: &#x27;v3_x&#x27;}" in page


META = {"conv/kernel": ((3, 3), "float32")}


@pytest.mark.parametrize("missing, unused, expected", [
    # the same shape ranks before a closer name of another shape
    (META, {"conv/kernal": ((3, 4), "float32"), "conv/weights": ((3, 3), "float32")}, ("conv/weights", "conv/kernal")),
    # common renames: weights -> kernel, biases -> bias
    ({"fc/bias": ((4,), "float32")}, {"fc/biases": ((4,), "float32"), "fc/weights": ((4, 4), "float32")}, ("fc/biases",)),
    # nothing alike: no suggestion at all
    ({"head/logits/w": ((5,), "float32")}, {"backbone/conv1/gamma": ((64,), "float32")}, None),
])
def test_suggestions(missing, unused, expected):
    assert suggest(missing, unused).get(next(iter(missing))) == expected


def test_a_whole_offset_scope_gets_one_proposed_entry():
    names = ["conv1/w", "conv1/b", "conv2/w", "fc/w"]
    missing = {f"model/{name}": ((2,), "float32") for name in names}
    unused = {f"net/{name}": ((2,), "float32") for name in names}
    assert propose_name_map(missing, unused) == ({"net/": "model/"}, {"net/": 4})
    root_missing = {f"tower0/{name}": ((2,), "float32") for name in names}
    plain_unused = {name: ((2,), "float32") for name in names}
    assert propose_name_map(root_missing, plain_unused) == ({"/": "tower0/"}, {"/": 4})
    assert propose_name_map({"a/w": ((2,), "float32")}, {"b/w": ((2,), "float32")}) == ({}, {})  # one is no pattern


def test_the_report_shows_the_proposed_map_as_code(write_checkpoint, graph):
    values = {f"net/conv{i}/w": np.ones(2, np.float32) for i in range(4)}
    checkpoint = write_checkpoint(values)
    for i in range(4):
        zeros_variable(f"model/conv{i}/w", [2])
    plan = SmartSaver().plan(checkpoint)
    assert plan.proposed_name_map == {"net/": "model/"}
    assert "name_map={'net/': 'model/'}  # fixes 4 missing variables" in str(plan)


def test_long_sections_are_grouped_by_scope_and_capped(write_checkpoint, graph):
    values = {f"block{b}/layer{i}/w": np.ones(1, np.float32) for b in range(3) for i in range(10)}
    checkpoint = write_checkpoint(values)
    for name in values:
        zeros_variable(name, [1])
    text = str(SmartSaver().plan(checkpoint))
    assert "restored (30)\n  block0/*  10 variables\n  block1/*  10 variables\n  block2/*  10 variables" in text
    assert "all 30 variables restored" in text


def test_a_root_proposal_is_narrowed_to_the_checkpoints_top_scope():
    missing = {f"backbone/vgg_16/conv{i}/w": ((2,), "float32") for i in range(3)}
    unused = {f"vgg_16/conv{i}/w": ((2,), "float32") for i in range(3)}
    assert propose_name_map(missing, unused)[0] == {"vgg_16/": "backbone/vgg_16/"}
    # Mixed top scopes stay one root entry, unless it would capture keys restored as they are.
    mixed_missing = {"tower0/a/w": ((2,), "float32"), "tower0/a/b": ((2,), "float32"), "tower0/c/w": ((2,), "float32")}
    mixed_unused = {"a/w": ((2,), "float32"), "a/b": ((2,), "float32"), "c/w": ((2,), "float32")}
    assert propose_name_map(mixed_missing, mixed_unused)[0] == {"/": "tower0/"}
    assert propose_name_map(mixed_missing, mixed_unused, kept=["global_step"])[0] == {"a/": "tower0/a/"}

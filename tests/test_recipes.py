"""Every snippet of docs/recipes.md runs as written, and asserts what it achieved."""

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

v1 = tf.compat.v1
RECIPES = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def recipes():
    section = RECIPES.read_text()
    found = re.findall(r"\n### (.+?)\n.*?```python\n(.*?)```", section, flags=re.S)
    # Every Python block of the section is collected (one per recipe), none silently skipped.
    assert len(found) == section.count("```python") and found
    return found


@pytest.fixture
def pretrained(tmp_path):
    """backbone/*, an old 10-class head and Adam's state, as a real training run leaves them."""
    with tf.Graph().as_default():
        w = v1.get_variable("backbone/w", [4, 4])
        b = v1.get_variable("backbone/b", [4])
        head = v1.get_variable("head/w", [4, 10])
        loss = tf.reduce_sum(tf.matmul(tf.nn.relu(tf.matmul(tf.ones([1, 4]), w) + b), head))
        train = v1.train.AdamOptimizer(0.01).minimize(loss, global_step=v1.train.get_or_create_global_step())
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            v1.train.Saver().save(sess, str(tmp_path / "pretrained" / "model.ckpt"), global_step=1)
    return str(tmp_path / "pretrained")


@pytest.mark.parametrize("title, code", recipes(), ids=[title for title, _ in recipes()])
def test_recipe_runs(title, code, pretrained, write_checkpoint, tmp_path, request):
    names = {"pretrained": pretrained, "run_dir": str(tmp_path / "run"), "out_dir": str(tmp_path / "out")}
    (tmp_path / "out").mkdir()
    if "embeddings" in code:
        names["embeddings"] = write_checkpoint({"old/emb": np.ones([1000, 64], np.float32)}, subdir="emb",
                                               partitions={"old/emb": 4})
    if "cluster_spec" in code:
        names["cluster_spec"], names["worker"] = request.getfixturevalue("cluster")
    if "keras" in code and int(pytest.importorskip("keras").__version__.split(".")[0]) < 3:
        pytest.skip("this recipe is written for Keras 3 (variable paths); tests/test_eager.py covers Keras 2")
    if "tf1_checkpoint" in code:
        from tests.test_eager import tf1_checkpoint
        names["tf1_checkpoint"] = tf1_checkpoint(str(tmp_path / "tf1" / "model.ckpt"))[0]
    if "vgg_checkpoint" in code:
        names["vgg_checkpoint"] = request.getfixturevalue("imagenet_vgg")[0]
    assert re.search(r"^\s*assert ", code, re.M), "a recipe says what it achieved, in asserts"
    exec(compile(code, f"docs/recipes.md recipe {title!r}", "exec"), names)  # noqa: S102 - the docs' own code

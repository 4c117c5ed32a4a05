"""The walkthrough behind `make demo`: save, then restore into a graph that differs.

Run: python examples/demo.py [--workdir DIR]   (a temporary directory by default)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from partialsaver import SmartSaver  # noqa: E402

v1 = tf.compat.v1


def banner(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


def train_and_save(workdir: str) -> str:
    """A graph with v1, v2, v3 from zeros, one 'training step', saved."""
    with tf.Graph().as_default():
        var1 = v1.get_variable("v1", shape=[3], initializer=v1.zeros_initializer())
        var2 = v1.get_variable("v2", shape=[5], initializer=v1.zeros_initializer())
        var3 = v1.get_variable("v3", shape=[4], initializer=v1.zeros_initializer())
        step = tf.group(var1.assign_add(tf.ones([3])), var2.assign_sub(tf.ones([5])), var3.assign_sub(2 * tf.ones([4])))
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(step)
            path = v1.train.Saver().save(sess, os.path.join(workdir, "seed", "model.ckpt"))
    print(f"saved v1 = v1+1, v2 = v2-1, v3 = v3-2 (from zeros) to {path}")
    return path


def renamed_graph() -> dict:
    return {
        "v1": v1.get_variable("v1", shape=[3], initializer=v1.zeros_initializer()),
        "v2": v1.get_variable("v2", shape=[5], initializer=v1.zeros_initializer()),
        "v3_x": v1.get_variable("v3_x", shape=[4], initializer=v1.zeros_initializer()),
    }


def plain_saver_fails(checkpoint: str) -> None:
    banner("0. plain tf.compat.v1.train.Saver into a graph with v1, v2, v3_x")
    with tf.Graph().as_default():
        renamed_graph()
        with v1.Session() as sess:
            try:
                v1.train.Saver().restore(sess, checkpoint)
            except tf.errors.NotFoundError as error:
                key_line = next(line for line in error.message.splitlines() if "not found in checkpoint" in line)
                print(f"NotFoundError, after the first missing key only: {key_line.strip()[:100]}")


def restore_as_is(checkpoint: str) -> None:
    banner("a. SmartSaver().restore as is: the report first, then v3_x initialized")
    with tf.Graph().as_default():
        variables = renamed_graph()
        with v1.Session() as sess:
            print(SmartSaver().restore(sess, checkpoint))
            for name, value in sess.run(variables).items():
                print(f"{name} = {value}")


def restore_with_map(checkpoint: str) -> None:
    banner('b. SmartSaver(name_map={"v3": "v3_x"})')
    with tf.Graph().as_default():
        variables = renamed_graph()
        with v1.Session() as sess:
            print(SmartSaver(name_map={"v3": "v3_x"}).restore(sess, checkpoint))
            values = sess.run(variables)
            for name, value in values.items():
                print(f"{name} = {value}")
            np.testing.assert_array_equal(values["v3_x"], [-2, -2, -2, -2])


BACKBONE = {  # an InceptionV1-style backbone: name -> shape
    "InceptionV1/Conv2d_1a_7x7/weights": [7, 7, 3, 64],
    "InceptionV1/Conv2d_1a_7x7/BatchNorm/beta": [64],
    "InceptionV1/Mixed_5c/Branch_0/Conv2d_0a_1x1/weights": [1, 1, 832, 384],
    "InceptionV1/Mixed_5c/Branch_0/Conv2d_0a_1x1/BatchNorm/beta": [384],
}


def build_inception_like(classes: int) -> None:
    for name, shape in BACKBONE.items():
        v1.get_variable(name, shape=shape, initializer=v1.random_normal_initializer(seed=1))
    v1.get_variable("InceptionV1/Logits/Conv2d_0c_1x1/weights", shape=[1, 1, 1024, classes])
    v1.get_variable("InceptionV1/Logits/Conv2d_0c_1x1/biases", shape=[classes], initializer=v1.zeros_initializer())
    v1.train.get_or_create_global_step()


def restore_scope(workdir: str) -> None:
    banner('c. only the backbone: include="InceptionV1", exclude="InceptionV1/Logits"')
    with tf.Graph().as_default():
        build_inception_like(classes=1001)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            pretrained = v1.train.Saver().save(sess, os.path.join(workdir, "inception", "model.ckpt"))
            expected = sess.run(v1.global_variables()[0])
    with tf.Graph().as_default():
        build_inception_like(classes=5)
        saver = SmartSaver(include="InceptionV1", exclude="InceptionV1/Logits")
        with v1.Session() as sess:
            print(saver.restore(sess, os.path.dirname(pretrained)))
            first, head = v1.global_variables()[0], v1.global_variables()[-2]
            np.testing.assert_array_equal(sess.run(first), expected)
            print(f"{first.op.name} equals the pretrained value; the new 5-class head is initialized: "
                  f"{head.op.name} = {sess.run(head)}")
            uninitialized = sess.run(v1.report_uninitialized_variables())
            print(f"uninitialized variables left: {list(uninitialized)}")


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", help="where checkpoints go (default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="partialsaver-demo-") as scratch:
        workdir = args.workdir or scratch
        checkpoint = train_and_save(workdir)
        plain_saver_fails(checkpoint)
        restore_as_is(checkpoint)
        restore_with_map(checkpoint)
        restore_scope(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

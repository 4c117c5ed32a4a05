"""Two threads restoring and saving with one SmartSaver at once: the ops are built once,
every restore is complete, and no global setting (TensorFlow's log level) changes."""

import threading

import numpy as np
import tensorflow as tf

from partialsaver import SmartSaver
from tests.conftest import zeros_variable

v1 = tf.compat.v1


def test_two_threads_restore_and_save_with_one_smartsaver(write_checkpoint, graph, sess, tmp_path):
    checkpoint = write_checkpoint({f"layer{i}/w": np.full(64, i, np.float32) for i in range(20)})
    variables = [zeros_variable(f"layer{i}/w", [64]) for i in range(20)]
    zeros_variable("head", [3])
    saver = SmartSaver(expect_new="head")
    tf_logger = tf.get_logger()
    level_calls = []
    real_set_level = tf_logger.setLevel
    tf_logger.setLevel = lambda level: level_calls.append(level) or real_set_level(level)
    barrier = threading.Barrier(2)
    errors = []

    def work(index):
        try:
            barrier.wait()
            for round_ in range(3):
                plan = saver.restore(sess, checkpoint)
                assert plan.ok and len(plan.restored) == 20
                saver.save(sess, str(tmp_path / f"thread{index}" / "model.ckpt"), global_step=round_)
        except Exception as error:  # noqa: BLE001 - reported to the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        tf_logger.setLevel = real_set_level
    assert errors == []
    built = [op.name for op in graph.get_operations() if op.type in ("RestoreV2", "SaveV2")]
    assert built == ["partialsaver_restore/RestoreV2", "save/SaveV2", "save/RestoreV2"]  # once, not once per thread
    assert [sess.run(variable)[0] for variable in variables] == list(range(20))
    assert level_calls == [] and tf_logger.filters == []
    for index in range(2):
        assert v1.train.latest_checkpoint(str(tmp_path / f"thread{index}")).endswith("model.ckpt-2")

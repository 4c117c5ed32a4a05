"""All or nothing across shards and devices: every tensor is read before any variable is
assigned, whether the variables live on two devices of one process or on the parameter
servers of a cluster, and whichever shard of the checkpoint is damaged."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CorruptCheckpointError, SmartSaver
from tests.test_cluster import build

v1 = tf.compat.v1
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("damaged", [0, 1])
def test_a_damaged_shard_changes_no_variable_on_either_device(tmp_path, damaged):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "two_devices.py"), str(tmp_path),
                             str(damaged)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "shards 2"
    assert lines[1].startswith("error CorruptCheckpointError restoring from")
    assert "no variable was changed" in lines[1] and "derived errors" not in lines[1]
    assert lines[2:] == ["value a [9.0]", "value b [9.0]"]  # both kept their values


def test_a_damaged_shard_changes_no_variable_on_any_parameter_server(cluster, tmp_path):
    spec, target = cluster
    with tf.Graph().as_default():
        variables, head = build("ps_safety", spec)
        saver = SmartSaver(sharded=True)
        with v1.Session(target) as sess:
            sess.run(v1.global_variables_initializer())
            path = saver.save(sess, str(tmp_path / "model.ckpt"))
            shards = sorted(tmp_path.glob("model.ckpt.data-*"))
            assert len(shards) == 2
            everything = list(variables.values()) + [head]
            sess.run([variable.assign(tf.fill(tf.shape(variable), 9.0)) for variable in everything])
            for damaged in shards:
                original = damaged.read_bytes()
                damaged.write_bytes(original[:4])
                with pytest.raises(CorruptCheckpointError, match="no variable was changed"):
                    saver.restore(sess, path)
                for value in sess.run(everything):
                    assert np.unique(value).tolist() == [9.0]
                damaged.write_bytes(original)
            saver.restore(sess, path)
            assert sess.run(head).tolist() == [7.0, 7.0]

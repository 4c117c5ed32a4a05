"""A process with two logical CPU devices (which must be set before TensorFlow starts):
variables on both, saved sharded, one shard damaged, restored again. Prints what it saw.

    two_devices.py DIRECTORY SHARD_TO_TRUNCATE
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from partialsaver import PartialSaverError, SmartSaver  # noqa: E402

v1 = tf.compat.v1
directory, damaged = sys.argv[1], int(sys.argv[2])
with tf.Graph().as_default():
    variables = {}
    for device, name, value in (("/device:CPU:0", "a", 1.0), ("/device:CPU:1", "b", 2.0)):
        with tf.device(device):
            variables[name] = v1.get_variable(name, initializer=tf.constant(np.full(1 << 16, value, np.float32)))
    saver = SmartSaver(sharded=True)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        path = saver.save(sess, os.path.join(directory, "model.ckpt"))
        shards = sorted(name for name in os.listdir(directory) if ".data-" in name)
        print("shards", len(shards))
        sess.run([variable.assign(tf.fill([1 << 16], 9.0)) for variable in variables.values()])
        with open(os.path.join(directory, shards[damaged]), "r+b") as shard:
            shard.truncate(100)
        try:
            saver.restore(sess, path)
            print("restored")
        except PartialSaverError as error:
            print("error", type(error).__name__, str(error).splitlines()[0])
        for name, variable in variables.items():
            print("value", name, sorted(set(sess.run(variable).tolist())))

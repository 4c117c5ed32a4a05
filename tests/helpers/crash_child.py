"""A process that gets itself killed with SIGKILL at a chosen point of rename or save.

    crash_child.py rename SRC DST POINT [overwrite]
    crash_child.py save DIR DELAY

rename points: after_first_batch, before_merge, after_data_moved, before_state_file,
timed:<seconds>. save: saves step after step (the variable holds the step number
everywhere) and is killed <DELAY> seconds after its second save returned.
"""

import os
import signal
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from partialsaver import SmartSaver, _rename  # noqa: E402

v1 = tf.compat.v1
SIZE = 16 << 20  # 64 MiB: a save takes long enough to be killed inside it


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def rename(src: str, dst: str, point: str, overwrite: bool) -> None:
    progress = None
    if point == "after_first_batch":
        progress = lambda done, total: die()  # noqa: E731
    elif point == "before_merge":
        _rename._run_merge = lambda *args: die()
    elif point == "after_data_moved":
        real_rename = tf.io.gfile.rename

        def rename_then_die_before_index(source, target, overwrite=False):
            if target.endswith(".index"):
                die()
            real_rename(source, target, overwrite=overwrite)

        tf.io.gfile.rename = rename_then_die_before_index
    elif point == "before_state_file":
        _rename._update_state_file = lambda dst: die()
    elif point.startswith("timed:"):
        threading.Timer(float(point.split(":")[1]), die).start()
    _rename.rename_variables(src, dst, {"/": "renamed/"}, memory_budget=4 << 20, overwrite=overwrite,
                             progress=progress)
    print("finished", flush=True)


def save(directory: str, delay: float) -> None:
    with tf.Graph().as_default():
        value = v1.placeholder(tf.float32, [])
        variable = v1.get_variable("big", [SIZE], initializer=v1.zeros_initializer())
        fill = variable.assign(tf.fill([SIZE], value))
        saver = SmartSaver(max_to_keep=3)
        with v1.Session() as sess:
            sess.run(variable.initializer)
            for step in range(1, 1000):
                sess.run(fill, {value: float(step)})
                saver.save(sess, os.path.join(directory, "model.ckpt"), global_step=step)
                print(f"saved {step}", flush=True)
                if step == 2:
                    threading.Timer(delay, die).start()


if __name__ == "__main__":
    if sys.argv[1] == "rename":
        rename(sys.argv[2], sys.argv[3], sys.argv[4], len(sys.argv) > 5)
    else:
        save(sys.argv[2], float(sys.argv[3]))

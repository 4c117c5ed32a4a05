"""A process that gets itself killed with SIGKILL at a chosen point of rename or save.

    crash_child.py rename SRC DST POINT MODE [overwrite]
    crash_child.py save DIR DELAY

rename points: mid_copy (after the first key's bytes were copied; MODE drop only),
data_written (new data files in place, the index not yet switched), index_switched (the new
index in place, old data files not yet removed), before_state_file, timed:<seconds>.
MODE: "pure" renames every key (the index is rewritten, the data reused), "drop" also
leaves four keys out (the kept bytes are copied). save: saves step after step (the variable
holds the step number everywhere) and is killed <DELAY> seconds after its second save.
"""

import os
import re
import signal
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from partialsaver import SmartSaver, _rename  # noqa: E402
from partialsaver.format import fs as format_fs  # noqa: E402

v1 = tf.compat.v1
SIZE = 16 << 20  # 64 MiB: a save takes long enough to be killed inside it
DROPPED = re.compile(r"^layer0[0-3]/")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def rename(src: str, dst: str, point: str, mode: str, overwrite: bool) -> None:
    progress = None
    if point == "mid_copy":
        progress = lambda done, total: die()  # noqa: E731
    elif point == "data_written":
        _rename.OutputBundle.publish = lambda self: die()
    elif point == "index_switched":
        real_replace = format_fs.LocalFileSystem.replace

        def replace_then_die(self, source, target):
            real_replace(self, source, target)
            if target.endswith(".index"):
                die()

        format_fs.LocalFileSystem.replace = replace_then_die
    elif point == "before_state_file":
        _rename.record_latest = lambda fs, destination: die()
    elif point.startswith("timed:"):
        threading.Timer(float(point.split(":")[1]), die).start()
    _rename.rename_variables(src, dst, {"/": "renamed/"}, exclude=DROPPED if mode == "drop" else None,
                             memory_budget=1 << 20, overwrite=overwrite, progress=progress)
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
        rename(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], len(sys.argv) > 6)
    else:
        save(sys.argv[2], float(sys.argv[3]))

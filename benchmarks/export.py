"""Export VGG-16 to .safetensors and import it back: partialsaver vs the usual recipe.

The usual recipe: tf.train.load_variable per key into a dict, then
safetensors.numpy.save_file (it needs TensorFlow and holds every tensor at once). Import
back: partialsaver import_checkpoint vs safetensors.numpy.load_file + tf.Variables + Saver.

Every contender runs in its own process, in one run of this script, --repeat times; the
table shows medians, the child's own peak RSS (wait4), and ratios within the run.

Usage: python benchmarks/export.py [--repeat 3] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import LARGEST_MB, checkpoint_files, machine, megabytes, run_child, run_rounds, vgg_checkpoint  # noqa: E402

EXPORT = """
import json, time
from partialsaver.convert import export_checkpoint
start = time.perf_counter()  # the operation: the call, not Python's and numpy's start-up
export_checkpoint({src!r}, {dst!r}, overwrite=True)
print(json.dumps({{"op": time.perf_counter() - start}}))
"""

EXPORT_RECIPE = """
import json, time, numpy as np, tensorflow as tf
from safetensors.numpy import save_file
start = time.perf_counter()  # after importing TensorFlow, which the process time includes
tensors = {{name: np.asarray(tf.train.load_variable({src!r}, name)) for name, _ in tf.train.list_variables({src!r})}}
save_file(tensors, {dst!r})
print(json.dumps({{"op": time.perf_counter() - start}}))
"""

IMPORT = """
import json, time
from partialsaver.convert import import_checkpoint
start = time.perf_counter()
import_checkpoint({src!r}, {dst!r}, overwrite=True)
print(json.dumps({{"op": time.perf_counter() - start}}))
"""

IMPORT_RECIPE = """
import json, time, tensorflow as tf
from safetensors.numpy import load_file
v1 = tf.compat.v1
start = time.perf_counter()
with tf.Graph().as_default():
    for name, value in load_file({src!r}).items():
        v1.Variable(value, name=name)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        v1.train.Saver().save(sess, {dst!r}, write_meta_graph=False)
print(json.dumps({{"op": time.perf_counter() - start}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    scratch = args.workdir or tempfile.mkdtemp(prefix="partialsaver-bench-")
    try:
        src = vgg_checkpoint(os.path.join(scratch, "src", "model.ckpt"))
        ours, theirs = os.path.join(scratch, "ours.safetensors"), os.path.join(scratch, "theirs.safetensors")
        back, back_recipe = os.path.join(scratch, "back"), os.path.join(scratch, "back_recipe")
        contenders = {
            "partialsaver export_checkpoint": lambda: run_child(EXPORT.format(src=src, dst=fresh(ours))),
            "recipe: tf.train.load_variable + save_file": lambda: run_child(
                EXPORT_RECIPE.format(src=src, dst=fresh(theirs))),
            "partialsaver import_checkpoint": lambda: run_child(IMPORT.format(
                src=ours, dst=fresh(back) + "/model.ckpt")),
            "recipe: load_file + tf.Variables + Saver": lambda: run_child(IMPORT_RECIPE.format(
                src=theirs, dst=fresh(back_recipe) + "/model.ckpt")),
        }
        summary = run_rounds(contenders, args.repeat)
        with open(ours, "rb") as mine, open(theirs, "rb") as recipe:
            same_tensors = _tensors(mine.read()) == _tensors(recipe.read())
        report(summary, megabytes(checkpoint_files(src)), args.repeat, same_tensors)
        if args.json:
            with open(args.json, "w") as stream:
                json.dump({"machine": machine(), "results": summary}, stream, indent=2)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def fresh(path: str) -> str:
    """``path`` with whatever a previous round wrote there removed (outside the timing: freeing a
    replaced file's pages is not the work being measured)."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    return path


def _tensors(data: bytes):
    import safetensors

    return {name: (info["dtype"], tuple(info["shape"]), info["data"]) for name, info in safetensors.deserialize(data)}


def report(summary, size_mb, repeat, same_tensors):
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}")
    print(f"checkpoint: VGG-16, {size_mb:.0f} MB, largest tensor {LARGEST_MB:.0f} MB; median of {repeat} runs, "
          "each in its own process\n")
    print(f"| {'contender':<44} | {'process s':>9} | {'operation s':>11} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 46}|{'-' * 11}:|{'-' * 13}:|{'-' * 14}:|")
    for name, row in summary.items():
        print(f"| {name:<44} | {row['wall_s']:>9.2f} | {row['op_s']:>11.2f} | {row['peak_rss_mib']:>12.0f} |")
    export, recipe = summary["partialsaver export_checkpoint"], summary["recipe: tf.train.load_variable + save_file"]
    back, back_recipe = summary["partialsaver import_checkpoint"], summary["recipe: load_file + tf.Variables + Saver"]
    ceiling = 1.2 * LARGEST_MB + 150
    print("\ntargets:")
    print(f"- the two .safetensors files hold the same tensors: {same_tensors}")
    print(f"- export >= 5x faster end to end than the recipe: {recipe['wall_s'] / export['wall_s']:.1f}x "
          f"({'met' if recipe['wall_s'] >= 5 * export['wall_s'] else 'MISSED'})")
    print(f"- export peak RSS <= 1.2 x largest tensor + 150 MiB = {ceiling:.0f} MiB: {export['peak_rss_mib']:.0f} MiB "
          f"({'met' if export['peak_rss_mib'] <= ceiling else 'MISSED'})")
    print(f"- import at the export's speed: {back['wall_s']:.2f} s vs export {export['wall_s']:.2f} s "
          f"(recipe {back_recipe['wall_s'] / back['wall_s']:.1f}x slower); peak RSS {back['peak_rss_mib']:.0f} MiB "
          f"({'met' if back['wall_s'] <= 1.5 * export['wall_s'] and back['peak_rss_mib'] <= ceiling else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())

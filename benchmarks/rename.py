"""Rename the variables of a VGG-16-sized checkpoint: partialsaver vs the usual recipe vs cp.

The usual recipe (e.g. the widely copied tensorflow_rename_variables.py, ported to
tf.compat.v1) loads every tensor with tf.train.load_variable, makes a tf.Variable of it
(a graph constant holding the value) and saves the graph with a Saver.

Every contender runs in its own process, in one run of this script, --repeat times;
the table shows medians, the child's own peak RSS (wait4), and ratios within the run.

Usage: python benchmarks/rename.py [--repeat 3] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, median, run_child, run_command  # noqa: E402

# tf_slim's vgg_16 variables: 138 M parameters, 553 MB; fc6/weights alone is 411 MB.
VGG16 = [("conv1/conv1_1", [3, 3, 3, 64]), ("conv1/conv1_2", [3, 3, 64, 64]),
         ("conv2/conv2_1", [3, 3, 64, 128]), ("conv2/conv2_2", [3, 3, 128, 128]),
         ("conv3/conv3_1", [3, 3, 128, 256]), ("conv3/conv3_2", [3, 3, 256, 256]), ("conv3/conv3_3", [3, 3, 256, 256]),
         ("conv4/conv4_1", [3, 3, 256, 512]), ("conv4/conv4_2", [3, 3, 512, 512]), ("conv4/conv4_3", [3, 3, 512, 512]),
         ("conv5/conv5_1", [3, 3, 512, 512]), ("conv5/conv5_2", [3, 3, 512, 512]), ("conv5/conv5_3", [3, 3, 512, 512]),
         ("fc6", [7, 7, 512, 4096]), ("fc7", [1, 1, 4096, 4096]), ("fc8", [1, 1, 4096, 1000])]

BUILD = """
import os, json, tensorflow as tf
v1 = tf.compat.v1
layers = {layers!r}
with tf.Graph().as_default():
    for name, shape in layers:
        v1.get_variable("vgg_16/" + name + "/weights", shape, initializer=v1.random_uniform_initializer(seed=1))
        v1.get_variable("vgg_16/" + name + "/biases", shape[-1:], initializer=v1.random_uniform_initializer(seed=2))
    v1.train.get_or_create_global_step()
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        v1.train.Saver().save(sess, {prefix!r}, write_meta_graph=False)
print(json.dumps({{}}))
"""

IMPORT_TF = """
import json, tensorflow as tf
print(json.dumps({}))
"""

PARTIALSAVER = """
import json, re, time, tensorflow as tf
from partialsaver import rename_variables
start = time.perf_counter()
rename_variables({src!r}, {dst!r}, {{"vgg_16/": "backbone/vgg_16/", re.compile(r"^(.*)/weights$"): r"\\1/kernel"}},
                 overwrite=True)
print(json.dumps({{"op": time.perf_counter() - start}}))
"""

# The recipe, ported to tf.compat.v1 graph mode: names are rewritten the same way.
RECIPE = """
import json, re, time, tensorflow as tf
v1 = tf.compat.v1
start = time.perf_counter()
def new_name(name):
    if name.startswith("vgg_16/"):
        return "backbone/" + name
    return name
with tf.Graph().as_default():
    for name, _ in tf.train.list_variables({src!r}):
        value = tf.train.load_variable({src!r}, name)
        v1.Variable(value, name=new_name(name))
    saver = v1.train.Saver()
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        saver.save(sess, {dst!r})
print(json.dumps({{"op": time.perf_counter() - start}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--skip-recipe", action="store_true", help="leave out the slow recipe")
    args = parser.parse_args()

    scratch = args.workdir or tempfile.mkdtemp(prefix="partialsaver-bench-")
    try:
        src = os.path.join(scratch, "src", "model.ckpt")
        os.makedirs(os.path.dirname(src), exist_ok=True)
        if not os.path.exists(src + ".index"):
            run_child(BUILD.format(layers=VGG16, prefix=src))
        files = [os.path.join(os.path.dirname(src), f) for f in os.listdir(os.path.dirname(src)) if f.startswith("model.ckpt")]
        size_mb = sum(os.path.getsize(f) for f in files) / 2**20
        largest_mb = 7 * 7 * 512 * 4096 * 4 / 2**20
        budget_mb = 256

        contenders = {
            "import tensorflow (baseline)": lambda: run_child(IMPORT_TF),
            "cp of the files": lambda: cp(files, os.path.join(scratch, "cp")),
            "partialsaver rename_variables": lambda: run_child(
                PARTIALSAVER.format(src=src, dst=os.path.join(scratch, "ps", "model.ckpt"))),
        }
        if not args.skip_recipe:
            contenders["recipe: load into tf.Variables + Saver"] = lambda: run_child(
                RECIPE.format(src=src, dst=os.path.join(scratch, "recipe", "model.ckpt")))
        for sub in ("cp", "ps", "recipe"):
            os.makedirs(os.path.join(scratch, sub), exist_ok=True)

        results = {name: [] for name in contenders}
        for round_number in range(args.repeat):
            for name, run in contenders.items():
                results[name].append(run())
                print(f"round {round_number + 1}: {name}: {results[name][-1]['wall']:.2f} s", file=sys.stderr)

        summary = {}
        for name, runs in results.items():
            summary[name] = {
                "wall_s": median([r["wall"] for r in runs]),
                "op_s": median([r.get("op", r["wall"]) for r in runs]),
                "peak_rss_mib": median([r["peak_rss_mib"] for r in runs]),
            }
        report(summary, size_mb, largest_mb, budget_mb, args.repeat)
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"machine": machine(), "checkpoint_mb": size_mb, "results": summary}, out, indent=2)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def cp(files, directory):
    return run_command(["cp", *files, directory + "/"])


def report(summary, size_mb, largest_mb, budget_mb, repeat):
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}")
    print(f"checkpoint: VGG-16 shapes, {size_mb:.0f} MB, largest tensor {largest_mb:.0f} MB; median of {repeat} runs\n")
    ours = summary["partialsaver rename_variables"]
    print(f"| {'contender':<40} | {'process s':>9} | {'operation s':>11} | {'peak RSS MiB':>12} | {'op time vs partialsaver':>23} |")
    print(f"|{'-' * 42}|{'-' * 11}:|{'-' * 13}:|{'-' * 14}:|{'-' * 25}:|")
    for name, row in summary.items():
        ratio = row["op_s"] / ours["op_s"]
        print(f"| {name:<40} | {row['wall_s']:>9.2f} | {row['op_s']:>11.2f} | {row['peak_rss_mib']:>12.0f} | {ratio:>22.1f}x |")
    baseline = summary["import tensorflow (baseline)"]["peak_rss_mib"]
    ceiling = baseline + 1.5 * largest_mb + budget_mb
    print(f"\nmemory target: import-tensorflow RSS {baseline:.0f} + 1.5 x {largest_mb:.0f} + budget {budget_mb} = "
          f"{ceiling:.0f} MiB; partialsaver peak {ours['peak_rss_mib']:.0f} MiB "
          f"({'met' if ours['peak_rss_mib'] <= ceiling else 'MISSED'})")
    recipe = summary.get("recipe: load into tf.Variables + Saver")
    if recipe:
        speedup = recipe["op_s"] / ours["op_s"]
        end_to_end = recipe["wall_s"] / ours["wall_s"]
        print(f"speed target: >= 10x faster than the recipe: {speedup:.1f}x on the operation, "
              f"{end_to_end:.1f}x per process ({'met' if speedup >= 10 else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())

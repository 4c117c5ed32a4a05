"""Rename VGG-16's variables: partialsaver (index only; or copying the kept bytes when keys
are dropped) vs `cp` of the files vs the usual TensorFlow recipe; and how fast the CLI starts.

The usual recipe (the widely copied tensorflow_rename_variables.py, in tf.compat.v1) loads
every tensor with tf.train.load_variable, makes a tf.Variable of it and saves with a Saver.

Every contender runs in its own process, in one run of this script, --repeat times; the
table shows medians, the child's own peak RSS (wait4), and ratios within the run.

Usage: python benchmarks/rename.py [--repeat 3] [--workdir DIR] [--json OUT] [--skip-recipe]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    LARGEST_MB,
    checkpoint_files,
    machine,
    megabytes,
    run_child,
    run_command,
    run_rounds,
    vgg_checkpoint,
)

MAP = '{"vgg_16/": "backbone/vgg_16/"}'

PARTIALSAVER = """
import json, time
from partialsaver import OPTIMIZER_SLOTS, rename_variables
start = time.perf_counter()  # the operation: the call, not Python's and numpy's start-up
rename_variables({src!r}, {dst!r}, {map}, exclude={exclude}, overwrite=True)
print(json.dumps({{"op": time.perf_counter() - start}}))
"""

# The recipe, in tf.compat.v1 graph mode: names are rewritten the same way.
RECIPE = """
import json, time, tensorflow as tf
v1 = tf.compat.v1
start = time.perf_counter()
with tf.Graph().as_default():
    for name, _ in tf.train.list_variables({src!r}):
        value = tf.train.load_variable({src!r}, name)
        v1.Variable(value, name="backbone/" + name if name.startswith("vgg_16/") else name)
    saver = v1.train.Saver()
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        saver.save(sess, {dst!r}, write_meta_graph=False)
print(json.dumps({{"op": time.perf_counter() - start}}))
"""


def cli(*argv: str):
    script = shutil.which("partialsaver", path=os.path.dirname(sys.executable))
    return lambda: run_command([script, *argv], quiet=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--skip-recipe", action="store_true", help="leave out the slow TensorFlow recipe")
    args = parser.parse_args()

    scratch = args.workdir or tempfile.mkdtemp(prefix="partialsaver-bench-")
    try:
        src = vgg_checkpoint(os.path.join(scratch, "src", "model.ckpt"))
        slotted = vgg_checkpoint(os.path.join(scratch, "slotted", "model.ckpt"), momentum_slots=True)
        files, slotted_files = checkpoint_files(src), checkpoint_files(slotted)
        out = {name: os.path.join(scratch, name) for name in ("cp", "cp2", "ps", "cli", "drop", "recipe")}
        for directory in out.values():
            os.makedirs(directory, exist_ok=True)
        contenders = {
            "cp of the files": lambda: run_command(["cp", *files, fresh(out["cp"]) + "/"]),
            "partialsaver rename_variables (pure rename)": lambda: run_child(PARTIALSAVER.format(
                src=src, dst=fresh(out["ps"]) + "/model.ckpt", map=MAP, exclude=None)),
            "`partialsaver rename` (whole process)": cli(
                "rename", src, out["cli"] + "/model.ckpt", "--map", "vgg_16/=backbone/vgg_16/", "--overwrite",
                "--quiet"),
            "cp of a checkpoint with Momentum slots": lambda: run_command(
                ["cp", *slotted_files, fresh(out["cp2"]) + "/"]),
            "partialsaver rename dropping the slots (half)": lambda: run_child(PARTIALSAVER.format(
                src=slotted, dst=fresh(out["drop"]) + "/model.ckpt", map=MAP, exclude="OPTIMIZER_SLOTS")),
            "`partialsaver --help`": cli("--help"),
            "`partialsaver list` (VGG-16)": cli("list", src),
        }
        if not args.skip_recipe:
            contenders["recipe: load into tf.Variables + Saver"] = lambda: run_child(
                RECIPE.format(src=src, dst=fresh(out["recipe"]) + "/model.ckpt"))

        summary = run_rounds(contenders, args.repeat)
        report(summary, megabytes(files), megabytes(slotted_files), args.repeat)
        if args.json:
            with open(args.json, "w") as stream:
                json.dump({"machine": machine(), "checkpoint_mb": megabytes(files), "results": summary}, stream,
                          indent=2)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def fresh(directory: str) -> str:
    """An empty ``directory``: what a previous round wrote is removed outside the timing (freeing
    a replaced file's pages is not the work being measured)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    return directory


def report(summary, size_mb, slotted_mb, repeat):
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}")
    print(f"checkpoint: VGG-16, {size_mb:.0f} MB (with Momentum slots {slotted_mb:.0f} MB), largest tensor "
          f"{LARGEST_MB:.0f} MB; median of {repeat} runs, each in its own process\n")
    print(f"| {'contender':<46} | {'process s':>9} | {'operation s':>11} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 48}|{'-' * 11}:|{'-' * 13}:|{'-' * 14}:|")
    for name, row in summary.items():
        print(f"| {name:<46} | {row['wall_s']:>9.2f} | {row['op_s']:>11.3f} | {row['peak_rss_mib']:>12.0f} |")
    pure, cp = summary["partialsaver rename_variables (pure rename)"], summary["cp of the files"]
    whole = summary["`partialsaver rename` (whole process)"]
    drop, cp2 = summary["partialsaver rename dropping the slots (half)"], summary["cp of a checkpoint with Momentum slots"]
    print("\ntargets:")
    checks = [
        ("pure rename operation <= 0.2 s and below cp", pure["op_s"] <= 0.2 and pure["op_s"] < cp["wall_s"],
         f"{pure['op_s']:.3f} s vs cp {cp['wall_s']:.3f} s"),
        ("`partialsaver rename` process <= 1 s", whole["wall_s"] <= 1.0, f"{whole['wall_s']:.2f} s"),
        ("pure rename peak RSS <= 150 MiB", pure["peak_rss_mib"] <= 150, f"{pure['peak_rss_mib']:.0f} MiB"),
        ("dropping half: operation <= cp of the whole checkpoint", drop["op_s"] <= cp2["wall_s"],
         f"{drop['op_s']:.2f} s vs cp {cp2['wall_s']:.2f} s"),
        ("dropping half: whole process <= cp of the whole checkpoint", drop["wall_s"] <= cp2["wall_s"],
         f"{drop['wall_s']:.2f} s vs cp {cp2['wall_s']:.2f} s (Python and numpy start-up included)"),
        ("`partialsaver --help` <= 0.5 s", summary["`partialsaver --help`"]["wall_s"] <= 0.5,
         f"{summary['`partialsaver --help`']['wall_s']:.2f} s"),
        ("`partialsaver list` <= 0.5 s", summary["`partialsaver list` (VGG-16)"]["wall_s"] <= 0.5,
         f"{summary['`partialsaver list` (VGG-16)']['wall_s']:.2f} s"),
    ]
    recipe = summary.get("recipe: load into tf.Variables + Saver")
    if recipe:
        print(f"- the TensorFlow recipe: {recipe['wall_s'] / whole['wall_s']:.0f}x the CLI's process time, "
              f"{recipe['peak_rss_mib'] / pure['peak_rss_mib']:.0f}x its peak RSS")
    for label, met, detail in checks:
        print(f"- {label}: {detail} ({'met' if met else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())

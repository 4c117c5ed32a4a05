"""Peak memory of a restore: 8 variables of 100 MiB, restored into variables that hold values
already (initialize everything, then restore: the common idiom, or a restore inside a training
loop) and into fresh ones.

Each contender runs in its own process: it builds the graph, initializes the variables (or
not), then resets the process's peak-RSS mark (/proc/self/clear_refs) and restores; the
growth is the peak during the restore minus the RSS just before it. Median of --repeat runs.

Usage: python benchmarks/restore_memory.py [--repeat 3] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, median, run_child  # noqa: E402

COUNT, ELEMENTS = 8, 25 * 2**20  # 8 x 100 MiB of float32

BUILD = """
import sys
import numpy as np
from partialsaver.format import BundleWriter
rng = np.random.default_rng(0)
with BundleWriter(sys.argv[1]) as writer:
    for index in range({count}):
        writer.add(f"w{{index}}", rng.standard_normal({elements}, dtype=np.float32))
"""

CHILD = """
import json, time
import numpy as np, tensorflow as tf
v1 = tf.compat.v1

def rss_mib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024

with tf.Graph().as_default():
    # A random initializer, as training uses: a constant one (zeros, ones) is folded into a graph
    # constant that keeps every initial value alive whatever the restore does.
    variables = [v1.get_variable(f"w{{i}}", [{elements}], initializer=v1.random_normal_initializer())
                 for i in range({count})]
    sess = v1.Session()
{setup}
    if {hold_values}:
        sess.run([variable.initializer for variable in variables])
    sess.run(tf.constant(0.0))
    before = rss_mib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as marks:
        marks.write("5")  # resets the peak-RSS mark (VmHWM) to the current RSS
    start = time.perf_counter()
{restore}
    seconds = time.perf_counter() - start
    growth = rss_mib("VmHWM:") - before
    assert np.isfinite(sess.run(variables[-1][:4])).all()
print(json.dumps({{"restore_s": seconds, "growth_mib": growth, "before_mib": before}}))
"""

# (setup, restore): the timed restore includes building each contender's ops.
CONTENDERS = {
    "plain Saver": ("    pass", "    v1.train.Saver(variables).restore(sess, {ckpt!r})"),
    "SmartSaver (memory_budget=None: one step)": (
        "    from partialsaver import SmartSaver", "    SmartSaver(memory_budget=None).restore(sess, {ckpt!r})"),
    "SmartSaver (default memory_budget=256 MiB)": (
        "    from partialsaver import SmartSaver", "    SmartSaver().restore(sess, {ckpt!r})"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    scratch = args.workdir or tempfile.mkdtemp(prefix="partialsaver-memory-")
    try:
        prefix = os.path.join(scratch, "model.ckpt")
        if not os.path.exists(prefix + ".index"):
            subprocess.run([sys.executable, "-c", BUILD.format(count=COUNT, elements=ELEMENTS), prefix], check=True)
        results = {}
        for round_number in range(args.repeat):
            for hold_values in (True, False):
                for name, (setup, restore) in CONTENDERS.items():
                    code = CHILD.format(count=COUNT, elements=ELEMENTS, hold_values=hold_values, setup=setup,
                                        restore=restore.format(ckpt=prefix))
                    result = run_child(code)
                    results.setdefault((hold_values, name), []).append(result)
                    print(f"round {round_number + 1}: {'holding values' if hold_values else 'fresh'}: {name}: "
                          f"+{result['growth_mib']:.0f} MiB, {result['restore_s']:.2f} s", file=sys.stderr)
        report(results, args.repeat)
        if args.json:
            with open(args.json, "w") as stream:
                json.dump({"machine": machine(), "results": {f"{'holding' if k[0] else 'fresh'}: {k[1]}": v
                                                             for k, v in results.items()}}, stream, indent=2)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def report(results, repeat):
    info = machine()
    model = COUNT * ELEMENTS * 4 / 2**20
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}")
    print(f"model: {COUNT} variables x {ELEMENTS * 4 / 2**20:.0f} MiB = {model:.0f} MiB; median of {repeat} runs, "
          "each in its own process\n")
    print(f"| {'variables':<15} | {'contender':<44} | {'RSS growth MiB':>14} | {'vs plain Saver':>14} | {'restore s':>9} |")
    print(f"|{'-' * 17}|{'-' * 46}|{'-' * 15}:|{'-' * 15}:|{'-' * 10}:|")
    for hold_values in (True, False):
        plain = median([r["growth_mib"] for r in results[(hold_values, "plain Saver")]])
        for name in CONTENDERS:
            runs = results[(hold_values, name)]
            growth, seconds = median([r["growth_mib"] for r in runs]), median([r["restore_s"] for r in runs])
            label = "holding values" if hold_values else "fresh"
            print(f"| {label:<15} | {name:<44} | {growth:>14.0f} | {growth / plain:>13.2f}x | {seconds:>9.2f} |")
    held = median([r["growth_mib"] for r in results[(True, "SmartSaver (default memory_budget=256 MiB)")]])
    plain = median([r["growth_mib"] for r in results[(True, "plain Saver")]])
    print(f"\ntarget: holding values, SmartSaver <= 0.75x plain Saver's growth: {held / plain:.2f}x "
          f"({'met' if held <= 0.75 * plain else 'MISSED'}); model + largest tensor + budget = "
          f"{model + ELEMENTS * 4 / 2**20 + 256:.0f} MiB, measured {held:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())

"""The "is it initialized already?" check alone: one flag per candidate vs one while loop.

SmartSaver asks the session which of the variables a restore does not set are initialized,
before initializing them (partialsaver/_check.py). For N variables (half of them the
candidates, a quarter of those initialized), each child process builds the graph and times,
for one way of building the check:

  build   creating the check's ops in Python;
  first   its first Session.run (ExtendSession, Grappler, executors, then execution);
  second  the same run again (execution alone).

"baseline" runs one new constant instead: its "first" is what any first run after new ops
costs in that graph (ExtendSession copying the grown graph), paid by every contender.

Usage: python benchmarks/check.py [--sizes 1000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, median, run_child  # noqa: E402

CHILD = """
import json, time
import tensorflow as tf
from partialsaver._check import _flag_per_variable, _flags_in_one_loop
v1 = tf.compat.v1
graph = tf.Graph()
with graph.as_default():
    variables = [v1.get_variable("part%d/layer%d/w" % (i % 2, i), [16] if i % 2 else [8, 8]) for i in range({count})]
    candidates = variables[1::2]
    sess = v1.Session(graph=graph)
    sess.run([variable.initializer for variable in candidates[::4]])
    start = time.perf_counter()
    check = {builder}
    built = time.perf_counter()
    flags = sess.run(check)
    first = time.perf_counter()
    sess.run(check)
    second = time.perf_counter()
    if {verify}:
        assert flags.tolist() == [index % 4 == 0 for index in range(len(candidates))]
print(json.dumps({{"build": built - start, "first": first - built, "second": second - first}}))
"""

BUILDERS = {
    "baseline (one new constant)": ("tf.constant([True])", False),
    "one flag per candidate": ("_flag_per_variable(candidates)", True),
    "one while loop": ("_flags_in_one_loop(candidates)", True),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    runs: Dict[tuple, List[Dict[str, float]]] = {}
    for round_number in range(1, args.repeat + 1):
        for count in sizes:
            for name, (builder, verify) in BUILDERS.items():
                result = run_child(CHILD.format(count=count, builder=builder, verify=verify))
                runs.setdefault((count, name), []).append(result)
                print(f"round {round_number}: N={count} {name}: build {result['build']:.2f} s, "
                      f"first {result['first']:.2f} s", file=sys.stderr)
    info = machine()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}; median of {args.repeat}\n")
    print("| N | candidates | check | build s | first run s | second run s | build + first s |")
    print("|--:|-----------:|-------|--------:|------------:|-------------:|----------------:|")
    for (count, name), results in runs.items():
        build, first, second = (median([result[phase] for result in results]) for phase in ("build", "first", "second"))
        print(f"| {count:,} | {count // 2:,} | {name} | {build:.2f} | {first:.2f} | {second:.3f} | {build + first:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a tf.compat.v1 restore spends its time: plain Saver vs SmartSaver, phase by phase.

For N small variables (default 10,000; half under backbone/, half under head/), each child
process builds the graph, then times

  build   building the restore (and initialize) ops: Saver(...) + variables_initializer
          for plain Saver, SmartSaver(...).init_fn(ckpt) (plan + every op) for SmartSaver;
  extend  the first Session.run after building: TensorFlow copies the whole graph into the
          session (ExtendSession); measured by running a trivial constant;
  first   the restore itself, as a user calls it: its first Session.run(s) of the new ops
          (pruning, Grappler's graph optimisation, executor creation, then execution);
  second  the same calls again: executors cached, so this is execution alone (SmartSaver's
          second call finds everything initialized and skips the initializer run).

once with the default session config and once with Grappler off
(`rewrite_options.disable_meta_optimizer`), which isolates Grappler's share of "first".

Usage: python benchmarks/restore_profile.py [--sizes 10000] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, median, run_child  # noqa: E402
from restore import checkpoint_for  # noqa: E402  (the same N-variable model and checkpoint)

MODEL = """
import json, os, sys, time
import tensorflow as tf
v1 = tf.compat.v1

def layers(count):  # restore.py's model_layers(count): its checkpoint_for writes these
    half = count // 2
    return [("%s/block%d/layer%d/w" % (part, i // 100, i % 100), [16] if i % 2 else [8, 8])
            for part, size in (("backbone", half), ("head", count - half)) for i in range(size)]
"""

CHILD = MODEL + """
config = v1.ConfigProto()
config.graph_options.rewrite_options.disable_meta_optimizer = {no_grappler}
partial = {partial}
graph = tf.Graph()
with graph.as_default():
    variables = [v1.get_variable(name, shape) for name, shape in layers({count})]
    sess = v1.Session(graph=graph, config=config)
    start = time.perf_counter()
{body}
    built = time.perf_counter()
    sess.run(warm)
    extended = time.perf_counter()
    restore()
    first = time.perf_counter()
    restore()
    second = time.perf_counter()
    sess.run(variables)  # every variable is initialized, or this raises
print(json.dumps({{"build": built - start, "extend": extended - built, "first": first - extended,
                  "second": second - first}}))
"""

PLAIN = """
    everything = v1.global_variables()
    restored = [v for v in everything if v.op.name.startswith("backbone/")] if partial else everything
    rest = [v for v in everything if not v.op.name.startswith("backbone/")] if partial else []
    saver = v1.train.Saver(var_list=restored)
    init_rest = v1.variables_initializer(rest) if rest else None
    warm = tf.constant(0.0)

    def restore():
        saver.restore(sess, {ckpt!r})
        if init_rest is not None:
            sess.run(init_rest)
"""

SMART = """
    from partialsaver import SmartSaver
    init_fn = SmartSaver(**({{"include": "backbone"}} if partial else {{}})).init_fn({ckpt!r})
    warm = tf.constant(0.0)

    def restore():
        init_fn(None, sess)
"""

CONTENDERS = {"plain Saver": PLAIN, "SmartSaver": SMART}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", help="checkpoint cache (default: a temporary directory, removed after)")
    args = parser.parse_args(argv)
    scratch = args.workdir or tempfile.mkdtemp(prefix="partialsaver-profile-")
    runs: Dict[Tuple[int, str, str, bool], List[Dict[str, float]]] = {}
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
        for count in sizes:
            prefix = checkpoint_for(count, scratch)
            for round_number in range(args.repeat):
                for case in ("full", "partial"):
                    for no_grappler in (False, True):
                        for name, body in CONTENDERS.items():
                            code = CHILD.format(count=count, no_grappler=no_grappler, partial=case == "partial",
                                                body=body.format(ckpt=prefix))
                            result = run_child(code)
                            runs.setdefault((count, case, name, no_grappler), []).append(result)
                            grappler = "off" if no_grappler else "on"
                            print(f"round {round_number + 1}: N={count} {case} {name} Grappler {grappler}: "
                                  f"first call {result['first']:.2f} s", file=sys.stderr)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}; median of {args.repeat}, each in a fresh process\n")
    print("| N | case | contender | Grappler | build s | extend s | first call s | second call s | total s |")
    print("|--:|------|-----------|----------|--------:|---------:|-------------:|--------------:|--------:|")
    for (count, case, name, no_grappler), results in runs.items():
        row = {field: median([result[field] for result in results]) for field in ("build", "extend", "first", "second")}
        total = row["build"] + row["extend"] + row["first"]
        print(f"| {count:,} | {case} | {name} | {'off' if no_grappler else 'on'} | {row['build']:.2f} | "
              f"{row['extend']:.2f} | {row['first']:.2f} | {row['second']:.2f} | {total:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

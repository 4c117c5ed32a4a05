"""Restore a checkpoint into a tf.compat.v1 graph: partialsaver vs plain Saver vs its peers.

For N small variables (default N = 100, 1,000, 10,000) and a VGG-16-sized checkpoint
(tf-slim's vgg_16 shapes, ~530 MB), every contender restores

  (a) full:    every variable of the graph from the checkpoint;
  (b) partial: half of them (`backbone/`; for VGG-16 everything but `vgg_16/fc8`, the usual
               head swap), the rest initialized by its initializer.

Each run is a fresh child process that builds the graph (timed on its own), opens a
Session and then times "restore": from the built graph to every variable restored or
initialized, INCLUDING building the restore machinery (Saver construction, SmartSaver
construction + plan, init_from_checkpoint's initializer rewrite, ...) and the first
Session.run of those ops (graph pruning/optimisation: no contender gets a warm-up run).
An untimed check then fetches every variable (all must be initialized) and compares the
restored ones with the checkpoint bit for bit and the others with the initializer's range.

Contenders (what a careful user of each writes; see CONTENDERS below for the code):
  plain Saver              Saver(var_list=restored); restore; then variables_initializer(rest)
                           (full: Saver(); restore; nothing left to initialize) -- the baseline
  plain Saver, init first  the common idiom: global_variables_initializer, then Saver.restore
  tensorpack               SmartInit(ckpt): its graph setup, global_variables_initializer, its
                           restore, in the order tensorpack's trainer runs them. Partial:
                           SaverRestore(ckpt, ignore=rest) (the class SmartInit(ckpt) returns,
                           with its own filter) and SmartInit(dict) of load_checkpoint_vars(ckpt)
                           without the rest (tensorpack's "remove the variables in your loader")
  init_from_checkpoint     tf.compat.v1.train.init_from_checkpoint(ckpt, {"/": "/"} or
                           {"backbone/": "backbone/"}), then global_variables_initializer
  partialsaver             SmartSaver(include="backbone").restore(sess, ckpt)  (plans, restores,
                           initializes the rest)

plan() alone: SmartSaver(...).plan(ckpt) in its own child, first call and a second call.
Medians of --repeat rounds; every round runs every contender once, interleaved.

Usage: python benchmarks/restore.py [--repeat 3] [--sizes 100,1000,10000] [--workdir DIR]
                                    [--json OUT] [--skip-vgg] [--only SmartSaver,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import VGG16, machine, median, run_child  # noqa: E402  (VGG16: tf-slim's vgg_16 shapes)

VGG = "VGG-16"
FULL, PARTIAL = "full", "partial"

# Code shared by every child: the variables of one benchmark model and the untimed check.
# Synthetic model of N variables: half under backbone/, half under head/, alternating
# [16] and [8, 8] shapes, 100 layers per block.
MODEL = """
import json, os, resource, sys, time
# run_child reads the pipes only after the child exits, so a chatty child (tensorpack logs
# one line per ignored variable) would fill the pipe and hang: stdout goes to /dev/null
# and the result line to the original stdout.
RESULT_FD = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
def emit(result):
    sys.stdout.flush()
    os.write(RESULT_FD, (json.dumps(result) + "\\n").encode())
import numpy as np
import tensorflow as tf
v1 = tf.compat.v1

def model_layers(model):
    if model == "VGG-16":
        layers = []
        for name, shape in {vgg16!r}:
            layers += [("vgg_16/" + name + "/weights", shape), ("vgg_16/" + name + "/biases", shape[-1:])]
        return layers
    half = model // 2
    return [("%s/block%d/layer%d/w" % (part, i // 100, i % 100), [16] if i % 2 else [8, 8])
            for part, count in (("backbone", half), ("head", model - half)) for i in range(count)]

def in_scopes(name, scopes):
    return any(name == scope or name.startswith(scope + "/") for scope in scopes)
"""

WRITE_CHECKPOINT = MODEL + """
# Values in [10, 11): never produced by the graph's own initializers (|x| < 1), so the
# check can tell a restored variable from an initialized one.
with tf.Graph().as_default():
    for name, shape in model_layers({model!r}):
        v1.get_variable(name, shape, initializer=v1.random_uniform_initializer(10.0, 11.0, seed=1))
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        v1.train.Saver().save(sess, {prefix!r}, write_meta_graph=False)
emit({{}})
"""

CHILD = MODEL + """
{imports}
CKPT = {ckpt!r}
PARTIAL = {partial!r}
RESTORED_SCOPES = {restored_scopes!r}   # the variables the partial case restores
SMART_KWARGS = {smart_kwargs!r}         # the same selection, as SmartSaver options
imported = time.perf_counter()
layers = model_layers({model!r})
graph = tf.Graph()
with graph.as_default():
    variables = [v1.get_variable(name, shape) for name, shape in layers]  # default glorot_uniform
    built = time.perf_counter()
    sess = v1.Session(graph=graph)
    opened = time.perf_counter()
{body}
    done = time.perf_counter()
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Untimed check: every variable initialized (fetching one that is not raises), the
    # restored ones equal to the checkpoint, the others from their initializer.
    values = sess.run(variables)
    reader = tf.train.load_checkpoint(CKPT)
    restored = 0
    for (name, _), value in zip(layers, values):
        if not PARTIAL or in_scopes(name, RESTORED_SCOPES):
            if not np.array_equal(value, reader.get_tensor(name)):
                sys.exit("check failed: %s differs from the checkpoint" % name)
            restored += 1
        elif np.abs(value).max() >= 10:
            sys.exit("check failed: %s was restored, not initialized" % name)
emit({{"restore": done - opened, "graph": built - imported, "session": opened - built,
                  "peak_rss_mib_restore": peak_rss_mib, "restored": restored, **extra}})
"""

# Each contender: (imports, timed body). The body runs inside `with graph.as_default():`
# after the Session is open; `extra` carries optional sub-timings to the parent.
PLAIN_SAVER = """
    if PARTIAL:
        everything = v1.global_variables()
        saver = v1.train.Saver(var_list=[v for v in everything if in_scopes(v.op.name, RESTORED_SCOPES)])
        init_rest = v1.variables_initializer([v for v in everything if not in_scopes(v.op.name, RESTORED_SCOPES)])
        saver.restore(sess, CKPT)
        sess.run(init_rest)
    else:
        saver = v1.train.Saver()
        saver.restore(sess, CKPT)
    extra = {}
"""

PLAIN_SAVER_INIT_FIRST = """
    var_list = [v for v in v1.global_variables() if in_scopes(v.op.name, RESTORED_SCOPES)] if PARTIAL else None
    saver = v1.train.Saver(var_list=var_list)
    init = v1.global_variables_initializer()
    sess.run(init)
    saver.restore(sess, CKPT)
    extra = {}
"""

TENSORPACK_IMPORTS = """
from tensorpack.tfutils.sessinit import SaverRestore, SmartInit
from tensorpack.tfutils.varmanip import load_checkpoint_vars
"""

# tensorpack's trainer (and OfflinePredictor) calls session_init._setup_graph() while it
# builds the graph, creates the session running global_variables_initializer, then calls
# session_init._run_init(sess): the same order here, so tensorpack, like everyone, builds
# all its ops before its first Session.run (a run after new ops pays a graph extend that
# grows with the whole graph, ~4 s at 10,000 variables). SmartInit(...).init(sess) is
# those two calls back to back.
TENSORPACK = """
    session_init = SmartInit(CKPT)
    session_init._setup_graph()
    init = v1.global_variables_initializer()
    sess.run(init)
    session_init._run_init(sess)
    extra = {}
"""

TENSORPACK_IGNORE = """
    ignore = [v.op.name for v in v1.global_variables() if not in_scopes(v.op.name, RESTORED_SCOPES)]
    session_init = SaverRestore(CKPT, ignore=ignore)
    session_init._setup_graph()
    init = v1.global_variables_initializer()
    sess.run(init)
    session_init._run_init(sess)
    extra = {}
"""

TENSORPACK_DICT = """
    values = {k: v for k, v in load_checkpoint_vars(CKPT).items() if in_scopes(k, RESTORED_SCOPES)}
    session_init = SmartInit(values)
    session_init._setup_graph()
    init = v1.global_variables_initializer()
    sess.run(init)
    session_init._run_init(sess)
    extra = {}
"""

INIT_FROM_CHECKPOINT = """
    assignment_map = {scope + "/": scope + "/" for scope in RESTORED_SCOPES} if PARTIAL else {"/": "/"}
    v1.train.init_from_checkpoint(CKPT, assignment_map)
    init = v1.global_variables_initializer()
    sess.run(init)
    extra = {}
"""

PARTIALSAVER_IMPORTS = """
from partialsaver import SmartSaver
"""

PARTIALSAVER = """
    plan = SmartSaver(**(SMART_KWARGS if PARTIAL else {})).restore(sess, CKPT)
    extra = {"planned_restored": len(plan.restored)}
"""

PLAN_ALONE = MODEL + """
from partialsaver import SmartSaver
layers = model_layers({model!r})
with tf.Graph().as_default():
    for name, shape in layers:
        v1.get_variable(name, shape)
    saver = SmartSaver(**{smart_kwargs!r})
    start = time.perf_counter()
    plan = saver.plan({ckpt!r})
    first = time.perf_counter() - start
    start = time.perf_counter()
    saver.plan({ckpt!r})
    again = time.perf_counter() - start
emit({{"first": first, "again": again, "restored": len(plan.restored)}})
"""

BASELINE = "plain Saver"
# name -> (imports, body, cases, needs tensorpack)
CONTENDERS: Dict[str, Tuple[str, str, Tuple[str, ...], bool]] = {
    BASELINE: ("", PLAIN_SAVER, (FULL, PARTIAL), False),
    "plain Saver, init all first": ("", PLAIN_SAVER_INIT_FIRST, (FULL, PARTIAL), False),
    "tensorpack SmartInit(ckpt)": (TENSORPACK_IMPORTS, TENSORPACK, (FULL,), True),
    "tensorpack SaverRestore(ckpt, ignore=rest)": (TENSORPACK_IMPORTS, TENSORPACK_IGNORE, (PARTIAL,), True),
    "tensorpack SmartInit(dict without rest)": (TENSORPACK_IMPORTS, TENSORPACK_DICT, (PARTIAL,), True),
    "init_from_checkpoint + global init": ("", INIT_FROM_CHECKPOINT, (FULL, PARTIAL), False),
    "partialsaver SmartSaver.restore": (PARTIALSAVER_IMPORTS, PARTIALSAVER, (FULL, PARTIAL), False),
}


def selection(model: Any) -> Tuple[List[str], Dict[str, Any]]:
    """(scopes the partial case restores, the SmartSaver options saying the same)."""
    if model == VGG:
        kept = [f"vgg_16/{name}" for name, _ in VGG16 if name != "fc8"]
        return kept, {"exclude": "vgg_16/fc8"}
    return ["backbone"], {"include": "backbone"}


def checkpoint_for(model: Any, workdir: str) -> str:
    """The checkpoint of `model`, written once by a real Saver and cached in workdir."""
    prefix = os.path.join(workdir, f"ckpt-{'vgg16' if model == VGG else model}", "model.ckpt")
    if not os.path.exists(prefix + ".index"):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        print(f"writing the checkpoint of {label(model)} ...", file=sys.stderr)
        run_child(WRITE_CHECKPOINT.format(vgg16=VGG16, model=model, prefix=prefix))
    return prefix


def label(model: Any) -> str:
    return VGG if model == VGG else f"N = {model:,}"


def run_contender(name: str, model: Any, case: str, ckpt: str) -> Dict[str, float]:
    imports, body, _, _ = CONTENDERS[name]
    restored_scopes, smart_kwargs = selection(model)
    code = CHILD.format(vgg16=VGG16, imports=imports, ckpt=ckpt, partial=case == PARTIAL, model=model,
                        restored_scopes=restored_scopes, smart_kwargs=smart_kwargs, body=body)
    return run_child(code)


def run_plan(model: Any, case: str, ckpt: str) -> Dict[str, float]:
    smart_kwargs = selection(model)[1] if case == PARTIAL else {}
    return run_child(PLAN_ALONE.format(vgg16=VGG16, model=model, smart_kwargs=smart_kwargs, ckpt=ckpt))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated numbers of variables")
    parser.add_argument("--workdir", help="checkpoint cache (default: a temporary directory, removed after)")
    parser.add_argument("--json", help="also write every run and the medians here")
    parser.add_argument("--skip-vgg", action="store_true", help="leave out the VGG-16-sized checkpoint")
    parser.add_argument("--only", help="comma-separated parts of contender names to run (plain Saver, the "
                                       "baseline, always runs), e.g. --only SmartSaver")
    args = parser.parse_args(argv)

    models: List[Any] = [int(size) for size in args.sizes.split(",") if size.strip()]
    if not args.skip_vgg:
        models.append(VGG)
    have_tensorpack = importlib.util.find_spec("tensorpack") is not None
    contenders = [name for name, spec in CONTENDERS.items() if have_tensorpack or not spec[3]]
    if args.only:
        wanted = [part.strip() for part in args.only.split(",") if part.strip()]
        contenders = [name for name in contenders if name == BASELINE or any(part in name for part in wanted)]

    package = measured_package()  # before the runs: the tree may change while they go
    scratch = args.workdir or tempfile.mkdtemp(prefix="partialsaver-bench-")
    try:
        checkpoints = {model: checkpoint_for(model, scratch) for model in models}
        runs: Dict[Tuple[str, str, str], List[Dict[str, float]]] = {}
        for round_number in range(1, args.repeat + 1):
            for model in models:
                for case in (FULL, PARTIAL):
                    for name in contenders:
                        if case not in CONTENDERS[name][2]:
                            continue
                        result = run_contender(name, model, case, checkpoints[model])
                        runs.setdefault((label(model), case, name), []).append(result)
                        print(f"round {round_number}: {label(model)} {case} {name}: restore {result['restore']:.2f} s "
                              f"(process {result['wall']:.1f} s)", file=sys.stderr)
                    result = run_plan(model, case, checkpoints[model])
                    runs.setdefault((label(model), case, "plan()"), []).append(result)
        summary = summarize(runs)
        info = dict(machine(), partialsaver=package)
        sizes_mb = {label(model): checkpoint_mb(prefix) for model, prefix in checkpoints.items()}
        report(summary, [label(model) for model in models], contenders, args.repeat, info, have_tensorpack, sizes_mb)
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"machine": info, "repeat": args.repeat, "checkpoint_mb": sizes_mb,
                           "medians": [dict(zip(("model", "case", "contender"), key), **row) for key, row in summary.items()],
                           "runs": [dict(zip(("model", "case", "contender"), key), runs=value) for key, value in runs.items()]},
                          out, indent=2)
    finally:
        if not args.workdir:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def measured_package() -> str:
    """Which partialsaver the children import: its directory and, in a git checkout, the
    commit (+ "with local changes"), since the package may change between runs."""
    spec = importlib.util.find_spec("partialsaver")
    directory = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else "?"
    try:
        commit = subprocess.run(["git", "-C", directory, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", directory, "status", "--porcelain", "--", "partialsaver"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"{directory} at {commit}" + (" with local changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return directory


def checkpoint_mb(prefix: str) -> float:
    directory, name = os.path.split(prefix)
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory) if f.startswith(name)) / 2**20


def summarize(runs: Dict[Tuple[str, str, str], List[Dict[str, float]]]) -> Dict[Tuple[str, str, str], Dict[str, float]]:
    summary = {}
    for key, results in runs.items():
        fields = [field for field in results[0] if isinstance(results[0][field], (int, float))]
        summary[key] = {field: median([result[field] for result in results]) for field in fields}
    return summary


def report(summary, models, contenders, repeat, info, have_tensorpack, sizes_mb) -> None:
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory']}; Python {info['python']}, "
          f"TensorFlow {info['tensorflow']}; median of {repeat} run(s), each in a fresh process")
    print(f"partialsaver: {info['partialsaver']}")
    if not have_tensorpack:
        print("tensorpack is not installed: its rows are left out (pip install tensorpack)")
    print("\ncolumns: graph s = creating the variables (same code for everyone, not in 'restore');\n"
          "restore s = from the built graph and open Session to every variable restored or initialized,\n"
          "  including building the restore machinery and the first Session.run of its ops (no warm-up);\n"
          "vs plain Saver = restore s / plain Saver's restore s in the same case;\n"
          "process s = the whole child: Python + TensorFlow start-up, graph, restore and the untimed check;\n"
          "peak RSS = the child's ru_maxrss when the restore finished (before the check).")
    for model in models:
        print(f"\n### {model} (checkpoint {sizes_mb[model]:.1f} MiB)\n")
        print(f"| {'contender':<43} | {'case':<7} | {'graph s':>7} | {'restore s':>9} | {'vs plain Saver':>14} "
              f"| {'process s':>9} | {'peak RSS MiB':>12} |")
        print(f"|{'-' * 45}|{'-' * 9}|{'-' * 8}:|{'-' * 10}:|{'-' * 15}:|{'-' * 10}:|{'-' * 13}:|")
        for case in (FULL, PARTIAL):
            baseline = summary.get((model, case, BASELINE))
            for name in contenders:
                row = summary.get((model, case, name))
                if row is None:
                    continue
                ratio = f"{row['restore'] / baseline['restore']:.2f}x" if baseline else "-"
                print(f"| {name:<43} | {case:<7} | {row['graph']:>7.2f} | {row['restore']:>9.2f} | {ratio:>14} "
                      f"| {row['wall']:>9.2f} | {row['peak_rss_mib_restore']:>12.0f} |")
    print("\n### SmartSaver.plan() alone (reads the .index only; default graph of the model)\n")
    print(f"| {'model':<10} | {'case':<7} | {'first call s':>12} | {'second call s':>13} | {'restored':>8} |")
    print(f"|{'-' * 12}|{'-' * 9}|{'-' * 13}:|{'-' * 14}:|{'-' * 9}:|")
    for model in models:
        for case in (FULL, PARTIAL):
            row = summary[(model, case, "plan()")]
            print(f"| {model:<10} | {case:<7} | {row['first']:>12.3f} | {row['again']:>13.3f} | {row['restored']:>8.0f} |")
    if VGG in models:
        plain, ours = summary.get((VGG, FULL, BASELINE)), summary.get((VGG, FULL, "partialsaver SmartSaver.restore"))
        if plain and ours:
            print(f"\nVGG-16 full restore: peak RSS plain Saver {plain['peak_rss_mib_restore']:.0f} MiB, "
                  f"SmartSaver {ours['peak_rss_mib_restore']:.0f} MiB; restore {plain['restore']:.2f} s vs "
                  f"{ours['restore']:.2f} s")


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz worker: runs the public API on one mutated checkpoint after another.

Protocol (JSON lines): the parent writes {"id", "prefix", "scratch"} per mutant; the worker
answers {"id", "op"} before each operation (so a crash can be pinned on it) and
{"id", "results": {op: outcome}} at the end. Outcomes: "ok", "wrong" (succeeded with
values that differ from the original; for rename: a renamed tensor that reads otherwise than
its source), "clear:<PartialSaverError subclass>",
"other:<exception>: <message>", and for restore "changed" (failed, yet a variable moved).
"""

import faulthandler
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from partialsaver import PartialSaverError, SmartSaver, list_variables, load_variable, rename_variables  # noqa: E402

v1 = tf.compat.v1
tf.get_logger().setLevel("ERROR")


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and (a.tolist() == b.tolist() if a.dtype == object else a.tobytes() == b.tobytes())


def outcome(call, check=None):
    try:
        result = call()
    except PartialSaverError as error:
        return f"clear:{type(error).__name__}"
    except Exception as error:  # noqa: BLE001 - recording anything else is the point
        return f"other:{type(error).__name__}: {str(error)[:200]}"
    if check is not None and not check(result):
        return "wrong"
    return "ok"


def build_graph(original):
    variables = {}
    for name, value in original.items():
        variables[name] = v1.get_variable(name, initializer=tf.constant(value))
    return variables


def restore_outcome(prefix, original, sentinel):
    with tf.Graph().as_default():
        variables = build_graph(original)
        assigns = [variables[name].assign(sentinel[name]) for name in original]
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(assigns)
            result = outcome(lambda: SmartSaver().restore(sess, prefix))
            values = sess.run(variables)
    if result == "ok":
        return "ok" if all(same(values[n], original[n]) for n in original) else "wrong"
    if not all(same(values[n], sentinel[n]) for n in original):
        return "changed"
    return result


def plan_outcome(prefix, original):
    with tf.Graph().as_default():
        build_graph(original)
        return outcome(lambda: SmartSaver().plan(prefix))


def main():
    faulthandler.register(signal.SIGUSR1)  # the parent asks for our stacks before killing a hung run
    original = dict(np.load(sys.argv[1], allow_pickle=True))
    sentinel = {name: np.full_like(value, 7) if value.dtype != object else np.full_like(value, b"sentinel")
                for name, value in original.items()}
    for line in sys.stdin:
        job = json.loads(line)
        prefix, scratch, results = job["prefix"], job["scratch"], {}

        def step(op, run):
            print(json.dumps({"id": job["id"], "op": op}), flush=True)
            results[op] = run()

        step("list", lambda: outcome(lambda: list_variables(prefix)))
        for name in original:
            step(f"load:{name}", lambda name=name: outcome(lambda: load_variable(prefix, name),
                                                           lambda value: same(value, original[name])))
        step("plan", lambda: plan_outcome(prefix, original))
        step("restore", lambda: restore_outcome(prefix, original, sentinel))
        dst = os.path.join(scratch, "renamed.ckpt")

        def renamed_correctly(_):
            # A rename keeps the stored bytes: each renamed tensor reads as its source does (the
            # same values, or the same clear error: a rename that only renames reads no tensor).
            def read(path, name):
                try:
                    return "value", load_variable(path, name)
                except PartialSaverError as error:
                    return "error", type(error).__name__

            for name in original:
                (kind, value), (kind_again, value_again) = read(prefix, name), read(dst, "renamed/" + name)
                if kind != kind_again or (kind == "value" and not same(value, value_again)):
                    return False
            return True

        step("rename", lambda: outcome(lambda: rename_variables(prefix, dst, {"/": "renamed/"}),
                                       renamed_correctly))
        print(json.dumps({"id": job["id"], "results": results}), flush=True)


if __name__ == "__main__":
    main()

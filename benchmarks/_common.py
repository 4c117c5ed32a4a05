"""Helpers shared by the benchmarks: child processes with their own peak RSS, medians,
and a description of the machine the numbers came from."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence


def machine() -> Dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = "unknown"
    try:
        with open("/proc/meminfo") as info:
            kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
            memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    try:
        import tensorflow as tf  # noqa: local: only for the version

        tensorflow = tf.__version__
    except ImportError:
        tensorflow = "not installed"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "tensorflow": tensorflow,
        "os": platform.platform(),
    }


def run_child(code: str, env: Optional[Dict[str, str]] = None, timeout: float = 1800) -> Dict[str, float]:
    """Run ``python -c code`` in a fresh process; returns wall seconds, its own peak RSS
    (MiB, from wait4) and whatever JSON dict the child printed on its last stdout line."""
    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=child_env, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    out, err = process.stdout.read(), process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({process.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    result.update(wall=wall, peak_rss_mib=usage.ru_maxrss / 1024)
    return result


def run_command(argv: Sequence[str], quiet: bool = False) -> Dict[str, float]:
    start = time.perf_counter()
    process = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL if quiet else None)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed")
    return {"wall": time.perf_counter() - start, "peak_rss_mib": usage.ru_maxrss / 1024}


def run_rounds(contenders: Dict[str, Callable[[], Dict[str, float]]], repeat: int) -> Dict[str, Dict[str, float]]:
    """Every contender once per round, interleaved, ``repeat`` rounds; the medians of each one's
    process time ("wall_s"), operation time ("op_s", the process when it reports none) and peak RSS."""
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name in contenders}
    for round_number in range(repeat):
        for name, run in contenders.items():
            results[name].append(run())
            print(f"round {round_number + 1}: {name}: {results[name][-1]['wall']:.2f} s", file=sys.stderr)
    return {name: {"wall_s": median([r["wall"] for r in runs]),
                   "op_s": median([r.get("op", r["wall"]) for r in runs]),
                   "peak_rss_mib": median([r["peak_rss_mib"] for r in runs])}
            for name, runs in results.items()}


def median(values: List[float]) -> float:
    return statistics.median(values)


# tf_slim's vgg_16 variables: 138 M parameters, 553 MB; fc6/weights alone is 411 MB.
VGG16 = [("conv1/conv1_1", [3, 3, 3, 64]), ("conv1/conv1_2", [3, 3, 64, 64]),
         ("conv2/conv2_1", [3, 3, 64, 128]), ("conv2/conv2_2", [3, 3, 128, 128]),
         ("conv3/conv3_1", [3, 3, 128, 256]), ("conv3/conv3_2", [3, 3, 256, 256]), ("conv3/conv3_3", [3, 3, 256, 256]),
         ("conv4/conv4_1", [3, 3, 256, 512]), ("conv4/conv4_2", [3, 3, 512, 512]), ("conv4/conv4_3", [3, 3, 512, 512]),
         ("conv5/conv5_1", [3, 3, 512, 512]), ("conv5/conv5_2", [3, 3, 512, 512]), ("conv5/conv5_3", [3, 3, 512, 512]),
         ("fc6", [7, 7, 512, 4096]), ("fc7", [1, 1, 4096, 4096]), ("fc8", [1, 1, 4096, 1000])]
LARGEST_MB = 7 * 7 * 512 * 4096 * 4 / 2**20


_BUILD_VGG = """
import json, sys
import numpy as np
from partialsaver.format import BundleWriter
layers, prefix, slots = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
shapes = {}
for name, shape in layers:
    shapes[f"vgg_16/{name}/weights"] = shape
    shapes[f"vgg_16/{name}/biases"] = shape[-1:]
with BundleWriter(prefix) as writer:
    for key in sorted(list(shapes) + ([k + "/Momentum" for k in shapes] if slots else [])):
        writer.add(key, rng.standard_normal(shapes[key.replace("/Momentum", "")], dtype=np.float32))
    writer.add("global_step", np.array(1000, np.int64))
print(json.dumps({}))
"""


def vgg_checkpoint(prefix: str, momentum_slots: bool = False) -> str:
    """VGG-16's variables (random values) and global_step, with a Momentum slot of the same
    shape per variable when asked (twice the bytes), written with partialsaver's writer
    (tests/format shows TensorFlow's Saver writes the same bytes). Built in a child process,
    so that this one stays small: a child forked from a big parent starts with its pages
    counted in its peak RSS."""
    if not os.path.exists(prefix + ".index"):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        subprocess.run([sys.executable, "-c", _BUILD_VGG, json.dumps([VGG16, prefix, momentum_slots])], check=True)
    return prefix


def checkpoint_files(prefix: str) -> List[str]:
    directory, name = os.path.split(prefix)
    return sorted(os.path.join(directory, entry) for entry in os.listdir(directory) if entry.startswith(name + "."))


def megabytes(paths: Sequence[str]) -> float:
    return sum(os.path.getsize(path) for path in paths) / 2**20


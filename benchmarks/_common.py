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
from typing import Dict, List, Optional, Sequence


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
    import tensorflow as tf  # noqa: local: only for the version

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
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


def run_command(argv: Sequence[str]) -> Dict[str, float]:
    start = time.perf_counter()
    process = subprocess.Popen(list(argv))
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed")
    return {"wall": time.perf_counter() - start, "peak_rss_mib": usage.ru_maxrss / 1024}


def median(values: List[float]) -> float:
    return statistics.median(values)

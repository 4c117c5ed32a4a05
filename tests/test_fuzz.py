"""Corrupted checkpoints: seeded mutants of a small checkpoint's .index and .data files.

Each mutant flips, truncates or extends bytes of one file; a worker process runs
list_variables, load_variable, plan, restore and rename_variables on it. A crash of the
worker (e.g. a C++ abort inside TensorFlow) or a hang is caught by this process and
counted, so "no crash" is proven rather than assumed. Every call must succeed with the
original values or raise a PartialSaverError subclass; a failed restore must leave every
variable as it was.
"""

import collections
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.conftest import save_values

MUTANTS = int(os.environ.get("PARTIALSAVER_FUZZ_MUTANTS", "300"))
SEED = int(os.environ.get("PARTIALSAVER_FUZZ_SEED", "20261125"))
PER_MUTANT_TIMEOUT = 60.0
WORKER = Path(__file__).resolve().parent / "helpers" / "fuzz_worker.py"
ORIGINAL = {
    "w": np.arange(64 * 16, dtype=np.float32).reshape(64, 16) / 7,
    "b": np.linspace(-1, 1, 16, dtype=np.float32),
    "step": np.array(1234, np.int64),
    "names": np.array([b"alpha", b"beta", b"\x00\xff"], dtype=object),
    "h": np.arange(8, dtype=np.float16),
}
KINDS = ["flip", "truncate", "extend"]


def mutate(directory: Path, rng: random.Random) -> str:
    kind = KINDS[rng.randrange(len(KINDS))]
    target = directory / rng.choice(["model.ckpt.index", "model.ckpt.data-00000-of-00001"])
    data = bytearray(target.read_bytes())
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    else:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    target.write_bytes(bytes(data))
    return f"{kind} {target.name.split('.')[-1].split('-')[0]}"


class Worker:
    def __init__(self, values_path: str, log_path: Path):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        self.log_path = log_path
        self._pending = b""
        self.process = subprocess.Popen([sys.executable, str(WORKER), values_path], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True, env=env)

    def run(self, job: dict) -> dict:
        """The worker's results, or {last op: "crash" / "timeout"} if it died or hung."""
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        current, deadline = "start", time.monotonic() + PER_MUTANT_TIMEOUT
        while True:
            line = self._readline(deadline)
            if line is None:
                self.process.send_signal(signal.SIGUSR1)  # faulthandler dumps the stacks to the log
                time.sleep(2)
                self.process.kill()
                stacks = self.log_path.read_text()[-3000:]
                return {current: f"timeout; worker stacks:\n{stacks}"}
            if not line:
                self.process.wait()
                return {current: f"crash (exit {self.process.returncode})"}
            message = json.loads(line)
            if "results" in message:
                return message["results"]
            current = message["op"]

    def _readline(self, deadline: float):
        """One line from the worker (b"" at EOF, None at the deadline). Reads the pipe's
        file descriptor directly: a buffered reader could hold a line select() cannot see."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def test_mutated_checkpoints_fail_clearly_or_restore_correctly(tmp_path):
    pristine = tmp_path / "pristine"
    save_values(pristine, ORIGINAL)
    values_path = str(tmp_path / "original.npz")
    np.savez(values_path, **ORIGINAL)
    rng = random.Random(SEED)
    logs = iter(tmp_path / f"worker{n}.log" for n in range(10**6))
    worker = Worker(values_path, next(logs))
    counts: collections.Counter = collections.Counter()
    bad = []
    started = time.monotonic()
    try:
        for index in range(MUTANTS):
            mutant = tmp_path / f"mutant{index}"
            shutil.copytree(pristine, mutant)
            kind = mutate(mutant, rng)
            (mutant / "scratch").mkdir()
            results = worker.run({"id": index, "prefix": str(mutant / "model.ckpt"), "scratch": str(mutant / "scratch")})
            if any(value.startswith(("crash", "timeout")) for value in results.values()):
                worker = Worker(values_path, next(logs))  # the next mutant gets a fresh worker
            clear = all(value == "ok" or value.startswith("clear:") for value in results.values())
            silently_accepted = all(value == "ok" for value in results.values())
            counts["mutants"] += 1
            counts["all calls ok (mutation harmless)" if silently_accepted else "clear errors" if clear else "BAD"] += 1
            if not clear:
                bad.append((index, kind, {op: value for op, value in results.items() if value != "ok"
                                          and not value.startswith("clear:")}))
            shutil.rmtree(mutant)
    finally:
        worker.close()
    elapsed = time.monotonic() - started
    print(f"\nfuzz: seed {SEED}, {dict(counts)} in {elapsed:.0f} s")
    assert not bad, f"{len(bad)} mutants were not handled cleanly: {bad[:5]}"
    assert counts["mutants"] == MUTANTS

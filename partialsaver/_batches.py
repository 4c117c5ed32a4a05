"""Restoring in batches under a memory budget, still all or nothing.

A restore into variables that already hold values needs the old values and the new ones at
once: reading every tensor before assigning any (what makes a one-step restore all or
nothing) doubles the model in memory. Past ``memory_budget`` bytes of stored tensors, a
restore therefore goes in batches of at most that many bytes (a larger tensor alone), read
and assigned one after the other, so that it peaks at the model plus the largest batch.

All or nothing then rests on a check made before the first assignment: every tensor to
restore is read once and compared with its crc32c (in chunks, nothing held), so that a
damaged or truncated checkpoint changes no variable. Should a batch still fail after that
(the files changed while they were read), the error says exactly which variables were
restored and which were not: never a silent partial restore.
"""

from __future__ import annotations

import math
import re
from typing import List, Optional, Sequence, Tuple

from partialsaver._reading import CheckpointReader
from partialsaver.errors import CorruptCheckpointError, PartialSaverError, format_items
from partialsaver.format.dtypes import dtype_enum, lookup
from partialsaver.names import GraphVariable

Pairs = Sequence[Tuple[str, GraphVariable]]

DEFAULT_RESTORE_BUDGET = 256 * 2**20

__all__ = ["DEFAULT_RESTORE_BUDGET", "partial_restore_error", "split_into_batches", "verify_before_restoring"]


# The index does not need opening to size a batch: the variable's shape and dtype say it
# (a string element is counted as this many bytes).
_STRING_ELEMENT_BYTES = 64


def _bytes_of(variable: GraphVariable) -> int:
    itemsize = lookup(dtype_enum(variable.dtype)).itemsize or _STRING_ELEMENT_BYTES
    return math.prod(dim or 0 for dim in variable.shape or ()) * itemsize


_JOB = re.compile(r"/job:([^/]+)")


def _on_remote_devices(pairs: Pairs) -> bool:
    """Whether a variable lives on a task of a cluster (eager and local ones are "localhost")."""
    jobs = (_JOB.search(getattr(part, "device", "") or "") for _, variable in pairs for part in variable.parts)
    return any(job is not None and job.group(1) != "localhost" for job in jobs)


def split_into_batches(pairs: Pairs, budget: Optional[int]) -> List[List[Tuple[str, GraphVariable]]]:
    """The pairs in consecutive batches of at most ``budget`` bytes (a larger tensor
    alone); one batch when everything fits, when there is no budget, or when variables live on
    parameter servers (whose files the tasks read themselves: they restore in one step)."""
    pairs = list(pairs)
    if budget is None or len(pairs) < 2 or _on_remote_devices(pairs):
        return [pairs]
    sizes = [_bytes_of(variable) for _, variable in pairs]
    if sum(sizes) <= budget:
        return [pairs]
    batches: List[List[Tuple[str, GraphVariable]]] = []
    current: List[Tuple[str, GraphVariable]] = []
    used = 0
    for pair, size in zip(pairs, sizes):
        if current and used + size > budget:
            batches.append(current)
            current, used = [], 0
        current.append(pair)
        used += size
    batches.append(current)
    return batches


def verify_before_restoring(prefix: str, pairs: Pairs) -> None:
    """Every tensor to restore read once and checked against its crc32c, nothing held.

    Raises:
        CorruptCheckpointError: a damaged or truncated tensor; no variable was changed.
        CheckpointNotFoundError: a data file is missing; no variable was changed.
    """
    try:
        with CheckpointReader(prefix) as reader:
            for key in dict.fromkeys(key for key, _ in pairs):
                reader.bundle.verify(key)
    except PartialSaverError as error:
        raise type(error)(f"{error} No variable was changed.") from error


def partial_restore_error(cause: str, prefix: str, batches: Sequence[Pairs], failed: int) -> CorruptCheckpointError:
    """The error of a batch that failed after the checksums passed: what was and was not restored."""
    done = [variable.name for batch in batches[:failed] for _, variable in batch]
    left = [variable.name for batch in batches[failed:] for _, variable in batch]
    return CorruptCheckpointError(
        f"restoring from {prefix!r} failed in batch {failed + 1} of {len(batches)} ({cause}), although every "
        f"tensor had passed its checksum before the first assignment (did the checkpoint change while it was "
        f"read?): {len(done)} variable(s) were restored: {format_items(done)}; {len(left)} were not: "
        f"{format_items(left)}; restore again from an intact checkpoint"
    )

"""Checkpoints for the tests that run without TensorFlow: written by partialsaver's own writer
(tests/format proves TensorFlow reads what it writes) or committed fixtures TensorFlow wrote."""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional

import numpy as np

from partialsaver._files import filesystem_for
from partialsaver.format import BundleWriter

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "format", "fixtures")


def write_bundle(prefix: str, values: Mapping[str, np.ndarray], partitions: Optional[Mapping[str, int]] = None,
                 state_file: bool = True) -> str:
    """A checkpoint at ``prefix`` holding ``values``; a name in ``partitions`` is stored as that many
    row slices of a partitioned variable, as tf.compat.v1's fixed_size_partitioner saves it."""
    from partialsaver._resolve import write_state

    fs = filesystem_for(prefix)
    fs.makedirs(os.path.dirname(prefix))
    with BundleWriter(prefix, fs) as writer:
        for name, value in sorted(values.items()):
            value = np.asarray(value)
            parts = (partitions or {}).get(name)
            if not parts:
                writer.add(name, value)
                continue
            bounds = np.linspace(0, value.shape[0], parts + 1).astype(int)
            for start, stop in zip(bounds[:-1], bounds[1:]):
                extents = [(int(start), int(stop - start))] + [(0, dim) for dim in value.shape[1:]]
                writer.add_slice(name, value.shape, extents, value[start:stop])
    if state_file:
        write_state(fs, os.path.dirname(prefix), [os.path.basename(prefix)])
    return prefix


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name, "bundle")


def fixture_values(name: str) -> Dict[str, dict]:
    with open(os.path.join(FIXTURES, name, "expected.json")) as file:
        return json.load(file)["tensors"]

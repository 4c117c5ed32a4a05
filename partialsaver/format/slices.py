"""Geometry of the stored slices of a partitioned variable."""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple, Union

from partialsaver.errors import UsageError
from partialsaver.format.proto import Extent, SliceSpec

__all__ = ["Box", "is_full_slice", "slice_box", "tiles", "to_spec"]

# (start, stop) per dimension.
Box = Tuple[Tuple[int, int], ...]


def to_spec(extents: Iterable[Union[Extent, Tuple[int, Optional[int]]]]) -> SliceSpec:
    """Return extents given as :class:`Extent` or ``(start, length)`` pairs as a SliceSpec.

    Raises:
        UsageError: Something that is not a (start, length-or-None) pair of ints.
    """
    spec = []
    for extent in extents:
        try:
            start, length = extent
        except (TypeError, ValueError):
            raise UsageError(f"A slice extent is a (start, length) pair, not {extent!r}.") from None
        if not isinstance(start, int) or not (length is None or isinstance(length, int)):
            raise UsageError(f"A slice extent is a (start, length) pair of ints (length None: whole), not {extent!r}.")
        spec.append(Extent(start, length))
    return tuple(spec)


def slice_box(spec: SliceSpec, shape: Sequence[int]) -> Optional[Box]:
    """Return the (start, stop) range per dimension of a slice, or None if it does not fit ``shape``."""
    if len(spec) != len(shape) or not spec:
        return None
    box = []
    for extent, dim in zip(spec, shape):
        if extent.length is None:
            if extent.start != 0:
                return None
            box.append((0, dim))
        elif extent.start < 0 or extent.length < 0 or extent.start + extent.length > dim:
            return None
        else:
            box.append((extent.start, extent.start + extent.length))
    return tuple(box)


def is_full_slice(box: Box, shape: Sequence[int]) -> bool:
    """Whether a slice covers the whole tensor (TensorFlow then stores it as a plain entry)."""
    return all(start == 0 and stop == dim for (start, stop), dim in zip(box, shape))


def tiles(boxes: List[Box], shape: Sequence[int]) -> bool:
    """Whether the boxes cover ``shape`` exactly once: pairwise disjoint, and volumes add up."""
    total = 1
    for dim in shape:
        total *= dim
    volumes = 0
    for box in boxes:
        volume = 1
        for start, stop in box:
            volume *= stop - start
        volumes += volume
    if volumes != total:
        return False
    for index, first in enumerate(boxes):
        for second in boxes[index + 1 :]:
            if all(max(a[0], b[0]) < min(a[1], b[1]) for a, b in zip(first, second)):
                return False
    return True

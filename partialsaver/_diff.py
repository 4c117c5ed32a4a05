"""diff_checkpoints: keys only on one side, shape / dtype changes, exact value changes."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from partialsaver._reading import CheckpointMetadata, open_reader, read_metadata

__all__ = ["Change", "CheckpointDiff", "ValueChange", "diff_checkpoints"]

_CHUNK = 1 << 22  # elements compared at a time, so float64 scratch stays small


class Change(NamedTuple):
    """A key whose shape or dtype differs: ``a`` and ``b`` are the two sides."""

    key: str
    a: Any
    b: Any


class ValueChange(NamedTuple):
    """A key whose values differ. ``a`` and ``b`` are the first differing elements,
    ``index`` where they are, ``changed`` how many elements differ, and
    ``max_abs_diff`` the largest absolute difference (None for non-numbers)."""

    key: str
    a: Any
    b: Any
    index: Tuple[int, ...]  # type: ignore[assignment]  # the documented field name; it shadows tuple.index
    changed: int
    max_abs_diff: Optional[float]


@dataclasses.dataclass(frozen=True)
class CheckpointDiff:
    """The difference between checkpoints ``a`` and ``b`` (keys sorted)."""

    a: str
    b: str
    only_in_a: Tuple[str, ...]
    only_in_b: Tuple[str, ...]
    shape_changes: Tuple[Change, ...]
    dtype_changes: Tuple[Change, ...]
    value_changes: Tuple[ValueChange, ...]
    compared_values: bool = True

    @property
    def same(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.shape_changes or self.dtype_changes or self.value_changes)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable form (shapes as lists, values as Python scalars)."""
        return {
            "a": self.a,
            "b": self.b,
            "same": self.same,
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
            "shape_changes": [{"key": c.key, "a": list(c.a), "b": list(c.b)} for c in self.shape_changes],
            "dtype_changes": [{"key": c.key, "a": c.a, "b": c.b} for c in self.dtype_changes],
            "value_changes": [
                {
                    "key": c.key,
                    "a": _scalar(c.a),
                    "b": _scalar(c.b),
                    "index": list(c.index),
                    "changed": c.changed,
                    "max_abs_diff": _scalar(c.max_abs_diff),
                }
                for c in self.value_changes
            ],
            "compared_values": self.compared_values,
        }

    def __str__(self) -> str:
        if self.same:
            checked = "keys, shapes, dtypes and values" if self.compared_values else "keys, shapes and dtypes"
            return f"same: {self.a} and {self.b} agree in {checked}\n"
        lines = [f"a: {self.a}", f"b: {self.b}"]
        for title, keys in (("only in a", self.only_in_a), ("only in b", self.only_in_b)):
            if keys:
                lines.append(f"{title} ({len(keys)})")
                lines += [f"  {key}" for key in keys[:50]] + (
                    [f"  ... and {len(keys) - 50} more"] if len(keys) > 50 else []
                )
        for title, changes in (("shape changes", self.shape_changes), ("dtype changes", self.dtype_changes)):
            if changes:
                lines.append(f"{title} ({len(changes)})")
                lines += [f"  {c.key}: a {c.a}  vs  b {c.b}" for c in changes[:50]]
        if self.value_changes:
            lines.append(f"value changes ({len(self.value_changes)})")
            for c in self.value_changes[:50]:
                diff = f", max |a-b| = {c.max_abs_diff:.6g}" if c.max_abs_diff is not None else ""
                lines.append(
                    f"  {c.key}: {c.changed} element(s) differ{diff}; first at {list(c.index)}: "
                    f"a {c.a!r}  vs  b {c.b!r}"
                )
        return "\n".join(lines) + "\n"


def _scalar(value: Any) -> Any:
    """A JSON-safe Python value: text for bytes, [re, im] for complex, None for NaN / inf
    (strict JSON has neither), plain numbers otherwise."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, complex):
        return [_scalar(value.real), _scalar(value.imag)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, (bool, int, float, str, type(None))):  # quantized and other numpy records
        return str(value)
    return value


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over elements that are not NaN on either side, in bounded chunks."""
    wide = np.complex128 if a.dtype.kind == "c" else np.float64
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    largest = float("nan")
    for start in range(0, flat_a.size, _CHUNK):
        delta = np.abs(flat_a[start : start + _CHUNK].astype(wide) - flat_b[start : start + _CHUNK].astype(wide))
        delta = delta[~np.isnan(delta)]
        if delta.size:
            top = float(delta.max())
            largest = top if math.isnan(largest) else max(largest, top)
    return largest


def _compare(key: str, a: np.ndarray, b: np.ndarray) -> Optional[ValueChange]:
    if a.dtype == object or a.dtype.kind in "SUb":
        differ = a != b
    else:
        # Bitwise, so NaN == NaN and -0.0 != 0.0: "exactly" means the stored bits.
        width = a.dtype.itemsize
        as_int = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(width)
        if as_int is not None:
            differ = np.ascontiguousarray(a).view(as_int) != np.ascontiguousarray(b).view(as_int)
        else:  # complex128 and other wide types: compare their bytes
            as_bytes = lambda x: np.ascontiguousarray(x).view(np.uint8).reshape((*x.shape, width))  # noqa: E731
            differ = (as_bytes(a) != as_bytes(b)).any(axis=-1)
    changed = int(np.count_nonzero(differ))
    if not changed:
        return None
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(differ)), a.shape)) if a.shape else ()
    numeric = a.dtype != object and (a.dtype.kind in "fiuc" or a.dtype.name == "bfloat16")
    max_abs = _max_abs_diff(a, b) if numeric else None
    return ValueChange(key, a[first] if a.shape else a[()], b[first] if b.shape else b[()], first, changed, max_abs)


def _stored_form(metadata: CheckpointMetadata, keys: set) -> CheckpointMetadata:
    rename = {key: metadata.raw(key) for key in keys}
    shapes = {rename.get(key, key): shape for key, shape in metadata.shapes.items()}
    dtypes = {rename.get(key, key): dtype for key, dtype in metadata.dtypes.items()}
    raw_keys = {key: raw for key, raw in metadata.raw_keys.items() if key not in keys}
    return CheckpointMetadata(metadata.prefix, shapes, dtypes, raw_keys)


def diff_checkpoints(a: Any, b: Any, *, values: bool = True) -> CheckpointDiff:
    """Compare two checkpoints key by key (one tensor pair in memory at a time).

    Args:
        a: a checkpoint directory, prefix or file.
        b: the other one.
        values: also compare the values of keys whose shape and dtype agree (exact, bitwise).

    Returns:
        CheckpointDiff with ``only_in_a``, ``only_in_b``, ``shape_changes``,
        ``dtype_changes``, ``value_changes`` and ``same``.

    Example:
        >>> print(diff_checkpoints("run1", "run2"))               # doctest: +SKIP
    """
    meta_a, meta_b = read_metadata(a), read_metadata(b)
    # Keys are compared readable, except where the two store one differently (an
    # object-based "w/.ATTRIBUTES/VARIABLE_VALUE" vs a name-based "w"): a Saver of one
    # cannot read the other, so those count as keys on one side only, stored form shown.
    stored_apart = {key for key in set(meta_a.shapes) & set(meta_b.shapes) if meta_a.raw(key) != meta_b.raw(key)}
    if stored_apart:
        meta_a = _stored_form(meta_a, stored_apart)
        meta_b = _stored_form(meta_b, stored_apart)
    keys_a, keys_b = set(meta_a.shapes), set(meta_b.shapes)
    common = sorted(keys_a & keys_b)
    shape_changes = [
        Change(k, meta_a.shapes[k], meta_b.shapes[k]) for k in common if meta_a.shapes[k] != meta_b.shapes[k]
    ]
    dtype_changes = [
        Change(k, meta_a.dtypes[k], meta_b.dtypes[k]) for k in common if meta_a.dtypes[k] != meta_b.dtypes[k]
    ]
    value_changes: List[ValueChange] = []
    if values:
        changed_meta = {c.key for c in shape_changes + dtype_changes}
        reader_a, reader_b = open_reader(meta_a.prefix), open_reader(meta_b.prefix)
        for key in common:
            if key in changed_meta:
                continue
            change = _compare(key, reader_a.tensor(meta_a.raw(key)), reader_b.tensor(meta_b.raw(key)))
            if change is not None:
                value_changes.append(change)
    return CheckpointDiff(
        meta_a.prefix,
        meta_b.prefix,
        tuple(sorted(keys_a - keys_b)),
        tuple(sorted(keys_b - keys_a)),
        tuple(shape_changes),
        tuple(dtype_changes),
        tuple(value_changes),
        values,
    )

"""RestorePlan: what a restore will do (or did), and the records inside it.

A plan is computed by ``_planner.build_plan`` from checkpoint metadata alone; this module
holds what it returns, immutable, with its report in three forms (text, dict, HTML).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from partialsaver import _report
from partialsaver._suggest import Meta
from partialsaver.diagnostics import Diagnostic

# A shape with None for unknown dimensions, None for an unknown rank.
Shape = Optional[Tuple[Optional[int], ...]]

__all__ = ["Mismatch", "Restore", "RestorePlan", "Shape", "frozen"]


class Restore(NamedTuple):
    """One checkpoint key restored into one graph variable."""

    checkpoint_key: str
    graph_name: str
    shape: Shape
    dtype: str


class Mismatch(NamedTuple):
    """A key and a variable that pair by name but differ in shape or dtype.

    ``checkpoint`` and ``graph`` are the two shapes (tuples) or the two dtype names.
    """

    checkpoint_key: str
    graph_name: str
    checkpoint: Any
    graph: Any


def frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return types.MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class RestorePlan:
    """What ``SmartSaver.restore`` will do (or did) for one checkpoint. Immutable and hashable.

    Attributes:
        checkpoint: the resolved checkpoint prefix.
        restored: Restore(checkpoint_key, graph_name, shape, dtype) for each pair restored
            (``shape`` is the stored one; see ``reshaped``).
        missing: graph names of selected variables no checkpoint key feeds.
        unused: checkpoint keys whose (mapped) name is no variable of the graph.
        not_selected: checkpoint keys whose variable exists but was left out on purpose
            (include / exclude / expect_new); never an error.
        superseded: checkpoint keys that kept their own name but lost their variable to a
            key a rule mapped onto it (EMA shadows restored in place of the raw values);
            never an error.
        shape_mismatches, dtype_mismatches: Mismatch records, both sides named; under
            ``skip_mismatched`` they are skipped as asked and initialized instead.
        reshaped: Mismatch records of keys restored with ``reshape=True`` into a variable
            of another shape but the same element count (they are in ``restored`` too).
        initialized: selected variables restore will not set (missing, mismatched,
            expected new): restore initializes them unless already initialized.
        unselected: graph variables outside the selection; restore initializes them
            too when they are not initialized yet, and never overwrites them.
        expected_new: variables declared new with ``expect_new``.
        diagnostics: filter specs and map rules that matched nothing, failed guardrails,
            other warnings.
        suggestions: {missing graph name: (checkpoint keys, best first)}.
        proposed_name_map: scope (or regex) entries that would fix many missing variables
            at once, checked by applying them to the checkpoint's keys, or {}.
        skip_mismatched: whether shape / dtype mismatches are skipped (as asked).
    """

    checkpoint: str
    restored: Tuple[Restore, ...]
    missing: Tuple[str, ...]
    unused: Tuple[str, ...]
    not_selected: Tuple[str, ...]
    shape_mismatches: Tuple[Mismatch, ...]
    dtype_mismatches: Tuple[Mismatch, ...]
    initialized: Tuple[str, ...]
    diagnostics: Tuple[Diagnostic, ...]
    suggestions: Mapping[str, Tuple[str, ...]]
    proposed_name_map: Mapping[Any, str]
    unselected: Tuple[str, ...] = ()
    expected_new: Tuple[str, ...] = ()
    superseded: Tuple[str, ...] = ()
    reshaped: Tuple[Mismatch, ...] = ()
    skip_mismatched: bool = False
    proposed_fixes: Mapping[Any, int] = dataclasses.field(default_factory=dict, repr=False)
    unused_targets: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict, repr=False)
    graph_meta: Mapping[str, Meta] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    checkpoint_meta: Mapping[str, Meta] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __hash__(self) -> int:
        # The mapping fields are read-only views (unhashable); the tuples say it all.
        return hash(
            (
                self.checkpoint,
                self.restored,
                self.missing,
                self.unused,
                self.not_selected,
                self.superseded,
                self.shape_mismatches,
                self.dtype_mismatches,
                self.reshaped,
                self.initialized,
                self.diagnostics,
                self.skip_mismatched,
            )
        )

    @property
    def problems(self) -> Tuple[str, ...]:
        """Why the plan is not ok, one short phrase each (empty when it is ok); the
        sections of the report hold the details."""
        found = []
        if not self.restored:
            found.append("nothing restored")
        if self.missing:
            found.append(f"{len(self.missing)} missing")
        if self.mismatched and not self.skip_mismatched:
            found.append(f"{len(self.mismatched)} mismatched")
        unmatched = [d for d in self.diagnostics if d.kind.startswith("unmatched_")]
        if unmatched:
            found.append(
                f"{len(unmatched)} spec{'s' if len(unmatched) > 1 else ''}/rule"
                f"{'s' if len(unmatched) > 1 else ''} matched nothing"
            )
        found += [f"require {d.subject} failed" for d in self.diagnostics if d.kind == "require_failed"]
        return tuple(found)

    @property
    def ok(self) -> bool:
        """True when at least one variable is restored, nothing selected is missing (expected
        new aside), every mismatch is handled (skipped as asked or reshaped), every filter
        spec and map rule matched something and every guardrail holds. Unused keys alone
        do not make a plan not ok (``strict=True`` fails on them)."""
        return not self.problems

    @property
    def mismatched(self) -> Tuple[str, ...]:
        """Graph names of variables with a shape or dtype mismatch."""
        return tuple(sorted({m.graph_name for m in self.shape_mismatches + self.dtype_mismatches}))

    def __str__(self) -> str:
        return _report.render_text(self)

    def __repr__(self) -> str:
        return f"<RestorePlan {_report.summary_line(self)}>"

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable dict (shapes as lists); the schema is in the docs' guide, The report."""
        return _report.to_dict(self)

    def _repr_html_(self) -> str:
        return _report.render_html(self)

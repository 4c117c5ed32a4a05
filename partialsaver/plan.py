"""RestorePlan: what a restore will do, computed from checkpoint metadata (DESIGN section 5).

``build_plan`` pairs checkpoint keys with graph variables through the name map, checks
shapes and dtypes, and collects everything that does not line up, all at once. It reads
no tensor bytes and touches no session.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections import defaultdict
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from partialsaver import _report
from partialsaver._suggest import Meta, propose_name_map, suggest
from partialsaver._reading import CheckpointMetadata
from partialsaver.errors import NameMapError, UsageError, format_items
from partialsaver.mapping import NameMap, Rule, scope_hint, unmatched_rules
from partialsaver.names import GraphVariable, Shape, graph_of
from partialsaver.selection import Diagnostic, Selection, Spec, describe_spec, matches

__all__ = ["Mismatch", "PlanOptions", "Restore", "RestorePlan", "build_plan"]


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


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
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
            ``skip_mismatched`` they are skipped as asked and initialised instead.
        reshaped: Mismatch records of keys restored with ``reshape=True`` into a variable
            of another shape but the same element count (they are in ``restored`` too).
        initialized: selected variables restore will not set (missing, mismatched,
            expected new): restore initialises them unless already initialised.
        unselected: graph variables outside the selection; restore initialises them
            too when they are not initialised yet, and never overwrites them.
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
        return hash((self.checkpoint, self.restored, self.missing, self.unused, self.not_selected,
                     self.superseded, self.shape_mismatches, self.dtype_mismatches, self.reshaped,
                     self.initialized, self.diagnostics, self.skip_mismatched))

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
            found.append(f"{len(unmatched)} spec{'s' if len(unmatched) > 1 else ''}/rule"
                         f"{'s' if len(unmatched) > 1 else ''} matched nothing")
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
        """A JSON-serialisable dict (shapes as lists); see the README for the schema."""
        return _report.to_dict(self)

    def _repr_html_(self) -> str:
        return _report.render_html(self)


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _compatible(graph_shape: Shape, checkpoint_shape: Tuple[int, ...]) -> bool:
    if graph_shape is None:
        return True
    return len(graph_shape) == len(checkpoint_shape) and all(
        dim is None or dim == other for dim, other in zip(graph_shape, checkpoint_shape)
    )


def _reshapable(graph_variable: GraphVariable, checkpoint_shape: Tuple[int, ...]) -> bool:
    """What tf.compat.v1.train.Saver(reshape=True) restores: the same element count into a
    fully defined, unpartitioned variable."""
    shape = graph_variable.shape
    if graph_variable.partitioned or shape is None or None in shape:
        return False
    return math.prod(shape) == math.prod(checkpoint_shape)


def _check_rule_targets(name_map: NameMap, variables: Mapping[str, GraphVariable], graph: Any) -> None:
    unknown = name_map.unknown_exact_targets(list(variables))
    if unknown:
        hints = "".join(sorted({scope_hint(source, target, list(variables)) for source, target in unknown}))
        listed = [f"{source!r} -> {target!r}" for source, target in unknown]
        raise NameMapError(
            f"name_map names {len(unknown)} graph variable(s) that do not exist: {format_items(listed)}{hints}; "
            "fix the target names (see the graph's variables) or drop those entries"
        )
    if graph is None:
        return
    foreign = [rule.describe() for rule, obj in name_map.variable_values if graph_of(obj) not in (None, graph)]
    if foreign:
        raise UsageError(
            f"name_map holds variables from another graph: {format_items(foreign)}; "
            "pass variables of the graph being restored (or their names)"
        )


class _Pairing(NamedTuple):
    winners: Dict[str, str]  # graph name -> the key that feeds it
    targets_of: Dict[str, Tuple[str, ...]]  # key -> the graph names it maps to
    rule_of: Dict[str, Rule]  # key -> the rule applied (keys no rule touched are absent)


def _pair_keys(keys: Sequence[str], name_map: NameMap, variables: Mapping[str, GraphVariable]) -> _Pairing:
    """Which key feeds each graph variable. A key a rule mapped beats one that kept its
    name (which is then superseded); two keys mapped by rules onto one variable collide."""
    claims: Dict[str, List[Tuple[str, Optional[Rule]]]] = defaultdict(list)
    targets_of: Dict[str, Tuple[str, ...]] = {}
    rule_of: Dict[str, Rule] = {}
    for key in keys:
        targets, rule = name_map.apply(key)
        targets_of[key] = targets
        if rule is not None:
            rule_of[key] = rule
        for target in targets:
            if target in variables:
                claims[target].append((key, rule))
    winners: Dict[str, str] = {}
    collisions: List[str] = []
    for graph_name, claimants in claims.items():
        by_rule = [(key, rule) for key, rule in claimants if rule is not None]
        if len(by_rule) > 1:
            sources = " and ".join(f"{key!r} ({rule.describe()})" for key, rule in sorted(by_rule, key=lambda c: c[0]))  # type: ignore[union-attr]
            collisions.append(f"{graph_name!r} <- {sources}")
            continue
        winners[graph_name] = by_rule[0][0] if by_rule else claimants[0][0]
    if collisions:
        raise NameMapError(
            f"name_map maps several checkpoint keys onto one graph variable in {len(collisions)} case(s): "
            + "; ".join(sorted(collisions)[:10])
            + (f" ... and {len(collisions) - 10} more" if len(collisions) > 10 else "")
            + "; make the rules more specific so each variable has one source"
        )
    return _Pairing(winners, targets_of, rule_of)


def _require_diagnostics(
    require: Sequence[Spec],
    min_fraction: float,
    variables: Mapping[str, GraphVariable],
    restored_names: set,
) -> List[Diagnostic]:
    diagnostics = []
    for spec in require:
        covered = [name for name, gv in variables.items() if matches(spec, name, gv.variable)]
        hit = [name for name in covered if name in restored_names]
        fraction = len(hit) / len(covered) if covered else 0.0
        if not hit or fraction < min_fraction:
            diagnostics.append(
                Diagnostic(
                    "require_failed",
                    describe_spec(spec),
                    f"require {describe_spec(spec)}: {len(hit)} of {len(covered)} variables would be restored"
                    + (f" (less than min_restored_fraction={min_fraction:g})" if hit else "")
                    + "; fix name_map / include so the required variables are found in the checkpoint",
                )
            )
    return diagnostics


def _rule_diagnostics(name_map: NameMap, pairing: _Pairing, unused: Sequence[str], keys: Sequence[str]) -> List[Diagnostic]:
    """Rules that matched no key (likely a typo in the source), and rules that sent every
    key they matched to names that are no variable (likely a typo in the target)."""
    diagnostics = unmatched_rules(name_map, {rule.index for rule in pairing.rule_of.values()}, keys)
    dead_rules: Dict[str, int] = defaultdict(int)
    for key in unused:
        if key in pairing.rule_of:
            dead_rules[pairing.rule_of[key].describe()] += 1
    unused_keys = set(unused)
    live_rules = {rule.describe() for key, rule in pairing.rule_of.items() if key not in unused_keys}
    diagnostics += [
        Diagnostic("rule_targets_missing", rule, f"name_map {rule} sent {_count(count, 'key')} to names that are "
                   "no variable of the graph; check its target")
        for rule, count in sorted(dead_rules.items())
        if rule not in live_rules
    ]
    return diagnostics


class _Sorted(NamedTuple):
    """Every checkpoint key sorted into what the restore does with it."""

    pairs: List[Tuple[str, GraphVariable]]
    restored: List[Restore]
    reshaped: List[Mismatch]
    shape_mismatches: List[Mismatch]
    dtype_mismatches: List[Mismatch]
    unused: List[str]
    not_selected: List[str]
    superseded: List[str]
    diagnostics: List[Diagnostic]


def _sort_keys(
    metadata: CheckpointMetadata,
    keys: Sequence[str],
    variables: Mapping[str, GraphVariable],
    selection: Selection,
    pairing: _Pairing,
    reshape: bool,
) -> _Sorted:
    selected, expected_new = set(selection.selected), set(selection.expected_new)
    result = _Sorted([], [], [], [], [], [], [], [], [])
    for key in keys:
        targets = pairing.targets_of[key]
        won = [target for target in targets if pairing.winners.get(target) == key]
        chosen = [target for target in won if target in selected]
        if not won:
            lost = any(target in pairing.winners for target in targets)
            (result.superseded if lost else result.unused).append(key)
        elif not chosen:
            result.not_selected.append(key)
        result.diagnostics.extend(
            Diagnostic("expected_new_found", target, f"expect_new variable {target!r} IS in the checkpoint as "
                       f"{key!r}; drop it from expect_new to restore it")
            for target in won
            if target in expected_new
        )
        key_shape, key_dtype = metadata.shapes[key], metadata.dtypes[key]
        for target in chosen:
            graph_variable = variables[target]
            fits = _compatible(graph_variable.shape, key_shape)
            if not fits and not (reshape and _reshapable(graph_variable, key_shape)):
                result.shape_mismatches.append(Mismatch(key, target, key_shape, graph_variable.shape))
            elif key_dtype != graph_variable.dtype:
                result.dtype_mismatches.append(Mismatch(key, target, key_dtype, graph_variable.dtype))
            else:
                if not fits:
                    result.reshaped.append(Mismatch(key, target, key_shape, graph_variable.shape))
                result.restored.append(Restore(key, target, key_shape, key_dtype))
                result.pairs.append((metadata.raw(key), graph_variable))
    return result


class PlanOptions(NamedTuple):
    """The SmartSaver arguments a plan depends on besides the selection and the map."""

    require: Tuple[Spec, ...] = ()
    min_restored_fraction: float = 0.0
    skip_mismatched: bool = False
    reshape: bool = False


def build_plan(
    metadata: CheckpointMetadata,
    variables: Mapping[str, GraphVariable],
    selection: Selection,
    name_map: NameMap,
    *,
    graph: Any = None,
    options: PlanOptions = PlanOptions(),
) -> Tuple[RestorePlan, List[Tuple[str, GraphVariable]]]:
    """Pair checkpoint keys with graph variables and collect every problem at once.

    Args:
        metadata: the checkpoint's shapes and dtypes (from its index).
        variables: every graph variable known, selected or not, by graph name.
        selection: the selected / expected-new names and filter diagnostics.
        name_map: the compiled checkpoint -> graph rules.
        graph: the tf.Graph (None in eager mode), to reject foreign variable values.
        options: guardrails (reported as diagnostics), skip_mismatched and reshape.

    Returns:
        (the plan, the (stored checkpoint key, GraphVariable) pairs to restore).

    Raises:
        NameMapError: rule collisions or targets that name no variable.
        UsageError: name_map values that are variables of another graph.
    """
    _check_rule_targets(name_map, variables, graph)
    keys = sorted(metadata.shapes)
    pairing = _pair_keys(keys, name_map, variables)
    found = _sort_keys(metadata, keys, variables, selection, pairing, options.reshape)
    selected, expected_new = set(selection.selected), set(selection.expected_new)
    restored_names = {record.graph_name for record in found.restored}
    mismatched_names = {m.graph_name for m in found.shape_mismatches + found.dtype_mismatches}
    missing = sorted(name for name in selected if name not in restored_names and name not in mismatched_names)

    diagnostics = list(selection.diagnostics) + found.diagnostics
    diagnostics += _rule_diagnostics(name_map, pairing, found.unused, keys)
    diagnostics += _require_diagnostics(options.require, options.min_restored_fraction, variables, restored_names)

    graph_meta = {name: (gv.shape, gv.dtype) for name, gv in variables.items()}
    checkpoint_meta = {key: (metadata.shapes[key], metadata.dtypes[key]) for key in keys}
    unused_meta = {key: checkpoint_meta[key] for key in found.unused}
    missing_meta = {name: graph_meta[name] for name in missing}
    kept_keys = [r.checkpoint_key for r in found.restored if r.checkpoint_key == r.graph_name]
    suggestions = suggest(missing_meta, unused_meta)
    proposal, fixes = propose_name_map(missing_meta, unused_meta, kept_keys, suggestions)
    plan = RestorePlan(
        checkpoint=metadata.prefix,
        restored=tuple(sorted(found.restored, key=lambda r: (r.graph_name, r.checkpoint_key))),
        missing=tuple(missing),
        unused=tuple(found.unused),
        not_selected=tuple(found.not_selected),
        shape_mismatches=tuple(sorted(found.shape_mismatches, key=lambda m: m.graph_name)),
        dtype_mismatches=tuple(sorted(found.dtype_mismatches, key=lambda m: m.graph_name)),
        initialized=tuple(sorted(set(missing) | mismatched_names | expected_new)),
        diagnostics=tuple(diagnostics),
        suggestions=_frozen(suggestions),
        proposed_name_map=_frozen(proposal),
        unselected=tuple(sorted(name for name in variables if name not in selected and name not in expected_new)),
        expected_new=tuple(sorted(expected_new)),
        superseded=tuple(found.superseded),
        reshaped=tuple(sorted(found.reshaped, key=lambda m: m.graph_name)),
        skip_mismatched=options.skip_mismatched,
        proposed_fixes=_frozen(fixes),
        unused_targets=_frozen({key: pairing.targets_of[key] for key in found.unused if key in pairing.rule_of}),
        graph_meta=_frozen(graph_meta),
        checkpoint_meta=_frozen(checkpoint_meta),
    )
    return plan, found.pairs

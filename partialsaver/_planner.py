"""Planning a restore: pair checkpoint keys with graph variables and collect every problem.

``build_plan`` applies the name map to every key (a key a rule mapped wins over one that
kept its name, which is then superseded), checks shapes and dtypes, sorts every key into
restored / mismatched / unused / left out / superseded, and gathers the diagnostics and
suggestions: all at once, from the index alone, touching no session.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from partialsaver import diagnostics as diagnostic
from partialsaver._reading import CheckpointMetadata
from partialsaver._suggest import propose_name_map, suggest
from partialsaver.diagnostics import Diagnostic
from partialsaver.errors import CheckpointMismatchError, NameMapError, UsageError, format_items
from partialsaver.mapping import NameMap, Rule, scope_hint, unmatched_rules
from partialsaver.names import GraphVariable, graph_of
from partialsaver.plan import Mismatch, Restore, RestorePlan, Shape, frozen
from partialsaver.selection import Selection, Spec, describe_spec, matches

__all__ = ["PlanOptions", "build_plan", "refuse_if_needed"]


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
    return math.prod(dim or 0 for dim in shape) == math.prod(checkpoint_shape)


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
            sources = " and ".join(f"{key!r} ({rule.describe()})" for key, rule in sorted(by_rule, key=lambda c: c[0]))
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
            diagnostics.append(diagnostic.require_failed(describe_spec(spec), len(hit), len(covered), min_fraction))
    return diagnostics


def _rule_diagnostics(
    name_map: NameMap, pairing: _Pairing, unused: Sequence[str], keys: Sequence[str]
) -> List[Diagnostic]:
    """Rules that matched no key (likely a typo in the source), and rules that sent every
    key they matched to names that are no variable (likely a typo in the target)."""
    diagnostics = unmatched_rules(name_map, {rule.position for rule in pairing.rule_of.values()}, keys)
    dead_rules: Dict[str, int] = defaultdict(int)
    for key in unused:
        if key in pairing.rule_of:
            dead_rules[pairing.rule_of[key].describe()] += 1
    unused_keys = set(unused)
    live_rules = {rule.describe() for key, rule in pairing.rule_of.items() if key not in unused_keys}
    diagnostics += [
        diagnostic.rule_targets_missing(rule, count)
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
            diagnostic.expected_new_found(target, key) for target in won if target in expected_new
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


DEFAULT_OPTIONS = PlanOptions()


def build_plan(
    metadata: CheckpointMetadata,
    variables: Mapping[str, GraphVariable],
    selection: Selection,
    name_map: NameMap,
    *,
    graph: Any = None,
    options: PlanOptions = DEFAULT_OPTIONS,
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
        suggestions=frozen(suggestions),
        proposed_name_map=frozen(proposal),
        unselected=tuple(sorted(name for name in variables if name not in selected and name not in expected_new)),
        expected_new=tuple(sorted(expected_new)),
        superseded=tuple(found.superseded),
        reshaped=tuple(sorted(found.reshaped, key=lambda m: m.graph_name)),
        skip_mismatched=options.skip_mismatched,
        proposed_fixes=frozen(fixes),
        unused_targets=frozen({key: pairing.targets_of[key] for key in found.unused if key in pairing.rule_of}),
        graph_meta=frozen(graph_meta),
        checkpoint_meta=frozen(checkpoint_meta),
    )
    return plan, found.pairs


def refuse_if_needed(plan: RestorePlan, strict: bool) -> None:
    """CheckpointMismatchError, before anything is touched, for what must not restore."""
    reasons = []
    mismatches = len(plan.shape_mismatches) + len(plan.dtype_mismatches)
    if mismatches and not plan.skip_mismatched:
        reasons.append(
            f"{mismatches} shape/dtype mismatch(es) {format_items(plan.mismatched, 5)} "
            "(pass skip_mismatched=True to initialize them instead)"
        )
    reasons += [d.message.split(";")[0] for d in plan.diagnostics if d.kind == "require_failed"]
    if strict:
        if plan.missing:
            reasons.append(f"{len(plan.missing)} missing variable(s) {format_items(plan.missing, 5)} (strict=True)")
        if plan.unused:
            reasons.append(f"{len(plan.unused)} unused checkpoint key(s) {format_items(plan.unused, 5)} (strict=True)")
        unmatched = [d.subject for d in plan.diagnostics if d.kind.startswith("unmatched_")]
        if unmatched:
            reasons.append(
                f"{len(unmatched)} spec(s)/rule(s) matched nothing: {', '.join(unmatched[:5])} (strict=True)"
            )
        if not plan.restored:
            reasons.append("no variable would be restored (strict=True)")
    if reasons:
        raise CheckpointMismatchError(
            f"nothing was restored from {plan.checkpoint}: " + "; ".join(reasons) + "\n\n" + str(plan), plan
        )

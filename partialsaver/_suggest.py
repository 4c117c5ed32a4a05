"""Near-miss names: per-variable suggestions and whole-scope name_map proposals."""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from partialsaver.presets import OPTIMIZER_SLOTS
from partialsaver.selection import strip_output_suffix

Meta = Tuple[Optional[Tuple[Optional[int], ...]], str]  # (shape, dtype name)

# Renames that refactors and framework moves commonly make, normalised to one spelling
# before names are compared (tf-slim "weights"/"biases" vs Keras "kernel"/"bias", ...).
_SYNONYMS = {
    "weights": "kernel",
    "weight": "kernel",
    "w": "kernel",
    "biases": "bias",
    "b": "bias",
    "fully_connected": "fc",
    "dense": "fc",
    "moving_variance": "moving_var",
}
_REPEAT_SUFFIX = re.compile(r"_\d+$")
# Suggestions consider every unused key up to this many; beyond it only keys sharing a
# name suffix, so a plan over 10,000 variables stays fast.
_FULL_SCAN_LIMIT = 300
_MAX_SUGGESTED = 500
_PER_VARIABLE = 3
_MIN_SIMILARITY = 0.6
_MIN_SIMILARITY_OTHER_SHAPE = 0.8

__all__ = ["close_names", "propose_name_map", "suggest"]


def _normalise(name: str, strip_repeats: bool = True) -> str:
    segments = []
    for segment in strip_output_suffix(name).lower().split("/"):
        if strip_repeats:
            segment = _REPEAT_SUFFIX.sub("", segment) or segment
        segments.append(_SYNONYMS.get(segment, segment))
    return "/".join(segments)


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _similarity(a: str, b: str) -> float:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < _MIN_SIMILARITY or matcher.quick_ratio() < _MIN_SIMILARITY:
        return 0.0
    whole = matcher.ratio()
    # The last segment carries most meaning ("kernel" vs "bias"); weigh it in.
    last = difflib.SequenceMatcher(None, a.rsplit("/", 1)[-1], b.rsplit("/", 1)[-1]).ratio()
    return 0.7 * whole + 0.3 * last


def _is_optimizer_state(name: str) -> bool:
    return OPTIMIZER_SLOTS.search(name) is not None


def _candidates_for(name: str, candidates: Sequence[str]) -> List[str]:
    """Optimizer state is never offered for a model variable (an ``adam_m`` slot has the
    variable's shape and nearly its name, and is the wrong answer every time)."""
    if _is_optimizer_state(name):
        return list(candidates)
    return [candidate for candidate in candidates if not _is_optimizer_state(candidate)]


def close_names(name: str, candidates: Sequence[str], limit: int = 5) -> List[str]:
    """Candidates that look like ``name``, best first (for "did you mean" hints).

    Names are compared as written and after common renames (weights -> kernel), and the
    better of the two counts: ``conv1/weight`` finds ``conv1/weights`` by its spelling.
    """
    target, raw = _normalise(name), strip_output_suffix(name).lower()
    scored = [
        (
            max(_similarity(target, _normalise(candidate)), _similarity(raw, strip_output_suffix(candidate).lower())),
            candidate,
        )
        for candidate in _candidates_for(name, candidates)
    ]
    ranked = sorted(scored, key=lambda item: (-item[0], item[1]))
    return [candidate for score, candidate in ranked if score >= _MIN_SIMILARITY][:limit]


def _suffix_index(keys: Sequence[str]) -> Dict[Tuple[str, ...], List[str]]:
    index: Dict[Tuple[str, ...], List[str]] = defaultdict(list)
    for key in keys:
        segments = tuple(strip_output_suffix(key).split("/"))
        for start in range(len(segments)):
            index[segments[start:]].append(key)
    return index


def _sharing_suffix(name: str, index: Mapping[Tuple[str, ...], List[str]], cap: int = 20) -> List[str]:
    segments = tuple(name.split("/"))
    for start in range(len(segments)):
        found = index.get(segments[start:])
        if found:
            return found[:cap]
    return []


def suggest(missing: Mapping[str, Meta], unused: Mapping[str, Meta]) -> Dict[str, Tuple[str, ...]]:
    """For each missing graph variable, the unused checkpoint keys it most likely is.

    Ranked by shape-and-dtype compatibility first, then name similarity (after common
    renames such as weights->kernel); a candidate must look like the name at all.
    """
    if not missing or not unused:
        return {}
    keys = sorted(unused)
    model_keys = _candidates_for("", keys)
    full_scan = len(keys) <= _FULL_SCAN_LIMIT
    index = None if full_scan else _suffix_index(keys)
    model_index = None if full_scan else _suffix_index(model_keys)
    normalised = {key: _normalise(key) for key in keys}
    suggestions: Dict[str, Tuple[str, ...]] = {}
    for name in sorted(missing)[:_MAX_SUGGESTED]:
        optimizer_state = _is_optimizer_state(name)
        if full_scan:
            pool = keys if optimizer_state else model_keys
        else:
            pool = _sharing_suffix(name, index if optimizer_state else model_index)  # type: ignore[arg-type]
        target = _normalise(name)
        ranked = []
        for key in pool:
            score = _similarity(target, normalised[key])
            if score < _MIN_SIMILARITY:
                continue
            # Renames (weights -> kernel) are stronger evidence than a repeat suffix
            # (dense_1 vs dense_2), and the spelling as written breaks the remaining ties.
            score = (
                0.3 * score + 0.6 * _ratio(_normalise(name, False), _normalise(key, False)) + 0.1 * _ratio(name, key)
            )
            compatible = unused[key] == missing[name] or (
                missing[name][0] is None and unused[key][1] == missing[name][1]
            )
            # A key of another shape must look much more alike to be worth naming.
            if compatible or score >= _MIN_SIMILARITY_OTHER_SHAPE:
                ranked.append((not compatible, -score, key))
        if ranked:
            suggestions[name] = tuple(key for _, _, key in sorted(ranked)[:_PER_VARIABLE])
    return suggestions


def _scope(segments: Sequence[str]) -> str:
    return "/".join(segments) + "/" if segments else "/"


def _propose_scopes(
    missing: Mapping[str, Meta], unused: Mapping[str, Meta], kept: Sequence[str] = ()
) -> Tuple[Dict[str, str], Dict[str, int]]:
    """Scope entries that would fix several missing variables at once.

    A missing ``model/conv1/w`` next to an unused ``net/conv1/w`` of the same shape votes
    for ``{"net/": "model/"}``; entries with at least two votes are proposed, greedily.
    A root entry (``{"/": "backbone/"}``) is narrowed to the checkpoint's top scopes
    (``{"vgg_16/": "backbone/vgg_16/"}``) when its voters share one top scope, or when it
    would also capture ``kept`` keys (those restored under their own names today).

    Returns:
        (proposed name_map, {checkpoint scope: how many missing variables it fixes}).
    """
    if not missing or not unused:
        return {}, {}
    index: Dict[Tuple[str, ...], List[Tuple[str, ...]]] = defaultdict(list)
    for key in unused:
        segments = tuple(key.split("/"))
        for start in range(len(segments)):
            index[segments[start:]].append(segments[:start])
    votes: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    root_voters: Dict[str, List[Tuple[str, str]]] = defaultdict(list)
    for name, meta in sorted(missing.items()):
        segments = tuple(name.split("/"))
        for start in range(len(segments)):
            suffix = segments[start:]
            prefixes = index.get(suffix)
            if not prefixes:
                continue
            graph_segments = segments[:start]
            for key_segments in prefixes[:5]:
                key = "/".join(key_segments + suffix)
                if key_segments != graph_segments and unused[key] == meta:
                    votes[(_scope(key_segments), _scope(graph_segments))].append(name)
                    if not key_segments and len(suffix) > 1:
                        root_voters[_scope(graph_segments)].append((suffix[0], name))
            break
    for graph_scope, voters in root_voters.items():
        top_scopes = {top for top, _ in voters}
        if len(top_scopes) == 1 or kept:
            del votes[("/", graph_scope)]
            for top, name in voters:
                votes[(top + "/", graph_scope.lstrip("/") + top + "/")].append(name)
    proposal: Dict[str, str] = {}
    fixes: Dict[str, int] = {}
    fixed: set = set()
    while votes:
        counts = Counter({rule: len(set(names) - fixed) for rule, names in votes.items()})
        ((rule, count),) = counts.most_common(1)
        if count < 2:
            break
        key_scope, graph_scope = rule
        if key_scope not in proposal:
            proposal[key_scope] = graph_scope
            fixes[key_scope] = count
        fixed |= set(votes.pop(rule))
    return proposal, fixes


def _propose_renames(
    missing: Mapping[str, Meta], unused: Mapping[str, Meta], suggestions: Mapping[str, Tuple[str, ...]]
) -> Dict["re.Pattern[str]", str]:
    """Regex entries for a rename of the last segment plus a scope offset, shared by at
    least two suggested pairs: ``layer1/weights`` -> ``net/layer1/kernel`` and
    ``layer2/weights`` -> ``net/layer2/kernel`` give ``{^(.*)/weights$: net/\\1/kernel}``."""
    votes: Counter[Tuple[str, str, str, str]] = Counter()
    for name, keys in suggestions.items():
        key = keys[0]
        if unused.get(key) != missing.get(name):
            continue
        key_segments, name_segments = key.split("/"), name.split("/")
        key_last, name_last = key_segments.pop(), name_segments.pop()
        if key_last == name_last or _normalise(key_last) != _normalise(name_last):
            continue
        common = 0
        while (
            common < min(len(key_segments), len(name_segments))
            and key_segments[len(key_segments) - 1 - common] == name_segments[len(name_segments) - 1 - common]
        ):
            common += 1
        if not common:
            continue
        key_prefix = "/".join(key_segments[: len(key_segments) - common])
        graph_prefix = "/".join(name_segments[: len(name_segments) - common])
        votes[(key_prefix, graph_prefix, key_last, name_last)] += 1
    proposal: Dict["re.Pattern[str]", str] = {}
    for (key_prefix, graph_prefix, key_last, name_last), count in votes.most_common():
        if count < 2:
            break
        pattern = re.compile(
            "^" + (re.escape(key_prefix + "/") if key_prefix else "") + "(.*)/" + re.escape(key_last) + "$"
        )
        proposal.setdefault(pattern, (graph_prefix + "/" if graph_prefix else "") + r"\1/" + name_last)
    return proposal


_OUTPUT_SUFFIX = re.compile(r"^(.*):0$")


def _propose_output_suffix(missing: Mapping[str, Meta], unused: Mapping[str, Meta]) -> Dict["re.Pattern[str]", str]:
    """``{^(.*):0$: \\1}`` when keys were stored as tensor names (``fc/W:0``, as some
    tensorpack-era checkpoints are) and the graph has the variables without ``:0``."""
    stripped = [key for key in unused if key.endswith(":0") and missing.get(key[:-2]) == unused[key]]
    return {_OUTPUT_SUFFIX: r"\1"} if len(stripped) >= 2 else {}


def propose_name_map(
    missing: Mapping[str, Meta],
    unused: Mapping[str, Meta],
    kept: Sequence[str] = (),
    suggestions: Optional[Mapping[str, Tuple[str, ...]]] = None,
) -> Tuple[Dict[object, str], Dict[object, int]]:
    """A name_map that would fix many missing variables at once, checked by applying it.

    Scope entries come first (same names under another scope), then regex entries for a
    renamed last segment (weights -> kernel) under an offset. The proposal is applied to
    the keys with partialsaver's own rules: an entry that fixes fewer than two missing
    variables, or that would move a key restored today (``kept``), is dropped.

    Returns:
        (proposed name_map, {entry key: how many missing variables it fixes}).
    """
    from partialsaver.mapping import NameMap  # the real rules, so the proposal is what it claims

    if not missing or not unused:
        return {}, {}
    proposal: Dict[object, str] = {}
    proposal.update(_propose_scopes(missing, unused, kept)[0])
    for extra in (_propose_renames(missing, unused, suggestions or {}), _propose_output_suffix(missing, unused)):
        proposal.update(extra.items())
    while proposal:
        rules = NameMap(proposal)
        fixes: Counter = Counter()
        broken: set = set()
        for key in list(unused) + list(kept):
            targets, rule = rules.apply(key)
            if rule is None:
                continue
            source = next(entry for entry in proposal if _entry_source(entry) == rule.source)
            if key in kept:
                broken.add(source)
            fixes[source] += sum(1 for target in targets if key in unused and missing.get(target) == unused[key])
        weak = {entry for entry in proposal if fixes[entry] < 2} | broken
        if not weak:
            return proposal, dict(fixes)
        proposal = {entry: value for entry, value in proposal.items() if entry not in weak}
    return {}, {}


def _entry_source(entry: object) -> str:
    """The source a NameMap rule reports for a proposal entry."""
    if isinstance(entry, re.Pattern):
        return entry.pattern
    return "" if entry == "/" else str(entry)

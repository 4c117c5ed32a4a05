"""Checkpoint-key -> graph-name rules.

A ``name_map`` dict holds three kinds of entries, applied in this precedence, and exactly
one rule applies to a key (rules never chain):

1. exact  ``{"v3": "v3_x"}`` (the value may be a variable object);
2. scope  ``{"InceptionV1/": "backbone/InceptionV1/"}``: both sides end with ``/``,
   ``"/"`` is the root on either side, the longest matching key wins;
3. regex  ``{re.compile(r"^(.*)/biases$"): r"\\1/bias"}``: ``re.sub`` on the key, the first
   matching rule in insertion order wins.

Instead of a dict, a callable ``fn(checkpoint_key) -> graph_name | None`` may be given.
Any value may be a list: the key then feeds several graph variables.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple, Union

from partialsaver.diagnostics import Diagnostic, unmatched_rule
from partialsaver.errors import NameMapError, format_items
from partialsaver.selection import strip_output_suffix

NameMapArg = Union[None, Mapping[Any, Any], Callable[[str], Any]]

__all__ = ["MappedNames", "NameMap", "Rule", "describe_collisions", "map_names", "scope_hint", "unmatched_rules"]


class Rule(NamedTuple):
    """One name-map entry. ``kind`` is exact, scope, regex, callable or var_list."""

    position: int  # its order in the name map
    kind: str
    source: str
    targets: Tuple[str, ...]

    def describe(self) -> str:
        shown = self.targets[0] if len(self.targets) == 1 else list(self.targets)
        if self.kind == "scope":
            return f"scope rule {self.source or '/'!r} -> {shown or '/'!r}"
        if self.kind == "regex":
            return f"regex rule {self.source!r} -> {shown!r}"
        if self.kind == "callable":
            return f"callable map {self.source}"
        return f"{self.kind} rule {self.source!r} -> {shown!r}"


def _is_variable(obj: Any) -> bool:
    # Variables as values only exist where TensorFlow does; offline tools (no TensorFlow
    # installed) only ever see names, so TensorFlow is imported when a value is not a str.
    try:
        from partialsaver.names import is_variable
    except ImportError:
        return False
    return is_variable(obj)


def _variable_name(variable: Any) -> str:
    from partialsaver.names import variable_name

    return variable_name(variable)


def _scope_side(text: str) -> str:
    """``"a/b/"`` -> ``"a/b/"``; the root ``"/"`` -> ``""`` (prefix of every name)."""
    return "" if text == "/" else text


class NameMap:
    """A compiled ``name_map``: ``apply(key)`` gives the graph name(s) and the rule used.

    Raises (at construction, every offending entry listed):
        NameMapError: a scope entry without ``/`` on both sides, an invalid regex
            replacement, a value of the wrong type, or a map that is neither dict nor callable.
    """

    def __init__(self, name_map: NameMapArg = None, explicit: Optional[Mapping[str, str]] = None) -> None:
        self.rules: List[Rule] = []
        self._exact: Dict[str, Rule] = {}
        self._scopes: Dict[str, Rule] = {}
        self._regexes: List[Tuple["re.Pattern[str]", Rule]] = []
        self._function: Optional[Callable[[str], Any]] = None
        self._function_rule: Optional[Rule] = None
        self._inverse_exact: Dict[str, str] = {}
        # (rule, variable object) for values given as variables: checked against the graph.
        self.variable_values: List[Tuple[Rule, Any]] = []
        for key, graph_name in (explicit or {}).items():
            self._add(Rule(len(self.rules), "var_list", key, (graph_name,)))
        if name_map is None:
            return
        if callable(name_map) and not isinstance(name_map, Mapping):
            self._function = name_map
            self._function_rule = self._add(
                Rule(len(self.rules), "callable", getattr(name_map, "__qualname__", repr(name_map)), ())
            )
            return
        if not isinstance(name_map, Mapping):
            raise NameMapError(
                f"name_map must be a dict {{checkpoint_key: graph_name}} or a callable, "
                f"not {type(name_map).__name__}; e.g. name_map={{'v3': 'v3_x'}}"
            )
        problems: List[str] = []
        for key, value in name_map.items():
            problem = self._compile_entry(key, value)
            if problem:
                problems.append(problem)
        if problems:
            raise NameMapError(
                f"name_map has {len(problems)} invalid entr{'y' if len(problems) == 1 else 'ies'}: "
                + "; ".join(sorted(problems))
            )

    # -- construction ------------------------------------------------------------------

    def _add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        if rule.kind in ("exact", "var_list"):
            self._exact[rule.source] = rule
            self._inverse_exact.setdefault(rule.targets[0], rule.source)
        elif rule.kind == "scope":
            self._scopes[rule.source] = rule
        return rule

    def _values(self, key: Any, value: Any) -> Tuple[List[str], List[Any], Optional[str]]:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            return [], [], f"{key!r}: an empty list of targets"
        names: List[str] = []
        objects: List[Any] = []
        for item in values:
            if isinstance(item, str) and item:
                names.append(strip_output_suffix(item))
            elif _is_variable(item):
                names.append(_variable_name(item))
                objects.append(item)
            else:
                return [], [], f"{key!r}: target {item!r} is neither a non-empty name nor a variable"
        # The slices of a partitioned variable all name it: init_from_checkpoint's
        # {"scope/var": list_of_partitions} is one target, not several.
        return list(dict.fromkeys(names)), objects, None

    def _compile_entry(self, key: Any, value: Any) -> Optional[str]:
        names, objects, problem = self._values(key if not isinstance(key, re.Pattern) else key.pattern, value)
        if problem:
            return problem
        if isinstance(key, re.Pattern):
            if objects:
                return f"regex {key.pattern!r}: the replacement must be a template string, not a variable"
            for template in names:
                try:
                    key.sub(template, "")
                except (re.error, IndexError) as error:
                    return f"regex {key.pattern!r}: invalid replacement {template!r} ({error})"
            rule = self._add(Rule(len(self.rules), "regex", key.pattern, tuple(names)))
            self._regexes.append((key, rule))
            return None
        if not isinstance(key, str) or not key:
            return f"{key!r}: a key must be a non-empty checkpoint name, scope 'a/' or re.compile(...)"
        key_is_scope = key.endswith("/")
        bad_sides = [name for name in names if name.endswith("/") != key_is_scope]
        if bad_sides or (key_is_scope and objects):
            fixed_key = key if key_is_scope else key + "/"
            fixed_values = [name if name.endswith("/") else name + "/" for name in names]
            return (
                f"{key!r} -> {bad_sides or names!r}: a scope entry needs '/' at the end of both "
                f"sides (e.g. {fixed_key!r}: {fixed_values[0]!r}); an exact entry needs it on neither"
            )
        if key_is_scope:
            rule = self._add(
                Rule(len(self.rules), "scope", _scope_side(key), tuple(_scope_side(name) for name in names))
            )
        else:
            rule = self._add(Rule(len(self.rules), "exact", key, tuple(names)))
        self.variable_values += [(rule, obj) for obj in objects]
        return None

    # -- use ---------------------------------------------------------------------------

    @property
    def invertible(self) -> bool:
        """True when every rule is exact or scope (save() then mirrors restore() exactly)."""
        return self._function is None and not self._regexes

    def apply(self, key: str) -> Tuple[Tuple[str, ...], Optional[Rule]]:
        """The graph name(s) for a checkpoint key and the rule that produced them.

        Returns ``((key,), None)`` when no rule applies.
        """
        rule = self._exact.get(key)
        if rule is not None:
            return rule.targets, rule
        if self._scopes:
            end = len(key)
            while end > 0:
                end = key.rfind("/", 0, end)
                prefix = key[: end + 1] if end >= 0 else ""
                rule = self._scopes.get(prefix)
                if rule is not None:
                    rest = key[len(prefix) :]
                    return tuple(target + rest for target in rule.targets), rule
                if end < 0:
                    break
        for pattern, rule in self._regexes:
            if pattern.search(key):
                return tuple(pattern.sub(template, key) for template in rule.targets), rule
        if self._function is not None:
            return self._call_function(key)
        return (key,), None

    def _call_function(self, key: str) -> Tuple[Tuple[str, ...], Optional[Rule]]:
        try:
            result = self._function(key)  # type: ignore[misc]
        except Exception as error:  # a user callable may raise anything; name it
            raise NameMapError(
                f"name_map callable {self._function_rule.source} raised "  # type: ignore[union-attr]
                f"{type(error).__name__}: {error} on key {key!r}; return a name or None for every key"
            ) from error
        if result is None:
            return (key,), None
        results = list(result) if isinstance(result, (list, tuple)) else [result]
        if not results or not all(isinstance(name, str) and name for name in results):
            raise NameMapError(
                f"name_map callable returned {result!r} for key {key!r}; "
                "return a graph name (str), a list of names, or None to keep the key's name"
            )
        return tuple(results), self._function_rule

    def invert(self, graph_name: str) -> str:
        """The checkpoint key that restore() would read ``graph_name`` from.

        Exact and scope rules are inverted (a list value inverts from its first target
        only); regex and callable rules cannot be inverted in general, so a name they
        would produce is saved under the graph name itself.
        """
        key = self._inverse_exact.get(graph_name)
        if key is not None:
            return key
        best: Optional[Rule] = None
        for rule in self._scopes.values():
            target = rule.targets[0]
            if graph_name.startswith(target) and (best is None or len(target) > len(best.targets[0])):
                best = rule
        if best is not None:
            return best.source + graph_name[len(best.targets[0]) :]
        return graph_name

    def unknown_exact_targets(self, known: Sequence[str]) -> List[Tuple[str, str]]:
        """(source, target) of exact-rule entries whose target names no variable in ``known``."""
        known_set = set(known)
        return [
            (rule.source, target)
            for rule in self.rules
            if rule.kind == "exact"
            for target in rule.targets
            if target not in known_set
        ]


def scope_hint(source: str, target: str, names: Sequence[str]) -> str:
    """A hint for an exact entry that was meant as a scope rule (``{"a": "b/a"}``), or ""."""
    if any(name.startswith((target.rstrip("/") + "/", source + "/")) for name in names):
        return f" (to map a scope, end both sides with '/': {{{source + '/'!r}: {target + '/'!r}}})"
    return ""


def unmatched_rules(name_map: NameMap, used: Set[int], keys: Sequence[str]) -> List[Diagnostic]:
    """An ``unmatched_rule`` diagnostic for every rule (by index) not in ``used``."""
    return [
        unmatched_rule(rule.describe(), scope_hint(rule.source, rule.targets[0], keys) if rule.kind == "exact" else "")
        for rule in name_map.rules
        if rule.position not in used and rule.kind != "var_list"
    ]


def describe_collisions(pairs: Iterable[Tuple[str, str]]) -> List[str]:
    """``"'target' <- ['a', 'b']"`` for every target that several distinct sources would get,
    given (target, source) pairs; sorted."""
    sources: Dict[str, List[str]] = {}
    for target, source in pairs:
        found = sources.setdefault(target, [])
        if source not in found:
            found.append(source)
    return [f"{target!r} <- {sorted(found)!r}" for target, found in sorted(sources.items()) if len(found) > 1]


class MappedNames(NamedTuple):
    """What an offline tool writes: each kept name's new name(s), the names left out, and the
    diagnostics of specs and rules that matched nothing."""

    renames: Dict[str, Tuple[str, ...]]
    dropped: Tuple[str, ...]
    diagnostics: Tuple[Diagnostic, ...]


def map_names(names: Sequence[str], name_map: NameMapArg, include: Any, exclude: Any, noun: str) -> MappedNames:
    """Filter ``names`` (include, then exclude) and map the kept ones through ``name_map``, as
    rename, export and import do with a checkpoint's keys or a file's tensor names.

    Raises:
        NameMapError: a bad map or spec, or two names that would be written under one.
    """
    from partialsaver.selection import normalize_specs, select

    compiled = NameMap(name_map)
    selection = select(names, normalize_specs(include, "include"), normalize_specs(exclude, "exclude"), noun=noun)
    renames: Dict[str, Tuple[str, ...]] = {}
    used = set()
    for name in selection.selected:
        targets, rule = compiled.apply(name)
        if rule is not None:
            used.add(rule.position)
        renames[name] = tuple(dict.fromkeys(targets))
    collisions = describe_collisions((target, name) for name, targets in renames.items() for target in targets)
    if collisions:
        raise NameMapError(
            f"the output would hold {len(collisions)} name(s) written from several {noun}s: "
            f"{format_items(collisions)}; make the map more specific or exclude one of each pair"
        )
    dropped = tuple(name for name in names if name not in renames)
    return MappedNames(renames, dropped, selection.diagnostics + tuple(unmatched_rules(compiled, used, names)))

"""Include / exclude filters -> the selected variables.

A spec's type decides how it matches a name:

- ``str``: a scope, segment-aware (``"a/b"`` covers ``a/b`` and ``a/b/...``, never ``a/bc``);
  a ``str`` holding ``*``, ``?`` or ``[`` is a glob matched against the whole name with
  ``fnmatch.fnmatchcase`` (``"model/backbone/*"``); a trailing ``:0`` is stripped, since
  variable names never carry it (``"learning_rate:0"`` is ``"learning_rate"``);
- compiled ``re.Pattern``: ``pattern.search(name)``;
- callable: ``fn(obj) -> bool`` where ``obj`` is the variable (graph / eager use) or the
  checkpoint key (offline tools).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from typing import Any, Callable, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple, Union

from partialsaver.diagnostics import Diagnostic, unmatched_spec
from partialsaver.errors import NameMapError, format_items
from partialsaver.presets import GLOBAL_STEP, OPTIMIZER_SLOTS

Spec = Union[str, "re.Pattern[str]", Callable[[Any], bool]]
SpecArg = Union[None, Spec, Sequence[Spec]]

_PRESETS = {id(OPTIMIZER_SLOTS): "OPTIMIZER_SLOTS", id(GLOBAL_STEP): "GLOBAL_STEP"}

__all__ = [
    "Selection",
    "describe_spec",
    "in_scope",
    "is_glob",
    "matches",
    "normalize_specs",
    "scopes_of",
    "select",
    "strip_output_suffix",
]


class Selection(NamedTuple):
    selected: Tuple[str, ...]
    expected_new: Tuple[str, ...]
    diagnostics: Tuple[Diagnostic, ...]


def in_scope(name: str, scope: str) -> bool:
    """True when ``name`` is ``scope`` or lies under ``scope/`` (never ``scope_1/...``).

    Example:
        >>> in_scope("useful_scope/w", "useful_scope"), in_scope("useful_scope_1/w", "useful_scope")
        (True, False)
    """
    scope = scope.rstrip("/")
    if not scope:
        return True
    return name == scope or name.startswith(scope + "/")


def strip_output_suffix(name: str) -> str:
    """``"w:0"`` -> ``"w"``: a tensor name written where a variable name is meant."""
    return name[:-2] if name.endswith(":0") else name


def is_glob(spec: Spec) -> bool:
    return isinstance(spec, str) and any(char in spec for char in "*?[")


@functools.lru_cache(maxsize=256)
def _glob_pattern(glob: str) -> "re.Pattern[str]":
    return re.compile(fnmatch.translate(glob))


def describe_spec(spec: Spec) -> str:
    """A short human name for a spec: ``scope 'a/b'``, ``glob 'a/*'``, ``regex '^x'``, ``OPTIMIZER_SLOTS``."""
    if id(spec) in _PRESETS:
        return _PRESETS[id(spec)]
    if is_glob(spec):
        return f"glob {spec!r}"
    if isinstance(spec, str):
        return f"scope {spec!r}"
    if isinstance(spec, re.Pattern):
        return f"regex {spec.pattern!r}"
    return f"callable {getattr(spec, '__qualname__', repr(spec))}"


def normalize_specs(specs: SpecArg, argument: str) -> Tuple[Spec, ...]:
    """One spec or a list of specs -> a tuple of checked specs.

    Raises:
        NameMapError: a spec is neither a str, a compiled regex nor a callable.
    """
    if specs is None:
        return ()
    if isinstance(specs, (str, re.Pattern)) or callable(specs):
        specs = [specs]
    if not isinstance(specs, (list, tuple, set, frozenset)):
        raise NameMapError(
            f"{argument}={specs!r} is not a filter spec; pass a scope string, a compiled "
            "re.Pattern, a callable, or a list of those"
        )
    bad = [repr(spec) for spec in specs if not (isinstance(spec, (str, re.Pattern)) or callable(spec))]
    bad += [
        f"{spec!r} (an empty scope would match every name)"
        for spec in specs
        if isinstance(spec, str) and not spec.strip("/")
    ]
    if bad:
        raise NameMapError(
            f"{argument} holds {len(bad)} bad spec(s): {format_items(bad)}; "
            "each spec must be a non-empty scope string, a compiled re.Pattern or a callable"
        )
    return tuple(strip_output_suffix(spec) if isinstance(spec, str) else spec for spec in specs)


def matches(spec: Spec, name: str, obj: Any) -> bool:
    """Whether ``spec`` matches the item named ``name`` (``obj`` is what callables see)."""
    if isinstance(spec, str):
        return _glob_pattern(spec).match(name) is not None if is_glob(spec) else in_scope(name, spec)
    if isinstance(spec, re.Pattern):
        return spec.search(name) is not None
    try:
        return bool(spec(obj))
    except Exception as error:  # a user callable may raise anything; say which one did
        raise NameMapError(
            f"filter {describe_spec(spec)} raised {type(error).__name__}: {error} on {name!r}; "
            "make it return True or False for every variable"
        ) from error


def scopes_of(names: Iterable[str]) -> List[str]:
    """Every scope the names lie in, and the names themselves: what a scope spec could be."""
    scopes: Set[str] = set()
    for name in names:
        segments = name.split("/")
        scopes.update("/".join(segments[:end]) for end in range(1, len(segments) + 1))
    return sorted(scopes)


def _closest_scopes(spec: Spec, names: Sequence[str]) -> str:
    if not isinstance(spec, str):
        return ""
    from partialsaver._suggest import close_names

    literal = re.split(r"[*?\[]", spec, maxsplit=1)[0].rstrip("/") if is_glob(spec) else spec.rstrip("/")
    near = close_names(literal, scopes_of(names), limit=3) if literal else []
    return format_items(near) if near else ""


def _unmatched(argument: str, spec: Spec, scope_of_search: str, names: Sequence[str]) -> Diagnostic:
    return unmatched_spec(argument, describe_spec(spec), scope_of_search, _closest_scopes(spec, names))


def select(
    names: Iterable[str],
    include: Sequence[Spec] = (),
    exclude: Sequence[Spec] = (),
    expect_new: Sequence[Spec] = (),
    obj_of: Optional[Mapping[str, Any]] = None,
    noun: str = "variable",
) -> Selection:
    """Apply include, then exclude, then expect_new to ``names``.

    Args:
        names: candidate names, in order.
        include: keep a name when any spec matches (empty keeps all).
        exclude: then drop a name when any spec matches.
        expect_new: names declared new (never restored); removed from the selection.
        obj_of: what callables receive per name (default: the name itself).
        noun: what the names are, for diagnostics ("variable", "checkpoint key").

    Returns:
        Selection with the kept names, the expected-new names and diagnostics for
        every user spec that matched nothing (presets are exempt: they are generic).
    """
    all_names = list(names)

    def obj(name: str) -> Any:
        return obj_of[name] if obj_of is not None else name

    diagnostics: List[Diagnostic] = []
    kept = all_names
    if include:
        hits = {id(spec): [name for name in all_names if matches(spec, name, obj(name))] for spec in include}
        kept_set = {name for found in hits.values() for name in found}
        kept = [name for name in all_names if name in kept_set]
        diagnostics += [
            _unmatched("include", spec, noun, all_names)
            for spec in include
            if not hits[id(spec)] and id(spec) not in _PRESETS
        ]
    for argument, specs in (("exclude", exclude), ("expect_new", expect_new)):
        if not specs:
            continue
        pool = kept if argument == "exclude" else all_names
        matched = {id(spec): {name for name in pool if matches(spec, name, obj(name))} for spec in specs}
        dropped = set().union(*matched.values())
        diagnostics += [
            _unmatched(
                argument,
                spec,
                f"included {noun}" if argument == "exclude" and include else noun,
                pool,
            )
            for spec in specs
            if not matched[id(spec)] and id(spec) not in _PRESETS
        ]
        if argument == "exclude":
            kept = [name for name in kept if name not in dropped]
        else:
            expected = [name for name in all_names if name in dropped]
            kept = [name for name in kept if name not in dropped]
    return Selection(
        tuple(kept),
        tuple(expected) if expect_new else (),
        tuple(diagnostics),
    )

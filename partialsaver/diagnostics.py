"""Diagnostics: the warnings a plan carries, and every message they say.

A ``Diagnostic`` is (kind, subject, message). Kinds starting with ``"unmatched_"`` (a filter
spec or a name-map rule that matched nothing) and ``"require_failed"`` make a plan not ok;
``"expected_new_found"`` and ``"rule_targets_missing"`` are warnings. All are reported
before anything is restored, and the unmatched ones fail ``strict=True``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "Diagnostic",
    "expected_new_found",
    "require_failed",
    "rule_targets_missing",
    "unmatched_rule",
    "unmatched_spec",
]


class Diagnostic(NamedTuple):
    """A warning in a plan: ``kind`` is machine-readable, ``message`` is for people.

    Kinds starting with ``"unmatched_"`` (a filter spec or map rule that matched nothing)
    are errors under ``strict=True``.
    """

    kind: str
    subject: str
    message: str

    def __str__(self) -> str:
        return self.message


def unmatched_spec(argument: str, spec: str, searched: str, closest: str = "") -> Diagnostic:
    """``include`` / ``exclude`` / ``expect_new`` spec (described) that matched no ``searched``."""
    near = f" (closest: {closest})" if closest else ""
    return Diagnostic(
        f"unmatched_{argument}",
        spec,
        f"{argument} {spec} matched no {searched}{near}; check it for a typo (perhaps you misspelled it?)",
    )


def unmatched_rule(rule: str, hint: str = "") -> Diagnostic:
    """A name-map rule (described) that matched no checkpoint key; ``hint`` says more."""
    return Diagnostic(
        "unmatched_rule",
        rule,
        f"name_map {rule} matched no checkpoint key{hint}; check it for a typo (perhaps you misspelled it?)",
    )


def rule_targets_missing(rule: str, keys: int) -> Diagnostic:
    """A rule that sent every key it matched to names that are no variable: likely its target is mistyped."""
    plural = "key" if keys == 1 else "keys"
    return Diagnostic(
        "rule_targets_missing",
        rule,
        f"name_map {rule} sent {keys} {plural} to names that are no variable of the graph; check its target",
    )


def require_failed(spec: str, restored: int, covered: int, min_fraction: float) -> Diagnostic:
    """A ``require`` spec (described) that would restore too little."""
    short = f" (less than min_restored_fraction={min_fraction:g})" if restored else ""
    return Diagnostic(
        "require_failed",
        spec,
        f"require {spec}: {restored} of {covered} variables would be restored{short}; fix name_map / "
        "include so the required variables are found in the checkpoint",
    )


def expected_new_found(variable: str, key: str) -> Diagnostic:
    """An ``expect_new`` variable the checkpoint does hold."""
    return Diagnostic(
        "expected_new_found",
        variable,
        f"expect_new variable {variable!r} IS in the checkpoint as {key!r}; drop it from expect_new to restore it",
    )

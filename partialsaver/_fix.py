"""What would fix a plan, as Python arguments to paste or as ``partialsaver plan`` options.

The report (``_report``) prints it under "to fix"; ``partialsaver plan --json`` adds the
CLI form as ``fix_cli``.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any, List, NamedTuple, Sequence, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from partialsaver.plan import RestorePlan

__all__ = ["fix_lines", "fix_options"]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _name_map_lines(entries: Sequence[Tuple[Any, str, str]]) -> List[str]:
    """One paste-able ``name_map={...}``: a single line for one entry, a block for more."""
    if len(entries) == 1:
        key, value, comment = entries[0]
        return [f"name_map={{{key!r}: {value!r}}}" + (f"  # {comment}" if comment else "")]
    lines = ["name_map={"]
    lines += [f"    {key!r}: {value!r}," + (f"  # {comment}" if comment else "") for key, value, comment in entries]
    return [*lines, "}"]


class _Fix(NamedTuple):
    """What would fix a plan: name_map entries (entry, target, comment), how many more
    exact suggestions were left out, and the mismatched variables (when not skipped)."""

    entries: List[Tuple[Any, str, str]]
    more: int
    mismatched: List[str]


def _fix(plan: "RestorePlan") -> _Fix:
    entries: List[Tuple[Any, str, str]] = []
    covered: set = set()
    if plan.proposed_name_map:
        from partialsaver.mapping import NameMap

        rules = NameMap(dict(plan.proposed_name_map))
        missing = set(plan.missing)
        covered = {target for key in plan.checkpoint_meta for target in rules.apply(key)[0] if target in missing}
        for entry, target in plan.proposed_name_map.items():
            fixes = plan.proposed_fixes.get(entry, 0)
            entries.append((entry, target, f"fixes {_plural(fixes, 'missing variable')}"))
    exact = [
        (keys[0], name, "")
        for name, keys in sorted(plan.suggestions.items())
        if name not in covered and plan.checkpoint_meta.get(keys[0]) == plan.graph_meta.get(name)
    ]
    handled = plan.skip_mismatched or not (plan.shape_mismatches or plan.dtype_mismatches)
    return _Fix(entries + exact[:10], max(0, len(exact) - 10), [] if handled else list(plan.mismatched))


def fix_lines(plan: "RestorePlan") -> List[str]:
    """Arguments that would fix the plan, as Python to paste."""
    fix = _fix(plan)
    lines = _name_map_lines(fix.entries) if fix.entries else []
    if fix.more:
        lines.append(f"# ... and {fix.more} more suggestions above")
    if fix.mismatched:
        more = f"  # ... and {len(fix.mismatched) - 10} more" if len(fix.mismatched) > 10 else ""
        lines.append("skip_mismatched=True  # initialize the mismatched variables instead")
        lines.append(f"exclude={fix.mismatched[:10]!r}  # or leave them out of the restore{more}")
    return lines


def fix_options(plan: "RestorePlan") -> List[str]:
    """The same fix as ``partialsaver plan`` options to add, quoted for a POSIX shell."""
    fix = _fix(plan)
    lines = []
    for entry, target, comment in fix.entries:
        option = "--regex-map" if isinstance(entry, re.Pattern) else "--map"
        source = entry.pattern if isinstance(entry, re.Pattern) else entry
        lines.append(f"{option} {shlex.quote(f'{source}={target}')}" + (f"  # {comment}" if comment else ""))
    if fix.more:
        lines.append(f"# ... and {fix.more} more suggestions above")
    if fix.mismatched:
        excludes = " ".join(f"--exclude {shlex.quote(name)}" for name in fix.mismatched[:10])
        more = f"  # ... and {len(fix.mismatched) - 10} more" if len(fix.mismatched) > 10 else ""
        lines.append("--skip-mismatched  # initialize the mismatched variables instead")
        lines.append(f"{excludes}  # or leave them out of the restore{more}")
    return lines

"""How a RestorePlan reads: the text report, the JSON dict, the notebook table.

Text and HTML render the same sections, built once by ``_sections``.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from partialsaver._fix import fix_lines, fix_options
from partialsaver.presets import OPTIMIZER_SLOTS

if TYPE_CHECKING:  # pragma: no cover
    from partialsaver.plan import RestorePlan

MAX_LINES = 12  # rows per section; longer sections are grouped by scope, then capped
WIDTH = 80  # the text report fits a terminal of this many columns where names allow
_NAME_CAP = 44

__all__ = ["format_shape", "render_html", "render_text", "summary_line", "to_dict"]


class _Row(NamedTuple):
    name: str
    detail: str = ""
    note: str = ""  # printed on its own line below the row


class _Section(NamedTuple):
    status: str  # restored / initialized / mismatch / unused / left-out / diagnostic
    title: str
    total: int
    rows: List[_Row]
    hidden: int


def format_shape(shape: Any) -> str:
    """``(3, 4)``, ``(3,)``, ``()``; ``?`` for an unknown dimension, ``(?)`` for an unknown rank."""
    if shape is None:
        return "(?)"
    dims = ", ".join("?" if dim is None else str(dim) for dim in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _plural(count: int, noun: str, plural: Optional[str] = None) -> str:
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"


def _grouped(names: Sequence[str], max_lines: int = MAX_LINES) -> List[Tuple[str, int]]:
    """Names, or ``scope/*`` groups with counts when there are too many to list."""
    if len(names) <= max_lines:
        return [(name, 1) for name in names]
    depth = max(name.count("/") for name in names)
    while depth > 0:
        groups = Counter(
            "/".join(name.split("/")[:depth]) + "/*" if name.count("/") >= depth else name for name in names
        )
        if len(groups) <= max_lines:
            return sorted(groups.items())
        depth -= 1
    return [(name, 1) for name in names]


def _named_section(
    status: str,
    title: str,
    names: Sequence[str],
    meta: Mapping[str, Tuple[Any, str]],
    suffix: Optional[Mapping[str, str]] = None,
    notes: Optional[Mapping[str, str]] = None,
) -> List[_Section]:
    if not names:
        return []
    entries = _grouped(sorted(names))
    shown = entries[:MAX_LINES]
    shape_width = max(
        (len(format_shape(meta[name][0])) for name, count in shown if count == 1 and name in meta), default=0
    )
    rows = []
    for name, count in shown:
        if count > 1 or name.endswith("/*"):
            rows.append(_Row(name, _plural(count, "variable")))
            continue
        shape, dtype = meta.get(name, (None, ""))
        detail = f"{format_shape(shape):<{shape_width}}  {dtype}"
        if suffix and name in suffix:
            detail += f"  {suffix[name]}"
        rows.append(_Row(name, detail, (notes or {}).get(name, "")))
    hidden = sum(count for _, count in entries[MAX_LINES:])
    return [_Section(status, title, len(names), rows, hidden)]


def _mismatch_section(title: str, records: Sequence[Any], show: Any, status: str = "mismatch") -> List[_Section]:
    if not records:
        return []
    rows = [
        _Row(f"graph {r.graph_name!r} {show(r.graph)}  vs  checkpoint {r.checkpoint_key!r} {show(r.checkpoint)}")
        for r in records[:MAX_LINES]
    ]
    return [_Section(status, title, len(records), rows, max(0, len(records) - MAX_LINES))]


def _split_optimizer(names: Sequence[str]) -> Tuple[List[str], List[str]]:
    return [n for n in names if not OPTIMIZER_SLOTS.search(n)], [n for n in names if OPTIMIZER_SLOTS.search(n)]


def _sections(plan: "RestorePlan") -> List[_Section]:
    restored_meta = {r.graph_name: (r.shape, r.dtype) for r in plan.restored}
    renamed = {r.graph_name: f"<- {r.checkpoint_key!r}" for r in plan.restored if r.checkpoint_key != r.graph_name}
    hints = {
        name: "did you mean " + ", ".join(f"{key!r} {format_shape(plan.checkpoint_meta[key][0])}" for key in keys) + "?"
        for name, keys in plan.suggestions.items()
    }
    # Optimizer state is reported apart, so that it does not drown the model's own lines.
    missing_model, missing_optimizer = _split_optimizer(plan.missing)
    unused_model, unused_optimizer = _split_optimizer(plan.unused)
    sections: List[_Section] = []
    sections += _named_section("restored", "restored", list(restored_meta), restored_meta, suffix=renamed)
    sections += _named_section(
        "initialized", "missing in checkpoint: initialized if not yet", missing_model, plan.graph_meta, notes=hints
    )
    sections += _named_section(
        "initialized", "missing optimizer state: initialized if not yet", missing_optimizer, plan.graph_meta
    )
    handled = ": skipped (as asked), initialized if not yet" if plan.skip_mismatched else ", not restored"
    sections += _mismatch_section(f"shape mismatch{handled}", plan.shape_mismatches, format_shape)
    sections += _mismatch_section(f"dtype mismatch{handled}", plan.dtype_mismatches, str)
    sections += _mismatch_section("restored reshaped (reshape=True)", plan.reshaped, format_shape, status="restored")
    sections += _named_section(
        "initialized", "new (expected): initialized if not yet", plan.expected_new, plan.graph_meta
    )
    moved = {
        key: "-> " + ", ".join(repr(t) for t in targets) + " (no such variable)"
        for key, targets in plan.unused_targets.items()
    }
    sections += _named_section("unused", "unused checkpoint keys", unused_model, plan.checkpoint_meta, suffix=moved)
    sections += _named_section("unused", "unused optimizer state", unused_optimizer, plan.checkpoint_meta)
    sections += _named_section(
        "left-out",
        "checkpoint keys superseded by a key mapped onto their variable",
        plan.superseded,
        plan.checkpoint_meta,
    )
    sections += _named_section(
        "left-out", "checkpoint keys left out on purpose (include / exclude)", plan.not_selected, plan.checkpoint_meta
    )
    sections += _named_section(
        "left-out", "graph variables outside the selection: initialized if not yet", plan.unselected, plan.graph_meta
    )
    if plan.diagnostics:
        rows = [_Row(d.message) for d in plan.diagnostics[:MAX_LINES]]
        sections.append(
            _Section(
                "diagnostic", "diagnostics", len(plan.diagnostics), rows, max(0, len(plan.diagnostics) - MAX_LINES)
            )
        )
    return sections


def summary_line(plan: "RestorePlan") -> str:
    """One line: ``all 3 variables restored``, or the counts of what does not line up."""
    restored = len({r.graph_name for r in plan.restored})
    selected = restored + len(plan.missing) + len(plan.mismatched)
    if plan.ok and not plan.initialized and not plan.unused and not plan.unselected:
        clean = f"all {_plural(restored, 'variable')} restored"
        return f"{clean}, {_plural(len(plan.diagnostics), 'diagnostic')}" if plan.diagnostics else clean
    parts = [f"{restored} of {_plural(selected, 'selected variable')} restored"]
    if plan.missing:
        parts.append(f"{len(plan.missing)} missing")
    mismatches = len(plan.shape_mismatches) + len(plan.dtype_mismatches)
    if mismatches:
        parts.append(_plural(mismatches, "mismatch", "mismatches"))
    if plan.reshaped:
        parts.append(f"{len(plan.reshaped)} reshaped")
    if plan.expected_new:
        parts.append(f"{len(plan.expected_new)} new (expected)")
    if plan.unused:
        parts.append(_plural(len(plan.unused), "unused key"))
    if plan.unselected:
        parts.append(_plural(len(plan.unselected), "variable") + " outside the selection")
    if plan.diagnostics:
        parts.append(_plural(len(plan.diagnostics), "diagnostic"))
    return ", ".join(parts)


def _text_rows(section: _Section) -> List[str]:
    width = min(max((len(row.name) for row in section.rows if row.detail), default=0), _NAME_CAP)
    lines = []
    for row in section.rows:
        if row.detail and len(row.name) > width:  # a long name: its shape and dtype go below, in their column
            lines += [f"  {row.name}", f"  {'':<{width}}  {row.detail}".rstrip()]
        else:
            lines.append(f"  {row.name:<{width}}  {row.detail}".rstrip() if row.detail else f"  {row.name}")
        if row.note:
            lines.append(f"      {row.note}")
    if section.hidden:
        lines.append(f"  ... and {section.hidden} more")
    return lines


def render_text(plan: "RestorePlan", cli: bool = False) -> str:
    """The report; ``cli=True`` writes the fix as ``partialsaver plan`` options."""
    lines = [f"RestorePlan for {plan.checkpoint}", f"  {summary_line(plan)}"]
    if not plan.ok:
        lines.append(f"  not ok: {'; '.join(plan.problems)}")
    lines.append("")
    for section in _sections(plan):
        lines.append(f"{section.title} ({section.total})")
        lines += _text_rows(section)
    fixes = fix_options(plan) if cli else fix_lines(plan)
    if fixes:
        lines.append("to fix, add:" if cli else "to fix, pass:")
        lines += [f"  {line}" for line in fixes]
    return "\n".join(lines).rstrip() + "\n"


def _listed_shape(shape: Any) -> Optional[List[Optional[int]]]:
    return None if shape is None else list(shape)


def _mismatch_dict(record: Any, convert: Any) -> Dict[str, Any]:
    return {
        "checkpoint_key": record.checkpoint_key,
        "graph_name": record.graph_name,
        "checkpoint": convert(record.checkpoint),
        "graph": convert(record.graph),
    }


def to_dict(plan: "RestorePlan") -> Dict[str, Any]:
    return {
        "checkpoint": plan.checkpoint,
        "ok": plan.ok,
        "summary": summary_line(plan),
        "restored": [
            {
                "checkpoint_key": r.checkpoint_key,
                "graph_name": r.graph_name,
                "shape": _listed_shape(r.shape),
                "dtype": r.dtype,
            }
            for r in plan.restored
        ],
        "missing": list(plan.missing),
        "unused": list(plan.unused),
        "not_selected": list(plan.not_selected),
        "superseded": list(plan.superseded),
        "problems": list(plan.problems),
        "skip_mismatched": plan.skip_mismatched,
        "reshaped": [_mismatch_dict(m, _listed_shape) for m in plan.reshaped],
        "shape_mismatches": [_mismatch_dict(m, _listed_shape) for m in plan.shape_mismatches],
        "dtype_mismatches": [_mismatch_dict(m, str) for m in plan.dtype_mismatches],
        "initialized": list(plan.initialized),
        "unselected": list(plan.unselected),
        "expected_new": list(plan.expected_new),
        "diagnostics": [{"kind": d.kind, "subject": d.subject, "message": d.message} for d in plan.diagnostics],
        "suggestions": {name: list(keys) for name, keys in plan.suggestions.items()},
        # Regex entries appear as their Python repr: "re.compile('^(.*)/weights$')".
        "proposed_name_map": {
            key if isinstance(key, str) else repr(key): value for key, value in plan.proposed_name_map.items()
        },
        "fix": fix_lines(plan),
    }


_COLOURS = {
    "restored": "#e6f4ea",
    "initialized": "#e8f0fe",
    "mismatch": "#fce8e6",
    "unused": "#fef7e0",
    "left-out": "#f1f3f4",
    "diagnostic": "#fef7e0",
}


def render_html(plan: "RestorePlan") -> str:
    """A compact table for notebooks: the text report's sections, one coloured band each."""
    escape = html.escape
    rows = []
    for section in _sections(plan):
        colour = _COLOURS.get(section.status, "#fff")
        rows.append(
            f'<tr style="background:{colour}"><th colspan="3" style="text-align:left">'
            f"{escape(section.title)} ({section.total})</th></tr>"
        )
        for row in section.rows:
            note = f"<br><small>{escape(row.note)}</small>" if row.note else ""
            rows.append(
                f'<tr style="background:{colour}"><td></td><td><code>{escape(row.name)}</code>{note}</td>'
                f"<td><code>{escape(row.detail)}</code></td></tr>"
            )
        if section.hidden:
            rows.append(
                f'<tr style="background:{colour}"><td></td><td colspan="2">... and {section.hidden} more</td></tr>'
            )
    fixes = "".join(f"<li><code>{escape(line)}</code></li>" for line in fix_lines(plan))
    return (
        f"<div><b>RestorePlan</b> <code>{escape(plan.checkpoint)}</code>: {escape(summary_line(plan))}"
        f'<table style="font-size:90%;border-collapse:collapse">{"".join(rows)}</table>'
        + (f"to fix, pass:<ul>{fixes}</ul>" if fixes else "")
        + "</div>"
    )

"""How a RestorePlan reads: the text report, the JSON dict, the notebook table."""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from partialsaver.selection import OPTIMIZER_SLOTS

if TYPE_CHECKING:  # pragma: no cover
    from partialsaver.plan import RestorePlan

MAX_LINES = 12  # per section; longer sections are grouped by scope, then capped
_NAME_WIDTH = 48

__all__ = ["render_html", "render_text", "summary_line", "to_dict"]


def _shape(shape: Any) -> str:
    if shape is None:
        return "(?)"
    dims = ", ".join("?" if dim is None else str(dim) for dim in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _meta(meta: Optional[Tuple[Any, str]], shape_width: int = 0) -> str:
    return f"{_shape(meta[0]):<{shape_width}}  {meta[1]}" if meta else ""


def _plural(count: int, noun: str, plural: Optional[str] = None) -> str:
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"


def _grouped(names: Sequence[str], max_lines: int = MAX_LINES) -> List[Tuple[str, int]]:
    """Names, or ``scope/*`` groups with counts when there are too many to list."""
    if len(names) <= max_lines:
        return [(name, 1) for name in names]
    depth = max(name.count("/") for name in names)
    while depth > 0:
        groups = Counter("/".join(name.split("/")[:depth]) + "/*" if name.count("/") >= depth else name for name in names)
        if len(groups) <= max_lines:
            return sorted(groups.items())
        depth -= 1
    return [(name, 1) for name in names]


def _section(
    title: str,
    names: Sequence[str],
    meta: Mapping[str, Any],
    notes: Optional[Mapping[str, str]] = None,
    inline: Optional[Mapping[str, str]] = None,
) -> List[str]:
    """A titled block: one row per name (name, shape, dtype[, inline note]) or per scope group."""
    if not names:
        return []
    lines = [f"{title} ({len(names)})"]
    entries = _grouped(sorted(names))
    shown = entries[:MAX_LINES]
    width = min(max(len(name) for name, _ in shown), _NAME_WIDTH)
    shape_width = max((len(_shape(meta[name][0])) for name, _ in shown if name in meta), default=0)
    for name, count in shown:
        if count > 1 or name.endswith("/*"):
            lines.append(f"  {name:<{width}}  {_plural(count, 'variable')}")
            continue
        row = f"  {name:<{width}}  {_meta(meta.get(name), shape_width)}"
        if inline and name in inline:
            row = f"{row}  {inline[name]}"
        lines.append(row.rstrip())
        if notes and name in notes:
            lines.append(f"      {notes[name]}")
    hidden = sum(count for _, count in entries[MAX_LINES:])
    if hidden:
        lines.append(f"  ... and {hidden} more")
    return lines


def summary_line(plan: "RestorePlan") -> str:
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
    if plan.expected_new:
        parts.append(f"{len(plan.expected_new)} new (expected)")
    if plan.unused:
        parts.append(_plural(len(plan.unused), "unused key"))
    if plan.unselected:
        parts.append(f"{len(plan.unselected)} not selected")
    if plan.diagnostics:
        parts.append(_plural(len(plan.diagnostics), "diagnostic"))
    return ", ".join(parts)


def _fix_lines(plan: "RestorePlan") -> List[str]:
    lines = []
    exact = {
        keys[0]: name
        for name, keys in sorted(plan.suggestions.items())
        if plan.checkpoint_meta.get(keys[0]) == plan.graph_meta.get(name)
    }
    covered = set()
    if plan.proposed_name_map:
        for key_scope, graph_scope in plan.proposed_name_map.items():
            lines.append(
                f"  name_map={{{key_scope!r}: {graph_scope!r}}}  "
                f"# fixes {_plural(plan.proposed_fixes.get(key_scope, 0), 'missing variable')}"
            )
            covered |= {name for name in plan.missing if name.startswith("" if graph_scope == "/" else graph_scope)}
    exact = {key: name for key, name in exact.items() if name not in covered}
    if exact:
        shown = dict(list(exact.items())[:5])
        more = f"  # ... and {len(exact) - 5} more" if len(exact) > 5 else ""
        lines.append(f"  name_map={shown!r}{more}")
    if plan.shape_mismatches or plan.dtype_mismatches:
        lines.append("  skip_mismatched=True  # initialise the mismatched variables instead")
        lines.append(f"  exclude={list(plan.mismatched)[:3]!r}  # or leave them out of the restore")
    return ["to fix, pass:"] + lines if lines else []


def render_text(plan: "RestorePlan") -> str:
    lines = [f"RestorePlan for {plan.checkpoint}", f"  {summary_line(plan)}", ""]
    restored_meta = {r.graph_name: (r.shape, r.dtype) for r in plan.restored}
    renamed = {r.graph_name: f"<- {r.checkpoint_key!r}" for r in plan.restored if r.checkpoint_key != r.graph_name}
    lines += _section("restored", sorted(restored_meta), restored_meta, inline=renamed)
    notes = {
        name: "did you mean " + ", ".join(
            f"{key!r} {_shape(plan.checkpoint_meta[key][0])}" for key in keys
        ) + "?"
        for name, keys in plan.suggestions.items()
    }
    # Optimizer state is reported apart so that it does not drown the model's own lines.
    missing_model = [name for name in plan.missing if not OPTIMIZER_SLOTS.search(name)]
    missing_optimizer = [name for name in plan.missing if OPTIMIZER_SLOTS.search(name)]
    lines += _section("missing in checkpoint, will be initialised", missing_model, plan.graph_meta, notes)
    lines += _section("missing optimizer state, will be initialised", missing_optimizer, plan.graph_meta)
    for title, records in (("shape mismatch", plan.shape_mismatches), ("dtype mismatch", plan.dtype_mismatches)):
        if records:
            lines.append(f"{title}, not restored ({len(records)})")
            for record in records[:MAX_LINES]:
                show = _shape if title.startswith("shape") else str
                lines.append(
                    f"  graph {record.graph_name!r} {show(record.graph)}  vs  "
                    f"checkpoint {record.checkpoint_key!r} {show(record.checkpoint)}"
                )
            if len(records) > MAX_LINES:
                lines.append(f"  ... and {len(records) - MAX_LINES} more")
    lines += _section("new (expected), will be initialised", plan.expected_new, plan.graph_meta)
    model_keys = [key for key in plan.unused if not OPTIMIZER_SLOTS.search(key)]
    optimizer_keys = [key for key in plan.unused if OPTIMIZER_SLOTS.search(key)]
    lines += _section("unused checkpoint keys", model_keys, plan.checkpoint_meta)
    lines += _section("unused optimizer state", optimizer_keys, plan.checkpoint_meta)
    lines += _section("checkpoint keys left out on purpose (not selected)", plan.not_selected, plan.checkpoint_meta)
    lines += _section(
        "graph variables not selected: initialised if not yet, never overwritten", plan.unselected, plan.graph_meta
    )
    if plan.diagnostics:
        lines.append(f"diagnostics ({len(plan.diagnostics)})")
        lines += [f"  {diagnostic.message}" for diagnostic in plan.diagnostics[:MAX_LINES]]
        if len(plan.diagnostics) > MAX_LINES:
            lines.append(f"  ... and {len(plan.diagnostics) - MAX_LINES} more")
    lines += _fix_lines(plan)
    return "\n".join(line for line in lines).rstrip() + "\n"


def _listed_shape(shape: Any) -> Optional[List[Optional[int]]]:
    return None if shape is None else list(shape)


def to_dict(plan: "RestorePlan") -> Dict[str, Any]:
    mismatch = lambda m, convert: {  # noqa: E731 - tiny local formatter
        "checkpoint_key": m.checkpoint_key,
        "graph_name": m.graph_name,
        "checkpoint": convert(m.checkpoint),
        "graph": convert(m.graph),
    }
    return {
        "checkpoint": plan.checkpoint,
        "ok": plan.ok,
        "summary": summary_line(plan),
        "restored": [
            {"checkpoint_key": r.checkpoint_key, "graph_name": r.graph_name, "shape": _listed_shape(r.shape), "dtype": r.dtype}
            for r in plan.restored
        ],
        "missing": list(plan.missing),
        "unused": list(plan.unused),
        "not_selected": list(plan.not_selected),
        "shape_mismatches": [mismatch(m, _listed_shape) for m in plan.shape_mismatches],
        "dtype_mismatches": [mismatch(m, str) for m in plan.dtype_mismatches],
        "initialized": list(plan.initialized),
        "unselected": list(plan.unselected),
        "expected_new": list(plan.expected_new),
        "diagnostics": [{"kind": d.kind, "subject": d.subject, "message": d.message} for d in plan.diagnostics],
        "suggestions": {name: list(keys) for name, keys in plan.suggestions.items()},
        "proposed_name_map": dict(plan.proposed_name_map),
    }


_COLOURS = {"restored": "#e6f4ea", "missing": "#fce8e6", "mismatch": "#fce8e6", "new": "#e8f0fe", "unused": "#fef7e0"}


def _html_rows(status: str, rows: Iterable[Tuple[str, str, str]], limit: int = 50) -> List[str]:
    rows = list(rows)
    out = [
        f'<tr style="background:{_COLOURS.get(status, "#fff")}"><td>{html.escape(status)}</td>'
        f"<td><code>{html.escape(graph)}</code></td><td><code>{html.escape(key)}</code></td>"
        f"<td>{html.escape(detail)}</td></tr>"
        for graph, key, detail in rows[:limit]
    ]
    if len(rows) > limit:
        out.append(f"<tr><td>{status}</td><td colspan=3>... and {len(rows) - limit} more</td></tr>")
    return out


def render_html(plan: "RestorePlan") -> str:
    rows: List[str] = []
    rows += _html_rows("restored", ((r.graph_name, r.checkpoint_key, f"{_shape(r.shape)} {r.dtype}") for r in plan.restored))
    rows += _html_rows(
        "missing",
        ((name, "", "did you mean " + ", ".join(plan.suggestions[name]) + "?" if name in plan.suggestions else "")
         for name in plan.missing),
    )
    rows += _html_rows(
        "mismatch",
        ((m.graph_name, m.checkpoint_key, f"graph {m.graph} vs checkpoint {m.checkpoint}")
         for m in plan.shape_mismatches + plan.dtype_mismatches),
    )
    rows += _html_rows("new", ((name, "", "expected new") for name in plan.expected_new))
    rows += _html_rows("unused", (("", key, _meta(plan.checkpoint_meta.get(key))) for key in plan.unused))
    diagnostics = "".join(f"<li>{html.escape(d.message)}</li>" for d in plan.diagnostics)
    return (
        f"<div><b>RestorePlan</b> <code>{html.escape(plan.checkpoint)}</code>: {html.escape(summary_line(plan))}"
        '<table style="font-size:90%"><tr><th>status</th><th>graph variable</th><th>checkpoint key</th><th>detail</th></tr>'
        + "".join(rows)
        + "</table>"
        + (f"<ul>{diagnostics}</ul>" if diagnostics else "")
        + "</div>"
    )

"""The CLI's commands: each takes the parsed arguments and returns an exit code.

Output goes to stdout, warnings and errors to stderr; only ``plan`` imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from partialsaver._fix import fix_options
from partialsaver._report import format_shape
from partialsaver.checkpoint import (
    destination_prefix,
    diff_checkpoints,
    list_variables,
    load_variable,
    plan_rename,
    read_metadata,
    rename_variables,
)
from partialsaver.errors import NameMapError, UsageError
from partialsaver.presets import GLOBAL_STEP, OPTIMIZER_SLOTS
from partialsaver.selection import Spec, normalize_specs, select

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT = 0, 1, 2
PRESETS = {"@optimizer": OPTIMIZER_SLOTS, "@global_step": GLOBAL_STEP}

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "PRESETS",
    "diff",
    "export",
    "import_",
    "listing",
    "plan",
    "rename",
    "show",
]


def _human(nbytes: Optional[int]) -> str:
    if nbytes is None:
        return "?"
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def _specs(values: Optional[Sequence[str]], option: str) -> "tuple[Spec, ...]":
    """Filter options -> specs: scopes, globs, and the presets @optimizer / @global_step."""
    specs: List[Spec] = []
    for value in values or ():
        if value.startswith("@"):
            if value not in PRESETS:
                raise UsageError(f"{option} {value}: unknown preset; the presets are {', '.join(sorted(PRESETS))}")
            specs.append(PRESETS[value])
        else:
            specs.append(value)
    return normalize_specs(specs, option.lstrip("-").replace("-", "_"))


def _parse_map(entries: Sequence[str], regex: bool, regex_entries: Sequence[str] = ()) -> Dict[Any, str]:
    """``OLD=NEW`` strings -> a name_map (``OLD/=NEW/`` is a scope rule; ``regex_entries``
    and, with --regex, every entry compile OLD as a regex)."""
    name_map: Dict[Any, str] = {}
    bad: List[str] = []
    tagged = [(entry, regex, "--map") for entry in entries] + [(entry, True, "--regex-map") for entry in regex_entries]
    for entry, is_regex, option in tagged:
        # A regex may itself hold "=" ((?=...)), a template rarely does: split at the last one.
        old, sep, new = entry.rpartition("=") if is_regex else entry.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"{option} {entry!r} is not OLD=NEW (e.g. --map v3=v3_x or --map old_scope/=new_scope/)")
        if is_regex:
            try:
                name_map[re.compile(old)] = new
            except re.error as error:
                bad.append(f"{old!r} ({error})")
        else:
            name_map[old] = new
    if bad:
        raise NameMapError(f"invalid regex in --map: {', '.join(bad)}; fix the pattern (Python re syntax)")
    return name_map


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True))


def _warn_unmatched(diagnostics: Sequence[Any]) -> bool:
    """Print filter specs that matched nothing; True when there were any."""
    for diagnostic in diagnostics:
        print(f"partialsaver: warning: {diagnostic.message}", file=sys.stderr)
    return bool(diagnostics)


def listing(args: argparse.Namespace) -> int:
    infos = list_variables(args.checkpoint)
    selection = select(
        [i.name for i in infos],
        _specs(args.include, "--include"),
        _specs(args.exclude, "--exclude"),
        noun="checkpoint key",
    )
    kept = set(selection.selected)
    infos = [info for info in infos if info.name in kept]
    total = sum(info.nbytes or 0 for info in infos)
    if args.json:
        _print_json(
            {
                "checkpoint": read_metadata(args.checkpoint).prefix,
                "variables": [
                    {"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "nbytes": i.nbytes} for i in infos
                ],
                "total_variables": len(infos),
                "total_bytes": total,
            }
        )
    else:
        width = max([len(info.name) for info in infos] + [4])
        shape_width = max([len(format_shape(info.shape)) for info in infos] + [5])
        print(f"{'name':<{width}}  {'shape':<{shape_width}}  {'dtype':<9}  size")
        for info in infos:
            print(
                f"{info.name:<{width}}  {format_shape(info.shape):<{shape_width}}  "
                f"{info.dtype:<9}  {_human(info.nbytes)}"
            )
        print(f"{len(infos)} variable{'s' if len(infos) != 1 else ''}, {_human(total)}")
    return EXIT_PROBLEMS if _warn_unmatched(selection.diagnostics) else EXIT_OK


def _stats(value: np.ndarray) -> str:
    if value.dtype == object or value.size == 0 or (value.dtype.kind not in "fiub" and value.dtype.name != "bfloat16"):
        return ""
    as_float = value.astype(np.float64)
    finite = as_float[np.isfinite(as_float)]
    parts = [f"nan {int(np.isnan(as_float).sum())}", f"inf {int(np.isinf(as_float).sum())}"]
    if finite.size:
        spread = [f"min {finite.min():.6g}", f"max {finite.max():.6g}", f"mean {finite.mean():.6g}"]
        parts = [*spread, f"std {finite.std():.6g}", *parts]
    return "  ".join(parts)


def _preview(value: np.ndarray, count: int) -> str:
    """The whole value when it has at most ``count`` elements, else its first ``count``
    elements in storage (row-major) order."""
    with np.printoptions(threshold=sys.maxsize, precision=6, linewidth=100):
        if value.size <= count:
            return str(value)
        head = value.reshape(-1)[:count]
        return f"first {count} of {value.size} elements (row-major):\n{head}"


def show(args: argparse.Namespace) -> int:
    value = load_variable(args.checkpoint, args.name)
    metadata = read_metadata(args.checkpoint)
    readable = {metadata.raw(key): key for key in metadata.shapes}.get(args.name, args.name)
    info = next((i for i in list_variables(args.checkpoint) if i.name == readable), None)
    shape = info.shape if info is not None else value.shape
    dtype = info.dtype if info is not None else str(value.dtype)
    print(f"name:  {readable}")
    print(f"shape: {format_shape(shape)}   dtype: {dtype}   size: {_human(info.nbytes if info is not None else None)}")
    stats = _stats(value)
    if stats:
        print(f"stats: {stats}")
    print(_preview(value, args.preview))
    return EXIT_OK


def diff(args: argparse.Namespace) -> int:
    diff = diff_checkpoints(args.a, args.b, values=not args.no_values)
    if args.json:
        _print_json(diff.to_dict())
    else:
        print(diff, end="")
    return EXIT_OK if diff.same else EXIT_PROBLEMS


_NOT_META = (".index", ".data-", ".ckpt")


def _import_meta_graph(path: str) -> None:
    """Import a .meta file into the default graph, or one line saying what to pass."""
    from google.protobuf.message import DecodeError

    from partialsaver._tf import tf, v1

    hint = "pass the .meta file a Saver wrote next to the checkpoint (PREFIX.meta)"
    name = os.path.basename(path)
    if any(marker in name for marker in _NOT_META) and not name.endswith(".meta"):
        raise UsageError(f"--meta {path!r} is a checkpoint file, not a graph; {hint}")
    try:
        v1.train.import_meta_graph(path, clear_devices=True)
    except (OSError, tf.errors.OpError, ValueError, KeyError, UnicodeDecodeError, DecodeError) as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise UsageError(
            f"cannot import the meta graph {path!r} ({type(error).__name__}: {first[:200]}); {hint}"
        ) from error


def plan(args: argparse.Namespace) -> int:
    from partialsaver import _report
    from partialsaver._logs import quiet_tensorflow_logs
    from partialsaver._tf import tf
    from partialsaver.saver import SmartSaver

    name_map = _parse_map(args.map or [], args.regex, args.regex_map or []) or None
    with tf.Graph().as_default(), quiet_tensorflow_logs():
        _import_meta_graph(args.meta)
        saver = SmartSaver(
            include=_specs(args.include, "--include") or None,
            exclude=_specs(args.exclude, "--exclude") or None,
            name_map=name_map,
            expect_new=_specs(args.expect_new, "--expect-new") or None,
            require=_specs(args.require, "--require") or None,
            skip_mismatched=args.skip_mismatched,
        )
        plan = saver.plan(args.checkpoint)
    if args.json:
        _print_json(dict(plan.to_dict(), fix_cli=fix_options(plan)))
    else:
        print(_report.render_text(plan, cli=True), end="")
    return EXIT_OK if plan.ok else EXIT_PROBLEMS


def _progress_bar(enabled: bool) -> "tuple[Optional[Callable[[int, int], None]], Callable[[], None]]":
    try:
        from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    if not enabled:
        return None, lambda: None
    bar = tqdm(total=0, unit="B", unit_scale=True, desc="rename", disable=None, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update, bar.close


def rename(args: argparse.Namespace) -> int:
    name_map = _parse_map(args.map or [], args.regex, args.regex_map or []) or None
    include, exclude = _specs(args.include, "--include") or None, _specs(args.exclude, "--exclude") or None
    plan = plan_rename(args.src, name_map, include=include, exclude=exclude)
    _warn_unmatched(plan.diagnostics)
    if not plan.changes_anything:
        print(
            f"partialsaver: the map renames nothing in {plan.source} and no key is filtered out; "
            "check the names with `partialsaver list`",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    if args.dry_run:
        for key, targets in plan.renames.items():
            if targets != (key,):
                print(f"{key} -> {', '.join(targets)}")
        for key in plan.dropped:
            print(f"{key} -> (dropped)")
        kept = sum(1 for key, targets in plan.renames.items() if targets == (key,))
        counts = f"{len(plan.renames) - kept} renamed, {kept} unchanged, {len(plan.dropped)} dropped"
        print(f"{counts} (dry run: nothing written)")
        return EXIT_OK
    destination = destination_prefix(args.dst, plan.source)
    update, close = _progress_bar(not args.quiet)
    try:
        renames = rename_variables(
            args.src,
            destination,
            name_map,
            include=include,
            exclude=exclude,
            overwrite=args.overwrite,
            memory_budget=int(args.memory_budget * 2**20),
            progress=update,
        )
    finally:
        close()
    renamed = sum(1 for key, target in renames.items() if target != key)
    print(f"wrote {destination}: {len(renames)} variables ({renamed} renamed, {len(plan.dropped)} dropped)")
    return EXIT_OK


def export(args: argparse.Namespace) -> int:
    from partialsaver.convert import export_checkpoint

    name_map = _parse_map(args.map or [], args.regex, args.regex_map or []) or None
    written = export_checkpoint(
        args.checkpoint,
        args.out,
        name_map,
        include=_specs(args.include, "--include") or None,
        exclude=_specs(args.exclude, "--exclude") or None,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.out}: {sum(1 if isinstance(name, str) else len(name) for name in written.values())} tensors")
    return EXIT_OK


def import_(args: argparse.Namespace) -> int:
    from partialsaver.convert import import_checkpoint

    name_map = _parse_map(args.map or [], args.regex, args.regex_map or []) or None
    destination = destination_prefix(args.dst, os.path.splitext(os.path.basename(args.file))[0])
    written = import_checkpoint(
        args.file,
        destination,
        name_map,
        include=_specs(args.include, "--include") or None,
        exclude=_specs(args.exclude, "--exclude") or None,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {destination}: {sum(1 if isinstance(name, str) else len(name) for name in written.values())} variables"
    )
    return EXIT_OK

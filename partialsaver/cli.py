"""``partialsaver list | show | plan | rename | diff``: the library from a shell.

Exit codes: 0 fine, 1 problems found (``plan`` not ok, ``diff`` with differences,
``rename`` whose map changes nothing), 2 bad input. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from partialsaver._tf import tf, v1
from partialsaver.checkpoint import (
    diff_checkpoints,
    list_variables,
    load_variable,
    plan_rename,
    read_metadata,
    rename_variables,
)
from partialsaver.errors import NameMapError, PartialSaverError, UsageError
from partialsaver.saver import SmartSaver
from partialsaver.selection import select

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT = 0, 1, 2

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _human(nbytes: Optional[int]) -> str:
    if nbytes is None:
        return "?"
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _parse_map(entries: Sequence[str], regex: bool) -> Dict[Any, str]:
    """``OLD=NEW`` strings -> a name_map (``OLD/=NEW/`` is a scope rule; --regex compiles OLD)."""
    name_map: Dict[Any, str] = {}
    bad: List[str] = []
    for entry in entries:
        # A regex may itself hold "=" ((?=...)), a template rarely does: split at the last one.
        old, sep, new = entry.rpartition("=") if regex else entry.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"--map {entry!r} is not OLD=NEW (e.g. --map v3=v3_x or --map old_scope/=new_scope/)")
        if regex:
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


def _cmd_list(args: argparse.Namespace) -> int:
    infos = list_variables(args.checkpoint)
    kept = set(select([i.name for i in infos], args.include or (), args.exclude or (), noun="checkpoint key").selected)
    infos = [info for info in infos if info.name in kept]
    total = sum(info.nbytes or 0 for info in infos)
    if args.json:
        _print_json({
            "checkpoint": read_metadata(args.checkpoint).prefix,
            "variables": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "nbytes": i.nbytes} for i in infos],
            "total_variables": len(infos),
            "total_bytes": total,
        })
        return EXIT_OK
    width = max([len(info.name) for info in infos] + [4])
    shape_width = max([len(_shape(info.shape)) for info in infos] + [5])
    print(f"{'name':<{width}}  {'shape':<{shape_width}}  {'dtype':<9}  size")
    for info in infos:
        print(f"{info.name:<{width}}  {_shape(info.shape):<{shape_width}}  {info.dtype:<9}  {_human(info.nbytes)}")
    print(f"{len(infos)} variable{'s' if len(infos) != 1 else ''}, {_human(total)}")
    return EXIT_OK


def _stats(value: np.ndarray) -> str:
    if value.dtype == object or value.size == 0 or value.dtype.kind not in "fiub" and value.dtype.name != "bfloat16":
        return ""
    as_float = value.astype(np.float64)
    finite = as_float[np.isfinite(as_float)]
    parts = [f"nan {int(np.isnan(as_float).sum())}", f"inf {int(np.isinf(as_float).sum())}"]
    if finite.size:
        parts = [f"min {finite.min():.6g}", f"max {finite.max():.6g}", f"mean {finite.mean():.6g}",
                 f"std {finite.std():.6g}"] + parts
    return "  ".join(parts)


def _cmd_show(args: argparse.Namespace) -> int:
    value = load_variable(args.checkpoint, args.name)
    metadata = read_metadata(args.checkpoint)
    readable = {metadata.raw(key): key for key in metadata.shapes}.get(args.name, args.name)
    info = next(i for i in list_variables(args.checkpoint) if i.name == readable)
    print(f"name:  {info.name}")
    print(f"shape: {_shape(info.shape)}   dtype: {info.dtype}   size: {_human(info.nbytes)}")
    stats = _stats(value)
    if stats:
        print(f"stats: {stats}")
    with np.printoptions(threshold=args.preview, edgeitems=3, precision=6, linewidth=100):
        print(value)
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    diff = diff_checkpoints(args.a, args.b, values=not args.no_values)
    if args.json:
        _print_json(diff.to_dict())
    else:
        print(diff, end="")
    return EXIT_OK if diff.same else EXIT_PROBLEMS


def _cmd_plan(args: argparse.Namespace) -> int:
    name_map = _parse_map(args.map or [], args.regex) or None
    with tf.Graph().as_default():
        try:
            v1.train.import_meta_graph(args.meta, clear_devices=True)
        except (OSError, tf.errors.OpError, ValueError, KeyError) as error:
            raise UsageError(f"cannot import the meta graph {args.meta!r} ({type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}); pass the .meta file a Saver wrote") from error
        plan = SmartSaver(include=args.include, exclude=args.exclude, name_map=name_map).plan(args.checkpoint)
    if args.json:
        _print_json(plan.to_dict())
    else:
        print(plan, end="")
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


def _cmd_rename(args: argparse.Namespace) -> int:
    name_map = _parse_map(args.map or [], args.regex) or None
    plan = plan_rename(args.src, name_map, include=args.include, exclude=args.exclude)
    for diagnostic in plan.diagnostics:
        print(f"warning: {diagnostic.message}", file=sys.stderr)
    if not plan.changes_anything:
        print(f"partialsaver: the map renames nothing in {plan.source} and no key is filtered out; "
              "check the names with `partialsaver list`", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.dry_run:
        for key, targets in plan.renames.items():
            if targets != (key,):
                print(f"{key} -> {', '.join(targets)}")
        for key in plan.dropped:
            print(f"{key} -> (dropped)")
        kept = sum(1 for key, targets in plan.renames.items() if targets == (key,))
        print(f"{len(plan.renames) - kept} renamed, {kept} unchanged, {len(plan.dropped)} dropped (dry run: nothing written)")
        return EXIT_OK
    update, close = _progress_bar(not args.quiet)
    try:
        renames = rename_variables(args.src, args.dst, name_map, include=args.include, exclude=args.exclude,
                                   overwrite=args.overwrite, memory_budget=int(args.memory_budget * 2**20),
                                   progress=update)
    finally:
        close()
    renamed = sum(1 for key, target in renames.items() if target != key)
    print(f"wrote {args.dst}: {len(renames)} variables ({renamed} renamed, {len(plan.dropped)} dropped)")
    return EXIT_OK


def _positive_megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of megabytes")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="partialsaver", description="Inspect, plan, rename and diff TensorFlow checkpoints.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = commands.add_parser("list", help="variables of a checkpoint: name, shape, dtype, size")
    listing.add_argument("checkpoint", help="checkpoint directory, prefix or file")
    listing.add_argument("--include", action="append", help="only this scope (repeatable)")
    listing.add_argument("--exclude", action="append", help="leave out this scope (repeatable)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=_cmd_list)

    show = commands.add_parser("show", help="one variable: shape, dtype, stats and a preview")
    show.add_argument("checkpoint")
    show.add_argument("name")
    show.add_argument("--preview", type=int, default=24, help="elements shown before eliding (default 24)")
    show.set_defaults(run=_cmd_show)

    plan = commands.add_parser("plan", help="what SmartSaver would restore into a saved graph")
    plan.add_argument("checkpoint")
    plan.add_argument("--meta", required=True, help="the graph's .meta file (tf.compat.v1.train.export_meta_graph)")
    plan.add_argument("--include", action="append", help="scope to restore (repeatable)")
    plan.add_argument("--exclude", action="append", help="scope to leave out (repeatable)")
    plan.add_argument("--map", action="append", metavar="OLD=NEW", help="checkpoint -> graph name (OLD/=NEW/: scope)")
    plan.add_argument("--regex", action="store_true", help="OLD in --map is a regular expression, NEW a template")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(run=_cmd_plan)

    rename = commands.add_parser("rename", help="write a renamed copy of a checkpoint (streamed, atomic)")
    rename.add_argument("src")
    rename.add_argument("dst", help="prefix to write (its directory must exist)")
    rename.add_argument("--map", action="append", metavar="OLD=NEW", help="rename (OLD/=NEW/: scope; repeatable)")
    rename.add_argument("--regex", action="store_true", help="OLD in --map is a regular expression, NEW a template")
    rename.add_argument("--include", action="append", help="only write this scope (repeatable)")
    rename.add_argument("--exclude", action="append", help="do not write this scope (repeatable)")
    rename.add_argument("--dry-run", action="store_true", help="print the renames, write nothing")
    rename.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    rename.add_argument("--memory-budget", type=_positive_megabytes, default=256, metavar="MB",
                        help="tensor bytes in memory (default 256)")
    rename.add_argument("--quiet", action="store_true", help="no progress bar")
    rename.set_defaults(run=_cmd_rename)

    diff = commands.add_parser("diff", help="compare two checkpoints: keys, shapes, dtypes, values")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--no-values", action="store_true", help="compare keys, shapes and dtypes only")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(run=_cmd_diff)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 fine, 1 problems found, 2 bad input)."""
    tf.get_logger().setLevel("ERROR")
    try:
        args = _build_parser().parse_args(argv)
        return args.run(args)
    except PartialSaverError as error:
        print(f"partialsaver: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `partialsaver list big | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("partialsaver: interrupted", file=sys.stderr)
        return 130

"""``partialsaver list | show | plan | rename | diff | export | import``: the library from a shell.

Exit codes: 0 fine, 1 problems found (``plan`` not ok, ``diff`` with differences,
``rename`` whose map changes nothing, a filter that matched nothing), 2 bad input. Errors
are one line on stderr. Only ``plan`` imports TensorFlow.

Filters take scopes, globs (``'model/*/kernel'``) and the presets ``@optimizer`` and
``@global_step``; ``--map OLD=NEW`` is an exact entry (``OLD/=NEW/`` a scope entry) and
``--regex-map PATTERN=TEMPLATE`` a regex entry.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from typing import Iterator, Optional, Sequence

from partialsaver import _commands as commands
from partialsaver._commands import EXIT_BAD_INPUT, EXIT_OK
from partialsaver.errors import PartialSaverError, UsageError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _positive_megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of megabytes")
    return value


_FILTER_HELP = "scope, glob ('a/*/w') or preset (@optimizer, @global_step); repeatable"


def _add_filters(command: argparse.ArgumentParser, verb: str) -> None:
    command.add_argument("--include", action="append", metavar="SPEC", help=f"only {verb} these: {_FILTER_HELP}")
    command.add_argument("--exclude", action="append", metavar="SPEC", help=f"do not {verb} these: {_FILTER_HELP}")


def _add_maps(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--map", action="append", metavar="OLD=NEW", help="checkpoint name -> new name (OLD/=NEW/: a scope); repeatable"
    )
    command.add_argument(
        "--regex-map",
        action="append",
        metavar="PATTERN=TEMPLATE",
        help="regex entry: re.sub(PATTERN, TEMPLATE, name), e.g. '^(.*)/weights$=\\1/kernel'",
    )
    command.add_argument("--regex", action="store_true", help="read every --map OLD as a regex (like --regex-map)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="partialsaver",
        description="Inspect, plan, rename, diff, export and import TensorFlow "
        "checkpoints. Only `plan` needs TensorFlow.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = subcommands.add_parser("list", help="variables of a checkpoint: name, shape, dtype, size")
    listing.add_argument("checkpoint", help="checkpoint directory, prefix or file")
    _add_filters(listing, "list")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=commands.listing)

    show = subcommands.add_parser("show", help="one variable: shape, dtype, stats and a preview")
    show.add_argument("checkpoint")
    show.add_argument("name")
    show.add_argument(
        "--preview",
        type=_positive_count,
        default=24,
        metavar="N",
        help="print the whole value when it has at most N elements, else its first N (default 24)",
    )
    show.set_defaults(run=commands.show)

    plan = subcommands.add_parser("plan", help="what SmartSaver would restore into a saved graph (imports TensorFlow)")
    plan.add_argument("checkpoint")
    plan.add_argument("--meta", required=True, help="the graph's .meta file (tf.compat.v1.train.export_meta_graph)")
    _add_filters(plan, "restore")
    _add_maps(plan)
    plan.add_argument(
        "--expect-new",
        action="append",
        metavar="SPEC",
        help="new variables: never restored, reported as new rather than missing; repeatable",
    )
    plan.add_argument(
        "--require",
        action="append",
        metavar="SPEC",
        help="fail unless this spec restores at least one variable; repeatable",
    )
    plan.add_argument(
        "--skip-mismatched",
        action="store_true",
        help="initialize variables whose shape or dtype differs instead of failing",
    )
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(run=commands.plan)

    rename = subcommands.add_parser("rename", help="write a renamed copy of a checkpoint (streamed, atomic)")
    rename.add_argument("src")
    rename.add_argument("dst", help="prefix to write (its directory is created), or an existing directory")
    _add_maps(rename)
    _add_filters(rename, "write")
    rename.add_argument("--dry-run", action="store_true", help="print the renames, write nothing")
    rename.add_argument("--overwrite", action="store_true", help="replace dst if it exists (dst may be src)")
    rename.add_argument(
        "--memory-budget",
        type=_positive_megabytes,
        default=256,
        metavar="MB",
        help="tensor bytes in memory (default 256)",
    )
    rename.add_argument("--quiet", action="store_true", help="no progress bar")
    rename.set_defaults(run=commands.rename)

    export = subcommands.add_parser("export", help="a checkpoint's tensors to .safetensors or .npz (streamed)")
    export.add_argument("checkpoint")
    export.add_argument("out", help="OUT.safetensors or OUT.npz (the format follows the suffix)")
    _add_maps(export)
    _add_filters(export, "export")
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    export.set_defaults(run=commands.export)

    importing = subcommands.add_parser("import", help="a .safetensors or .npz file as a TensorFlow checkpoint")
    importing.add_argument("file", help="IN.safetensors or IN.npz")
    importing.add_argument("dst", help="checkpoint prefix to write (e.g. out/model.ckpt), or a directory")
    _add_maps(importing)
    _add_filters(importing, "import")
    importing.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    importing.set_defaults(run=commands.import_)

    diff = subcommands.add_parser("diff", help="compare two checkpoints: keys, shapes, dtypes, values")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--no-values", action="store_true", help="compare keys, shapes and dtypes only")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(run=commands.diff)
    return parser


def _positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of elements")
    return value


@contextlib.contextmanager
def _quiet_tensorflow_start() -> Iterator[None]:
    """TensorFlow's C++ start-up chatter stays off the terminal while a command runs, and
    the environment is left as it was found (the CLI may be called as a function)."""
    was_set = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        yield
    finally:
        if not was_set:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 fine, 1 problems found, 2 bad input)."""
    try:
        with _quiet_tensorflow_start():
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

"""Where a checkpoint is: ``resolve_checkpoint`` and the ``checkpoint`` state file a
directory's latest checkpoint is named in (read and written without TensorFlow)."""

from __future__ import annotations

import logging
import os
import re
from typing import List, NamedTuple, Optional, Sequence

from partialsaver._files import filesystem_for, is_url, join, parent_of
from partialsaver._temporaries import write_bytes
from partialsaver.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    PartialSaverError,
    UsageError,
    format_items,
)
from partialsaver.format.fs import FileSystem
from partialsaver.format.index import read_index
from partialsaver.format.naming import data_path

_logger = logging.getLogger("partialsaver")

STATE_FILE = "checkpoint"
# "x.index" / "x.meta" / "x.data-00000-of-00001" name the prefix "x".
FILE_SUFFIX = re.compile(r"^(?P<prefix>.+?)\.(index|meta|data-\d{5}-of-\d{5})$")

__all__ = ["FILE_SUFFIX", "CheckpointState", "read_state", "record_latest", "resolve_checkpoint", "write_state"]


class CheckpointState(NamedTuple):
    """What a directory's ``checkpoint`` file says: the latest prefix and all kept ones, as written."""

    latest: str
    all: List[str]


_FIELD = re.compile(r'^\s*(?P<name>[a-z_]+)\s*:\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*$')
_ESCAPES = {
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
    "?": b"?",
}


def _unescape(text: str) -> str:
    """A protobuf text-format string (C escapes, octal for non-ASCII bytes) -> str."""
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        following = text[index + 1 : index + 2]
        octal = re.match(r"[0-7]{1,3}", text[index + 1 :])
        if octal:
            out.append(int(octal.group(0), 8) & 0xFF)
            index += 1 + len(octal.group(0))
        elif following == "x" and re.match(r"[0-9a-fA-F]{1,2}", text[index + 2 :]):
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[index + 2 :]).group(0)  # type: ignore[union-attr]
            out.append(int(digits, 16))
            index += 2 + len(digits)
        elif following in _ESCAPES:
            out += _ESCAPES[following]
            index += 2
        else:
            raise ValueError(f"unknown escape \\{following}")
    return out.decode("utf-8", "surrogateescape")


def _escape(text: str) -> str:
    """str -> a protobuf text-format string body, as TensorFlow writes it."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def read_state(fs: FileSystem, directory: str) -> Optional[CheckpointState]:
    """The state file of ``directory``, or None when there is none.

    Raises:
        CorruptCheckpointError: the file cannot be parsed.
    """
    path = join(directory, STATE_FILE)
    try:
        with fs.open(path, "rb") as file:
            text = file.read().decode("utf-8", "surrogateescape")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    latest, kept = "", []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or re.match(r"^\s*[a-z_]+\s*:\s*[-0-9.eE+]+\s*$", line):  # timestamps
            continue
        match = _FIELD.match(line)
        try:
            value = _unescape(match.group("value")) if match else None
        except ValueError:
            value = None
        if match is None or value is None:
            raise CorruptCheckpointError(
                f"the checkpoint state file {path!r} cannot be parsed (line {number}: {line.strip()[:80]!r}); "
                "delete it and pass a checkpoint prefix instead"
            )
        if match.group("name") == "model_checkpoint_path":
            latest = value
        elif match.group("name") == "all_model_checkpoint_paths":
            kept.append(value)
    return CheckpointState(latest, kept)


def write_state(fs: FileSystem, directory: str, names: Sequence[str]) -> None:
    """Write ``directory``'s state file naming ``names[-1]`` as latest (paths relative to the
    directory, as ``Saver(save_relative_paths=True)`` writes them), atomically where the file
    system allows."""
    lines = [f'model_checkpoint_path: "{_escape(names[-1])}"']
    lines += [f'all_model_checkpoint_paths: "{_escape(name)}"' for name in names]
    write_bytes(fs, join(directory, STATE_FILE), ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))


def record_latest(fs: FileSystem, destination: str) -> None:
    """Name ``destination`` in its directory's ``checkpoint`` state file, relative to it, so
    that ``tf.train.latest_checkpoint(dir)`` finds it from any working directory.

    A directory whose state file already names another checkpoint that exists (a training
    run's own, or the source) keeps it as latest, so that a resuming job is not silently
    pointed at the renamed copy; that is logged.
    """
    directory, name = parent_of(destination), os.path.basename(destination)
    try:
        state = read_state(fs, directory)
    except PartialSaverError:
        state = None  # an unreadable state file is replaced
    if state is not None and state.latest and os.path.basename(state.latest) != name:
        latest = state.latest if is_url(state.latest) or os.path.isabs(state.latest) else join(directory, state.latest)
        if fs.exists(latest + ".index"):
            _logger.warning(
                "%s names %s as its latest checkpoint; left unchanged: pass the prefix %s explicitly",
                join(directory, "checkpoint"),
                latest,
                destination,
            )
            return
    write_state(fs, directory, [name])


def _absolute(directory: str, path: str) -> str:
    if is_url(path) or os.path.isabs(path):
        return path
    return join(directory, path)


def _listing(fs: FileSystem, directory: str, limit: int = 8) -> str:
    try:
        entries = fs.listdir(directory)
    except (FileNotFoundError, OSError):
        return "it cannot be listed"
    return f"it holds {format_items(entries, limit)}" if entries else "it is empty"


def _prefixes_in(fs: FileSystem, directory: str) -> List[str]:
    try:
        entries = fs.listdir(directory)
    except (FileNotFoundError, OSError):
        return []
    return sorted(join(directory, entry[: -len(".index")]) for entry in entries if entry.endswith(".index"))


def _check_data_files(fs: FileSystem, prefix: str) -> None:
    """Every data file the index names exists (a copy that left one behind fails here)."""
    header = read_index(prefix, fs)[0]
    absent = [data_path(prefix, shard, header.num_shards) for shard in range(header.num_shards)]
    absent = [path for path in absent if not fs.exists(path)]
    if absent:
        names = [os.path.basename(path) for path in absent]
        raise CheckpointNotFoundError(
            f"checkpoint {prefix!r} is missing {len(absent)} of its {header.num_shards} data file(s): "
            f"{format_items(names)}; the files of a prefix belong together: copy all of them"
        )


def _from_state_file(fs: FileSystem, directory: str) -> str:
    state_path = join(directory, STATE_FILE)
    state = read_state(fs, directory)
    if state is None or not state.latest:
        raise CorruptCheckpointError(
            f"the checkpoint state file {state_path!r} names no checkpoint; pass a prefix instead"
        )
    prefix = _absolute(directory, state.latest)
    if fs.exists(prefix + ".index"):
        return prefix
    # A directory that was moved keeps absolute paths to its old place in the state file.
    moved = join(directory, os.path.basename(state.latest))
    if fs.exists(moved + ".index"):
        _logger.info("state file %s points to %s; using %s found next to it", state_path, prefix, moved)
        return moved
    found = _prefixes_in(fs, directory)
    hint = (
        f"pass one of the prefixes found there: {format_items(found)}"
        if found
        else "no checkpoint prefix is left there"
    )
    raise CheckpointNotFoundError(
        f"the checkpoint state file {state_path!r} points to {prefix!r}, which does not exist (deleted?); {hint}"
    )


def _from_directory(fs: FileSystem, path: str) -> str:
    if fs.exists(join(path, STATE_FILE)):
        return _from_state_file(fs, path)
    found = _prefixes_in(fs, path)
    if found:
        raise CheckpointNotFoundError(
            f"directory {path!r} has no 'checkpoint' state file, so its latest checkpoint "
            f"is unknown; pass one of the prefixes found there: {format_items(found)}"
        )
    raise CheckpointNotFoundError(
        f"directory {path!r} holds no checkpoint ({_listing(fs, path)}); "
        "pass the directory a Saver wrote to, or a checkpoint prefix"
    )


def _not_found(fs: FileSystem, path: str, prefix: str) -> CheckpointNotFoundError:
    parent = parent_of(prefix)
    if not fs.isdir(parent):
        where = f"the directory {parent!r} does not exist"
    else:
        near = _prefixes_in(fs, parent)
        where = f"prefixes in {parent!r}: {format_items(near)}" if near else f"in {parent!r} {_listing(fs, parent)}"
    return CheckpointNotFoundError(
        f"no checkpoint at {path!r} ({prefix + '.index'!r} does not exist); {where}. "
        "Pass a checkpoint directory or prefix (the path without .index / .data-*)"
    )


def resolve_checkpoint(path: "str | os.PathLike[str]") -> str:
    """The checkpoint prefix for a directory, a prefix, or a file of a checkpoint.

    A directory (or its ``checkpoint`` state file) resolves to its latest checkpoint; a
    path ending in ``.index``, ``.meta`` or ``.data-00000-of-00001`` to its prefix.

    Raises:
        CheckpointNotFoundError: nothing there; the message says what was found instead.
        CorruptCheckpointError: a file of a checkpoint that is not one.
        UsageError: ``path`` is not a string or path.

    Example:
        >>> resolve_checkpoint("train_dir")                    # doctest: +SKIP
        'train_dir/model.ckpt-1000'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"a checkpoint path must be a str or os.PathLike, not {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise CheckpointNotFoundError("the checkpoint path is empty; pass a directory or a checkpoint prefix")
    fs = filesystem_for(path)
    match = FILE_SUFFIX.match(path)
    prefix = match.group("prefix") if match else path
    # The index first: on file systems without real directories (ram://, object stores)
    # a prefix is also a "directory" of the files that start with it.
    if fs.exists(prefix + ".index"):
        _check_data_files(fs, prefix)
        return prefix
    if os.path.basename(path.rstrip("/")) == STATE_FILE and fs.exists(path) and not fs.isdir(path):
        path = parent_of(path)  # the state file itself: its directory's latest
    if fs.isdir(path):
        prefix = _from_directory(fs, path)
        _check_data_files(fs, prefix)
        return prefix
    if match is None and fs.exists(path):
        raise CorruptCheckpointError(
            f"{path!r} is a file without a {os.path.basename(path)}.index next to it: not a TensorFlow V2 "
            "checkpoint (a V1 checkpoint, or not a checkpoint at all): re-save it, or pass the prefix of a V2 one"
        )
    raise _not_found(fs, path, prefix)

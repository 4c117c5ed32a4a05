"""Temporaries, one policy: how partialsaver names them, writes through them, and removes
what killed runs left behind.

partialsaver names its own ``<target>.partialsaver-tmp-<host>-<pid>-<random>`` and removes
one when its process is gone (asked on this host, without signalling it) or, when another
host wrote it to a shared file system, when it is a day old. TensorFlow's Saver names its
partial files ``<target>.tempstate<random>``; those are removed when ten minutes old.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time
import uuid
from typing import Any, List

from partialsaver._files import has_atomic_replace, join
from partialsaver.format.fs import FileSystem

_logger = logging.getLogger("partialsaver")

TEMP_MARK = ".partialsaver-tmp-"
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
# A partialsaver temporary of another host (a shared file system) this old belongs to no live run.
STALE_FOREIGN_SECONDS = 24 * 3600
# TensorFlow's Saver writes "<file>.tempstate<random>" and renames it when complete; one untouched
# this long belongs to no live save.
STALE_TEMPSTATE_SECONDS = 600

__all__ = ["TEMP_MARK", "process_alive", "remove_stale_temporaries", "temp_path", "write_bytes"]


def temp_path(target: str) -> str:
    """A temporary name next to ``target``: host and pid say whose it is (see the module doc)."""
    return f"{target}{TEMP_MARK}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_bytes(fs: FileSystem, path: str, data: bytes) -> None:
    """Write a small file so that a reader sees the old or the new content: through a
    temporary and an atomic replace where the file system has one; elsewhere (object stores,
    where a single object appears whole when written) directly."""
    if not has_atomic_replace(fs, path):
        with fs.open(path, "wb") as file:
            file.write(data)
        return
    temporary = temp_path(path)
    try:
        with fs.open(temporary, "wb") as file:
            file.write(data)
            _flush_to_disk(file)
        fs.replace(temporary, path)
    except BaseException:
        _remove_quietly(fs, temporary)
        raise


def _flush_to_disk(file: Any) -> None:
    """Data on disk before the rename that publishes it (a crash must not publish zeros)."""
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        return
    try:
        file.flush()
        os.fsync(fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not a real file
        pass


def _remove_quietly(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        fs.remove(path)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running, without signalling it.

    On Windows ``os.kill(pid, 0)`` terminates the process, so there the process is opened
    for a query of its exit code instead.
    """
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: nothing is delivered, only the existence check runs
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _windows_process_alive(pid: int) -> bool:
    import ctypes

    query_limited_information, still_active = 0x1000, 259
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


_OWN_TEMP = re.compile(re.escape(TEMP_MARK) + r"(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _stale(fs: FileSystem, path: str, name: str, now: float) -> bool:
    match = _OWN_TEMP.search(name)
    if match is not None:
        if match.group("host") == _HOST:
            return not process_alive(int(match.group("pid")))
        return _age(fs, path, now) > STALE_FOREIGN_SECONDS
    if ".tempstate" in name:
        return _age(fs, path, now) > STALE_TEMPSTATE_SECONDS
    return False


def _age(fs: FileSystem, path: str, now: float) -> float:
    mtime = getattr(fs, "mtime", None)
    try:
        modified = mtime(path) if mtime is not None else os.path.getmtime(path)
    except (OSError, ValueError, NotImplementedError):
        return 0.0
    return now - modified


def remove_stale_temporaries(fs: FileSystem, directory: str, name_prefix: str = "") -> List[str]:
    """Delete the temporaries of killed runs in ``directory`` whose names start with
    ``name_prefix`` (see the module doc for the policy); return the paths removed."""
    try:
        names = fs.listdir(directory)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    now = time.time()
    removed = []
    for name in names:
        if not name.startswith(name_prefix) or (TEMP_MARK not in name and ".tempstate" not in name):
            continue
        path = join(directory, name)
        if _stale(fs, path, name, now):
            _logger.info("removing %s, left by an interrupted run", path)
            _remove_quietly(fs, path)
            removed.append(path)
    return removed

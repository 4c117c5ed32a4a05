"""Which file system a path lives on, for the offline tools.

Local paths use ``os``. A URL (``gs://``, ``s3://``, ``ram://``, ``memory://``, ...) goes
through ``fsspec`` when it is installed and knows the protocol, else through TensorFlow's
``tf.io.gfile`` when TensorFlow is installed; ``ram://`` is TensorFlow's own and always
goes there. Neither is imported for a local path. Each adapter provides the FileSystem
seam of ``partialsaver.format.fs``.
"""

from __future__ import annotations

import errno
import os
import posixpath
from typing import IO, Any, List, cast

from partialsaver.errors import CorruptCheckpointError, UsageError
from partialsaver.format.fs import LOCAL, FileSystem

# Protocols only TensorFlow knows (fsspec has its own "memory://", not TensorFlow's "ram://").
_TENSORFLOW_ONLY = frozenset({"ram"})

__all__ = [
    "FsspecFileSystem",
    "GfileFileSystem",
    "copy_bytes",
    "filesystem_for",
    "has_atomic_replace",
    "is_url",
    "join",
    "parent_of",
]


def is_url(path: str) -> bool:
    return "://" in path


def join(directory: str, name: str) -> str:
    return posixpath.join(directory, name) if is_url(directory) else os.path.join(directory, name)


def parent_of(path: str) -> str:
    if is_url(path):
        return posixpath.dirname(path.rstrip("/"))
    return os.path.dirname(path) or "."


def filesystem_for(path: str) -> FileSystem:
    """The file system ``path`` lives on.

    Raises:
        UsageError: a URL whose protocol neither fsspec nor TensorFlow can handle here.
    """
    if not is_url(path):
        return LOCAL
    protocol = path.split("://", 1)[0]
    if protocol not in _TENSORFLOW_ONLY:
        fsspec_fs = _fsspec_for(protocol)
        if fsspec_fs is not None:
            return FsspecFileSystem(fsspec_fs, protocol)
    gfile = _tensorflow_gfile()
    if gfile is not None:
        return GfileFileSystem(gfile)
    raise UsageError(
        f"cannot open {path!r}: no installed file system handles {protocol}://; install fsspec with the "
        f"package for it (pip install 'partialsaver[fsspec]', plus gcsfs / s3fs / ...) or TensorFlow"
    )


def _fsspec_for(protocol: str) -> Any:
    try:
        import fsspec
    except ImportError:
        return None
    try:
        return fsspec.filesystem(protocol)
    except (ImportError, ValueError):  # an unknown protocol, or its package (gcsfs, s3fs) is missing
        return None


def _tensorflow_gfile() -> Any:
    try:
        from partialsaver._tf import tf
    except ImportError:
        return None
    return tf.io.gfile


class GfileFileSystem:
    """The FileSystem seam over TensorFlow's ``tf.io.gfile`` (gs://, s3://, ram://, ...)."""

    def __init__(self, gfile: Any) -> None:
        self._gfile = gfile
        from partialsaver._tf import tf

        self._errors = tf.errors

    atomic_replace = False  # asked per path: see has_atomic_replace

    def has_atomic_replace(self, path: str) -> bool:
        # TensorFlow asks the file system itself (a local disk: yes; GCS, S3, ram://: no).
        try:
            from tensorflow.python.lib.io import file_io

            return bool(file_io.has_atomic_move(path))
        except (ImportError, AttributeError):  # pragma: no cover - a TensorFlow without it
            return False

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        # GFile opens lazily: a missing file would only fail on the first read.
        if mode == "rb" and (not self._gfile.exists(path) or self._gfile.isdir(path)):
            raise FileNotFoundError(path)
        file = self._gfile.GFile(path, mode)
        if "w" not in mode:
            return file
        file.write(b"")  # GFile creates the file on its first write: an empty data file must exist too
        return cast(IO[bytes], _BytesWriter(file))

    def exists(self, path: str) -> bool:
        return bool(self._gfile.exists(path))

    def isdir(self, path: str) -> bool:
        return bool(self._gfile.isdir(path))

    def size(self, path: str) -> int:
        try:
            return int(self._gfile.stat(path).length)
        except self._errors.NotFoundError as error:
            raise FileNotFoundError(path) from error

    def listdir(self, path: str) -> List[str]:
        try:
            return sorted(name.rstrip("/") for name in self._gfile.listdir(path))
        except self._errors.NotFoundError as error:
            raise FileNotFoundError(path) from error

    def glob(self, pattern: str) -> List[str]:
        try:
            return sorted(self._gfile.glob(pattern))
        except self._errors.NotFoundError:
            return []

    def remove(self, path: str) -> None:
        try:
            self._gfile.remove(path)
        except self._errors.NotFoundError as error:
            raise FileNotFoundError(path) from error

    def replace(self, src: str, dst: str) -> None:
        self._gfile.rename(src, dst, overwrite=True)

    def link(self, src: str, dst: str) -> bool:
        return False

    def makedirs(self, path: str) -> None:
        self._gfile.makedirs(path)

    def copy(self, src: str, dst: str) -> None:
        self._gfile.copy(src, dst, overwrite=True)

    def mtime(self, path: str) -> float:
        return float(self._gfile.stat(path).mtime_nsec) / 1e9


class _BytesWriter:
    """A GFile for writing that takes any bytes-like object (GFile.write wants bytes)."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: Any) -> int:
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._file.write(chunk)
        return len(chunk)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "_BytesWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FsspecFileSystem:
    """The FileSystem seam over an ``fsspec`` file system (memory://, gs:// with gcsfs, ...)."""

    atomic_replace = False  # object stores copy then delete; in memory, moves are not promised atomic

    def __init__(self, fs: Any, protocol: str) -> None:
        self._fs = fs
        self._protocol = protocol

    def has_atomic_replace(self, path: str) -> bool:
        return False

    def _url(self, path: str) -> str:
        # fsspec lists paths without their protocol; hand back what callers gave.
        return path if is_url(path) else f"{self._protocol}://{path.lstrip('/')}"

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        if mode == "rb" and not self._fs.isfile(path):
            raise FileNotFoundError(path)
        return self._fs.open(path, mode)

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(path))

    def isdir(self, path: str) -> bool:
        return bool(self._fs.isdir(path))

    def size(self, path: str) -> int:
        if not self._fs.isfile(path):
            raise FileNotFoundError(path)
        return int(self._fs.size(path))

    def listdir(self, path: str) -> List[str]:
        if not self._fs.isdir(path):
            raise FileNotFoundError(path)
        return sorted(posixpath.basename(entry.rstrip("/")) for entry in self._fs.ls(path, detail=False))

    def glob(self, pattern: str) -> List[str]:
        return sorted(self._url(found) for found in self._fs.glob(pattern))

    def remove(self, path: str) -> None:
        if not self._fs.isfile(path):
            raise FileNotFoundError(path)
        self._fs.rm(path)

    def replace(self, src: str, dst: str) -> None:
        self._fs.mv(src, dst)

    def link(self, src: str, dst: str) -> bool:
        return False

    def makedirs(self, path: str) -> None:
        self._fs.makedirs(path, exist_ok=True)

    def copy(self, src: str, dst: str) -> None:
        self._fs.copy(src, dst)

    def mtime(self, path: str) -> float:
        modified = self._fs.modified(path)
        return modified.timestamp()


def has_atomic_replace(fs: FileSystem, path: str) -> bool:
    """Whether replacing ``path`` is atomic there (a reader sees the old or the new file)."""
    asked = getattr(fs, "has_atomic_replace", None)
    return bool(asked(path)) if asked is not None else bool(getattr(fs, "atomic_replace", False))


_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM}


def _is_real_file(target: Any) -> bool:
    """Whether ``target`` has a file descriptor (a zip member, a GFile do not)."""
    try:
        target.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _kernel_copy(path: str, start: int, end: int, target: Any) -> int:
    """Copy bytes [start, end) of ``path`` to the end of ``target`` in the kernel; return
    where it stopped (``start`` when the kernel cannot: another file system, an old kernel)."""
    target.flush()
    source_fd = os.open(path, os.O_RDONLY)
    position = start
    try:
        while position < end:
            copied = os.copy_file_range(source_fd, target.fileno(), end - position, position)
            if copied <= 0:
                break  # the file ends early: the chunked copy below says so
            position += copied
    except OSError as error:
        if error.errno not in _NO_KERNEL_COPY:
            raise
    finally:
        os.close(source_fd)
        target.seek(0, os.SEEK_END)
    return position


def copy_bytes(
    source_fs: FileSystem, path: str, start: int, end: int, target: Any, target_fs: FileSystem, chunk: int
) -> None:
    """Append bytes [start, end) of ``path`` to the open file ``target``: in the kernel
    (``copy_file_range``, nothing through this process) between two local files where it can,
    else in chunks of ``chunk`` bytes.

    Raises:
        CorruptCheckpointError: ``path`` ends before ``end``.
    """
    position = start
    if source_fs is LOCAL and target_fs is LOCAL and hasattr(os, "copy_file_range") and _is_real_file(target):
        position = _kernel_copy(path, start, end, target)
    if position == end:
        return
    with source_fs.open(path, "rb") as stream:
        stream.seek(position)
        while position < end:
            data = stream.read(min(chunk, end - position))
            if not data:
                raise CorruptCheckpointError(f"Corrupt file {path}: it ends before byte {end}. Re-copy it.")
            target.write(data)
            position += len(data)

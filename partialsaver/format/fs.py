"""The file-system seam: every file this package touches goes through a ``FileSystem``.

:data:`LOCAL` works on local paths with ``os``. To read or write ``gs://``, ``ram://``
or ``memory://`` checkpoints, pass an object with the :class:`FileSystem` methods
(for instance an adapter over ``tf.io.gfile`` or ``fsspec``) as ``fs=``. Paths are
``str`` and handed to the file system unchanged; this package only appends
suffixes (``.index``, ``.data-00000-of-00001``) to them.

An adapter must raise ``FileNotFoundError`` for a missing path (``tf.io.gfile``
raises ``tf.errors.NotFoundError``: translate it), and the files it opens for
writing get bytes-like objects (``memoryview``, ``bytes``) in ``write``; files
opened for reading need ``read``, ``seek`` and, optionally, ``readinto``. It may add a ``mmap(path)``
method returning a read-only buffer of the whole file (or None), which readers then
use instead of ``open(path, "rb")`` + ``seek`` / ``read``.
"""

from __future__ import annotations

import contextlib
import errno
import glob as _glob
import mmap as _mmap
import os
from typing import IO, Any, List, Optional

import numpy as np

try:  # Python 3.8+: typing.Protocol.
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol, runtime_checkable  # type: ignore

__all__ = ["LOCAL", "FileSystem", "LocalFileSystem", "RandomAccessFile", "open_random_access"]


@runtime_checkable
class FileSystem(Protocol):
    """What the readers and writers need from a file system.

    Attributes:
        atomic_replace: True when :meth:`replace` swaps ``dst`` atomically (a
            reader sees the old file or the new one, never a mix): POSIX ``rename``.
            Object stores copy then delete, and should say False.
    """

    atomic_replace: bool

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        """Open a file as a binary file object; ``mode`` is ``"rb"`` or ``"wb"``."""

    def exists(self, path: str) -> bool:
        """Whether a file or directory exists at ``path``."""

    def isdir(self, path: str) -> bool:
        """Whether ``path`` is a directory."""

    def size(self, path: str) -> int:
        """Size of the file in bytes; raises ``FileNotFoundError`` when missing."""

    def listdir(self, path: str) -> List[str]:
        """Names (not paths) of the entries of a directory."""

    def glob(self, pattern: str) -> List[str]:
        """Paths matching a shell pattern (``*``, ``?``, ``[...]``), sorted."""

    def remove(self, path: str) -> None:
        """Delete a file; raises ``FileNotFoundError`` when missing."""

    def replace(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``, overwriting ``dst`` (atomically when ``atomic_replace``)."""

    def link(self, src: str, dst: str) -> bool:
        """Make ``dst`` a hard link to ``src``; return False where links are not supported."""

    def makedirs(self, path: str) -> None:
        """Create a directory and its parents; no error if it exists."""


class LocalFileSystem:
    """:class:`FileSystem` over local paths with ``os``; reads memory-map files."""

    atomic_replace = True

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        if mode not in ("rb", "wb"):
            raise ValueError(f"mode must be 'rb' or 'wb', not {mode!r}")
        return open(path, mode)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def listdir(self, path: str) -> List[str]:
        return sorted(os.listdir(path))

    def glob(self, pattern: str) -> List[str]:
        return sorted(_glob.glob(pattern))

    def remove(self, path: str) -> None:
        os.remove(path)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def link(self, src: str, dst: str) -> bool:
        try:
            os.link(src, dst)
        except (NotImplementedError, PermissionError):
            return False
        except OSError as error:
            # EXDEV (another device), EPERM / EOPNOTSUPP (fs without hard links).
            if error.errno in (errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP):
                return False
            raise
        return True

    def makedirs(self, path: str) -> None:
        if path:
            os.makedirs(path, exist_ok=True)

    def mmap(self, path: str) -> Optional[Any]:
        """Return a read-only memory map of the whole file, or None when it cannot be mapped.

        An empty file cannot be mapped (None); a missing one raises ``FileNotFoundError``.
        """
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                return None
            try:
                return _mmap.mmap(file.fileno(), 0, access=_mmap.ACCESS_READ)
            except (OSError, ValueError):  # A pipe, a special file, no address space.
                return None


LOCAL = LocalFileSystem()


class RandomAccessFile:
    """Reads byte ranges of one file, from a memory map when the file system offers one.

    Use :func:`open_random_access` to get one. ``read`` returns a numpy uint8 array:
    a zero-copy view of the map (do not keep it: :meth:`close` cannot unmap under a
    live view, and then leaves unmapping to the garbage collector) or a fresh
    buffer. ``readinto`` copies into a caller's array.
    """

    def __init__(self, path: str, size: int, mapped: Optional[Any], stream: Optional[IO[bytes]]) -> None:
        self.path = path
        self.size = size
        self._mapped = mapped
        self._array = np.frombuffer(mapped, dtype=np.uint8) if mapped is not None else None
        self._stream = stream

    def read(self, offset: int, length: int) -> np.ndarray:
        """Return up to ``length`` bytes at ``offset`` (fewer only at the end of the file)."""
        if offset >= self.size or length <= 0:
            return np.zeros(0, dtype=np.uint8)
        length = min(length, self.size - offset)
        if self._array is not None:
            return self._array[offset : offset + length]
        out = np.empty(length, dtype=np.uint8)
        return out[: self.readinto(offset, out)]

    def readinto(self, offset: int, out: np.ndarray) -> int:
        """Copy the bytes at ``offset`` into the uint8 array ``out``; return how many were copied."""
        if self._array is not None:
            chunk = self._array[offset : offset + out.size] if offset < self.size else self._array[:0]
            out[: chunk.size] = chunk
            return int(chunk.size)
        if self._stream is None:  # An empty file.
            return 0
        self._stream.seek(offset)
        view = out.data.cast("B")
        stream_readinto = getattr(self._stream, "readinto", None)  # GFile has only read().
        filled = 0
        while filled < out.size:
            if stream_readinto is not None:
                count = stream_readinto(view[filled:])
            else:
                data = self._stream.read(out.size - filled)
                count = len(data)
                view[filled : filled + count] = data
            if not count:
                break
            filled += count
        return filled

    def release(self, offset: int, length: int) -> None:
        """Let the pages of ``[offset, offset + length)`` go from this process's memory.

        Pages of a memory-mapped file that were read stay resident (and count in the
        process's RSS) until the map is closed; after a streamed copy of a tensor that would
        be the whole file. They are file-backed and read-only, so dropping them is safe: a
        later read faults them in again from the page cache.
        """
        madvise = getattr(self._mapped, "madvise", None)
        if madvise is None or not hasattr(_mmap, "MADV_DONTNEED"):
            return
        start = -(-offset // _mmap.PAGESIZE) * _mmap.PAGESIZE  # whole pages inside the range only
        stop = min(offset + length, self.size) // _mmap.PAGESIZE * _mmap.PAGESIZE
        if stop > start:
            madvise(_mmap.MADV_DONTNEED, start, stop - start)

    def close(self) -> None:
        """Release the map or stream (idempotent)."""
        self._array = None
        if self._mapped is not None:
            with contextlib.suppress(BufferError):  # A caller holds a view: it closes when collected.
                self._mapped.close()
            self._mapped = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def open_random_access(fs: FileSystem, path: str) -> RandomAccessFile:
    """Open ``path`` for random reads through ``fs``.

    Raises:
        FileNotFoundError: No file at ``path``.
    """
    mapper = getattr(fs, "mmap", None)
    if mapper is not None:
        mapped = mapper(path)
        if mapped is not None:
            return RandomAccessFile(path, len(mapped), mapped, None)
    size = fs.size(path)
    stream = fs.open(path, "rb") if size else None
    return RandomAccessFile(path, size, None, stream)

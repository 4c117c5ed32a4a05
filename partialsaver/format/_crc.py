"""CRC-32C as TensorFlow stores it: computed by ``google-crc32c``, stored masked.

TensorFlow (like LevelDB) never stores a raw crc next to the data it covers: a crc
of data that itself holds crcs is weak, so stored values are rotated and offset
("masked").
"""

from __future__ import annotations

from typing import Any

try:
    import google_crc32c as _google_crc32c
except ImportError as error:  # pragma: no cover - exercised only in a broken install
    raise ImportError(
        "partialsaver.format needs the google-crc32c package to check TensorFlow checkpoints: pip install google-crc32c"
    ) from error

__all__ = ["extend", "mask", "unmask", "value"]

_MASK_DELTA = 0xA282EAD8
_UINT32 = 0xFFFFFFFF


def value(data: Any) -> int:
    """Return the crc32c of ``data`` (bytes or a C-contiguous numpy array)."""
    return _google_crc32c.value(data)


def extend(crc: int, data: Any) -> int:
    """Return ``crc`` extended over ``data`` (bytes or a C-contiguous numpy array)."""
    return _google_crc32c.extend(crc, data)


def mask(crc: int) -> int:
    """Return the stored (masked) form of a crc32c."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _UINT32


def unmask(masked_crc: int) -> int:
    """Return the crc32c that a stored (masked) value stands for."""
    rotated = (masked_crc - _MASK_DELTA) & _UINT32
    return ((rotated >> 17) | (rotated << 15)) & _UINT32

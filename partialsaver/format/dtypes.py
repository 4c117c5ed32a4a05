"""TensorFlow DataType enum numbers, TensorFlow dtype names and numpy dtypes.

Names are TensorFlow's Python names (``tf.float16.name == "float16"``, so DT_HALF
is ``"float16"``). bfloat16, the float8 / float4 types and the 4- and 2-bit integers
get their numpy dtype from ``ml_dtypes``, imported only when such a dtype is asked
for (it costs ~80 ms). Without ``ml_dtypes`` their names, enums and element sizes
are still known, so their bytes can be listed, verified and copied; only turning
them into numpy values raises :class:`UnsupportedCheckpointError`.

The quantized types (qint8, quint8, qint16, quint16, qint32) map to the plain
numpy integer of the same width; pass ``dtype="qint8"`` etc. to the writer to
store one.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Union, cast

import numpy as np

from partialsaver.errors import UsageError
from partialsaver.format.errors import UnsupportedCheckpointError

__all__ = [
    "BFLOAT16",
    "RESOURCE",
    "STRING",
    "VARIANT",
    "DType",
    "dtype_enum",
    "dtype_name",
    "enum_for_array",
    "itemsize",
    "lookup",
    "numpy_dtype",
]

STRING = 7
BFLOAT16 = 14
RESOURCE = 20
VARIANT = 21


class DType(NamedTuple):
    """One TensorFlow dtype.

    Attributes:
        enum: The DataType enum number stored in an index entry.
        name: TensorFlow's Python name.
        itemsize: Bytes per element in a data file, or None when elements have no
            fixed size (string, variant) or cannot be saved (resource).
        numpy: numpy dtype string, ``"ml_dtypes.<name>"`` for an ml_dtypes type, or
            None when there is no numpy form.
    """

    enum: int
    name: str
    itemsize: Optional[int]
    numpy: Optional[str]


_ALL = (
    DType(1, "float32", 4, "<f4"),
    DType(2, "float64", 8, "<f8"),
    DType(3, "int32", 4, "<i4"),
    DType(4, "uint8", 1, "u1"),
    DType(5, "int16", 2, "<i2"),
    DType(6, "int8", 1, "i1"),
    DType(STRING, "string", None, "O"),
    DType(8, "complex64", 8, "<c8"),
    DType(9, "int64", 8, "<i8"),
    DType(10, "bool", 1, "?"),
    DType(11, "qint8", 1, "i1"),
    DType(12, "quint8", 1, "u1"),
    DType(13, "qint32", 4, "<i4"),
    DType(BFLOAT16, "bfloat16", 2, "ml_dtypes.bfloat16"),
    DType(15, "qint16", 2, "<i2"),
    DType(16, "quint16", 2, "<u2"),
    DType(17, "uint16", 2, "<u2"),
    DType(18, "complex128", 16, "<c16"),
    DType(19, "float16", 2, "<f2"),
    DType(RESOURCE, "resource", None, None),
    DType(VARIANT, "variant", None, None),
    DType(22, "uint32", 4, "<u4"),
    DType(23, "uint64", 8, "<u8"),
    DType(24, "float8_e5m2", 1, "ml_dtypes.float8_e5m2"),
    DType(25, "float8_e4m3fn", 1, "ml_dtypes.float8_e4m3fn"),
    DType(26, "float8_e4m3fnuz", 1, "ml_dtypes.float8_e4m3fnuz"),
    DType(27, "float8_e4m3b11fnuz", 1, "ml_dtypes.float8_e4m3b11fnuz"),
    DType(28, "float8_e5m2fnuz", 1, "ml_dtypes.float8_e5m2fnuz"),
    # TensorFlow keeps one element per byte for the sub-byte types (no packing).
    DType(29, "int4", 1, "ml_dtypes.int4"),
    DType(30, "uint4", 1, "ml_dtypes.uint4"),
    DType(31, "int2", 1, "ml_dtypes.int2"),
    DType(32, "uint2", 1, "ml_dtypes.uint2"),
    DType(33, "float4_e2m1fn", 1, "ml_dtypes.float4_e2m1fn"),
)

_BY_ENUM: Dict[int, DType] = {dtype.enum: dtype for dtype in _ALL}
_BY_NAME: Dict[str, DType] = {dtype.name: dtype for dtype in _ALL}
# Aliases a caller may reasonably pass.
_BY_NAME.update({"half": _BY_NAME["float16"], "float": _BY_NAME["float32"], "double": _BY_NAME["float64"]})

# The numpy dtypes a writer infers a TensorFlow dtype from (the quantized types
# share their numpy dtype with a plain integer and are never inferred).
_FROM_NUMPY: Dict[str, int] = {
    "float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "complex64": 8,
    "int64": 9, "bool": 10, "uint16": 17, "complex128": 18, "float16": 19, "uint32": 22,
    "uint64": 23,
}  # fmt: skip
_FROM_NUMPY.update({dtype.name: dtype.enum for dtype in _ALL if dtype.numpy and dtype.numpy.startswith("ml_dtypes.")})

_ML_DTYPES_FIX = "Install ml_dtypes (pip install ml_dtypes) to get numpy values; its raw bytes can be copied without it"


def lookup(enum: int) -> DType:
    """Return the :class:`DType` of a DataType enum number.

    Raises:
        UnsupportedCheckpointError: An enum number this module does not know.
    """
    dtype = _BY_ENUM.get(enum)
    if dtype is None:
        raise UnsupportedCheckpointError(
            f"Unknown TensorFlow DataType enum {enum}: written by a newer TensorFlow, or a damaged "
            f"index. Read it with the TensorFlow that wrote it."
        )
    return dtype


def dtype_name(enum: int) -> str:
    """Return TensorFlow's name (``"float32"``, ``"bfloat16"``, ``"string"``...) of an enum number."""
    return lookup(enum).name


def dtype_enum(dtype: Union[str, int, Any]) -> int:
    """Return the enum number of a TensorFlow dtype name, an enum number or a numpy dtype.

    Raises:
        UsageError: A name or numpy dtype with no TensorFlow dtype.
    """
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, bool):
        return lookup(int(dtype)).enum
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype].enum
    try:
        numpy = np.dtype(cast(Any, dtype))
    except TypeError:
        raise UsageError(f"Unknown dtype {dtype!r}: pass a TensorFlow dtype name such as 'float32'.") from None
    if numpy.kind in "OSU":
        return STRING
    enum = _FROM_NUMPY.get(numpy.name)
    if enum is None:
        raise UsageError(f"numpy dtype {numpy} has no TensorFlow checkpoint dtype.")
    return enum


def itemsize(enum: int) -> Optional[int]:
    """Return the bytes per element of a dtype, or None for string / variant / resource."""
    return lookup(enum).itemsize


def numpy_dtype(enum: int) -> np.dtype:
    """Return the numpy dtype that holds values of a TensorFlow dtype (little-endian).

    Raises:
        UnsupportedCheckpointError: variant / resource (no numpy form), or an
            ml_dtypes type while ml_dtypes is not installed.
    """
    dtype = lookup(enum)
    if dtype.numpy is None:
        raise UnsupportedCheckpointError(
            f"TensorFlow dtype {dtype.name} has no numpy form. Copy its raw bytes instead (read_raw / add_raw)."
        )
    if not dtype.numpy.startswith("ml_dtypes."):
        return np.dtype(dtype.numpy)
    try:
        import ml_dtypes  # Deferred: only bfloat16 / float8 / int4 tensors pay for it.
    except ImportError:
        raise UnsupportedCheckpointError(f"TensorFlow dtype {dtype.name} needs ml_dtypes. {_ML_DTYPES_FIX}.") from None
    return np.dtype(getattr(ml_dtypes, dtype.name))


def enum_for_array(array: np.ndarray, dtype: Union[str, int, None] = None) -> int:
    """Return the enum number to store ``array`` as: ``dtype`` if given, else inferred.

    An explicit ``dtype`` must match the array's dtype (a quantized type matches the
    plain integer of its width), or the array must be a raw carrier of its bits: an
    unsigned-integer or void array of the same element size (so bfloat16 bits can be
    stored from a uint16 array without ml_dtypes). Values are never cast.

    Raises:
        UsageError: No TensorFlow dtype for the array, or an array that does not hold
            ``dtype`` values.
    """
    if dtype is None:
        return dtype_enum(array.dtype)
    wanted = lookup(dtype_enum(dtype))
    if wanted.enum == STRING or array.dtype.kind in "OSU":
        if wanted.enum == STRING and array.dtype.kind in "OSU":
            return STRING
        raise UsageError(f"Cannot store a {array.dtype} array as {wanted.name}.")
    if wanted.itemsize is None:
        raise UsageError(f"TensorFlow dtype {wanted.name} cannot be written from a numpy array.")
    same_values = (wanted.numpy or "").startswith("ml_dtypes.") and array.dtype.name == wanted.name
    if not same_values and wanted.numpy and not wanted.numpy.startswith("ml_dtypes."):
        same_values = np.dtype(wanted.numpy) == array.dtype.newbyteorder("<")
    raw_bits = array.dtype.kind in "uV" and array.dtype.itemsize == wanted.itemsize
    if not (same_values or raw_bits):
        raise UsageError(
            f"Cannot store a {array.dtype} array as {wanted.name}: cast it first (array.astype), or pass "
            f"its bits as a {wanted.itemsize}-byte unsigned integer array."
        )
    return wanted.enum

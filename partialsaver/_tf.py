"""The one place partialsaver imports TensorFlow, with a clear message when it is absent."""

from __future__ import annotations

_INSTALL_HINT = (
    "partialsaver needs TensorFlow >= 2.13, which is not installed in this Python "
    "environment. Install it with the extra that matches your build: "
    "pip install 'partialsaver[tf-cpu]' (CPU-only) or pip install 'partialsaver[tf]'."
)

try:
    import tensorflow as tf
except ImportError as import_error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(_INSTALL_HINT) from import_error

# Private, but the only way to hand a callable filter "the one PartitionedVariable"
# (see selection.py): tf.compat.v1 does not export the class.
try:
    from tensorflow.python.ops.variables import PartitionedVariable
except ImportError:  # pragma: no cover - a future TensorFlow that moved it
    PartitionedVariable = None

v1 = tf.compat.v1

__all__ = ["PartitionedVariable", "tf", "v1"]

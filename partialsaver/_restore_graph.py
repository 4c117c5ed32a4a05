"""The restore graph SmartSaver builds: every key read before any variable is assigned.

One ``RestoreV2`` op per device that holds restored variables reads that device's keys (on
the CPU of the variable's job and task, so a parameter server reads its own tensors as
TensorFlow's sharded Saver does); then one assignment per variable (or partition slice),
each gated on *every* read, grouped under one op. A read error on any device therefore fails
before any assignment runs: a restore is all or nothing across shards, devices and tasks.

tf.compat.v1.train.Saver builds more (the whole save graph, an Identity per variable, one
Saver per distinct key when a key feeds several variables) and, when sharded, assigns each
device's variables as soon as that device's read is done, so a damaged shard leaves the
other devices restored. The lean graph has about half the ops to prepare on the first run.
"""

from __future__ import annotations

from typing import Any, Collection, Dict, List, Sequence, Tuple

from partialsaver._tf import tf, v1
from partialsaver.names import GraphVariable

Pairs = Sequence[Tuple[str, GraphVariable]]

__all__ = ["build_restore", "read_device"]


def _is_ref(variable: Any) -> bool:
    return tf.as_dtype(variable.dtype) != tf.as_dtype(variable.dtype).base_dtype


def _tf_variable(part: Any) -> Any:
    """The tf.Variable to assign: the part itself, or what a Keras 3 variable wraps."""
    if isinstance(part, tf.Variable):
        return part
    return part.value


def read_device(variable_device: str) -> str:
    """Where to read a variable's tensors: the CPU of its job and task (its host)."""
    spec = tf.DeviceSpec.from_string(variable_device or "")
    return spec.replace(device_type="CPU", device_index=0).to_string()


def build_restore(pairs: Pairs, reshaped: Collection[str] = ()) -> Tuple[str, str]:
    """(restore op name, filename placeholder name) for the pairs, in the default graph.

    Args:
        pairs: (stored checkpoint key, graph variable) to restore; a key may feed several.
        reshaped: graph names whose stored tensor has the variable's element count but
            another shape (``reshape=True``): their value is reshaped before the assignment.
    """
    reads: Dict[str, Dict[Tuple[str, str], int]] = {}
    dtypes: Dict[str, List[Any]] = {}
    targets: List[Tuple[Any, str, int, bool]] = []
    for key, graph_variable in pairs:
        for part in graph_variable.parts:
            variable = _tf_variable(part)
            info = variable._get_save_slice_info() if graph_variable.partitioned else None
            spec = info.spec if info is not None else ""
            device = read_device(variable.device)
            entries = reads.setdefault(device, {})
            index = entries.setdefault((key, spec), len(entries))
            if index == len(dtypes.setdefault(device, [])):
                dtypes[device].append(tf.as_dtype(variable.dtype).base_dtype)
            targets.append((variable, device, index, graph_variable.name in reshaped))
    with tf.name_scope("partialsaver_restore"), tf.device(None):
        filename = v1.placeholder(tf.string, [], name="filename")
        values: Dict[str, Any] = {}
        for device, entries in reads.items():
            with tf.device(device):
                values[device] = tf.raw_ops.RestoreV2(
                    prefix=filename,
                    tensor_names=[key for key, _ in entries],
                    shape_and_slices=[spec for _, spec in entries],
                    dtypes=dtypes[device],
                )
        # With one read, every assignment already waits for it through its input.
        gate = [outputs[0].op for outputs in values.values()] if len(values) > 1 else []
        assigns = []
        with tf.control_dependencies(gate):
            for variable, device, index, reshape in targets:
                with tf.device(variable.device):
                    value = values[device][index]
                    if reshape:
                        value = tf.reshape(value, variable.shape)
                    if _is_ref(variable):
                        validate = variable.shape.is_fully_defined()
                        assigns.append(v1.assign(variable, value, validate_shape=validate).op)
                    else:
                        assigns.append(tf.raw_ops.AssignVariableOp(resource=variable.handle, value=value))
        restore = tf.group(*assigns, name="restore_all")
    return restore.name, filename.name

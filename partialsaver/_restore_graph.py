"""The restore graph SmartSaver builds: one RestoreV2 op reading every key once, then one
assignment per variable (or partition slice), grouped under one op.

tf.compat.v1.train.Saver builds this too, plus the whole save graph, an Identity per
variable and one Saver per distinct key when a key feeds several variables. The lean
graph has about half the ops to build and to prepare on the first run, and a single
RestoreV2 makes every restore all or nothing: it fails before any assignment runs.

Variables on remote devices (a parameter-server cluster) and the Saver options that
change how values are read (``sharded``, ``reshape``, ``restore_sequentially``) use
tf.compat.v1.train.Saver instead: a sharded Saver reads each shard on its own device.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from partialsaver._tf import tf, v1
from partialsaver.names import GraphVariable

Pairs = Sequence[Tuple[str, GraphVariable]]
_SAVER_ONLY_OPTIONS = ("sharded", "reshape", "restore_sequentially")

__all__ = ["build_lean_restore", "build_saver_restore", "lean_restore_applies"]


def _is_ref(part: Any) -> bool:
    return tf.as_dtype(part.dtype) != tf.as_dtype(part.dtype).base_dtype


def lean_restore_applies(pairs: Pairs, restore_kwargs: Mapping[str, Any]) -> bool:
    """True unless a Saver option or a variable on a remote device calls for a Saver."""
    if any(restore_kwargs.get(option) for option in _SAVER_ONLY_OPTIONS):
        return False
    for _, graph_variable in pairs:
        for part in graph_variable.parts:
            if not isinstance(part, tf.Variable) or "/job:" in (part.device or ""):
                return False
    return True


def build_lean_restore(pairs: Pairs) -> Tuple[str, str]:
    """(restore op name, filename placeholder name) for the pairs, in the default graph."""
    entries: Dict[Tuple[str, str], int] = {}
    dtypes: List[Any] = []
    targets: List[Tuple[Any, int]] = []
    for key, graph_variable in pairs:
        for part in graph_variable.parts:
            info = part._get_save_slice_info() if graph_variable.partitioned else None
            spec = info.spec if info is not None else ""
            index = entries.setdefault((key, spec), len(entries))
            if index == len(dtypes):
                dtypes.append(tf.as_dtype(part.dtype).base_dtype)
            targets.append((part, index))
    with tf.name_scope("partialsaver_restore"):
        filename = v1.placeholder(tf.string, [], name="filename")
        with tf.device("/device:CPU:0"):
            values = tf.raw_ops.RestoreV2(
                prefix=filename,
                tensor_names=[key for key, _ in entries],
                shape_and_slices=[spec for _, spec in entries],
                dtypes=dtypes,
            )
        assigns = []
        for part, index in targets:
            if _is_ref(part):
                assigns.append(v1.assign(part, values[index], validate_shape=part.shape.is_fully_defined()).op)
            else:
                assigns.append(tf.raw_ops.AssignVariableOp(resource=part.handle, value=values[index]))
        restore = tf.group(*assigns, name="restore_all")
    return restore.name, filename.name


def _saver_rounds(pairs: Pairs) -> List[Dict[str, Any]]:
    """Split pairs into Saver var_lists with unique keys (a key may feed several variables)."""
    rounds: List[Dict[str, Any]] = []
    for key, graph_variable in pairs:
        for var_list in rounds:
            if key not in var_list:
                break
        else:
            var_list = {}
            rounds.append(var_list)
        var_list[key] = graph_variable.saveable
    return rounds


def build_saver_restore(pairs: Pairs, restore_kwargs: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(restore op name, filename tensor name) per tf.compat.v1.train.Saver needed: the first
    reads every distinct key, the others only keys that feed several variables."""
    savers = [
        v1.train.Saver(var_list=var_list, name="partialsaver_restore", **restore_kwargs)
        for var_list in _saver_rounds(pairs)
    ]
    return [(saver.saver_def.restore_op_name, saver.saver_def.filename_tensor_name) for saver in savers]

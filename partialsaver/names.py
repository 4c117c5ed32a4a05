"""Variable naming: graph names, partitioned variables, scopes."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from partialsaver._tf import PartitionedVariable, tf, v1
from partialsaver.errors import UsageError, format_items
from partialsaver.plan import Shape

__all__ = [
    "GraphVariable",
    "LazyVariables",
    "collect_variables",
    "graph_of",
    "is_variable",
    "shape_tuple",
    "variable_name",
]


def is_variable(obj: Any) -> bool:
    """True for a tf.Variable (resource or ref), a PartitionedVariable or a Keras variable."""
    if isinstance(obj, tf.Variable):
        return True
    if PartitionedVariable is not None and isinstance(obj, PartitionedVariable):
        return True
    # Keras 3 variables are not tf.Variables but carry `path` and `value`.
    return hasattr(obj, "path") and hasattr(obj, "assign") and hasattr(obj, "shape")


def _slice_info(variable: Any) -> Any:
    getter = getattr(variable, "_get_save_slice_info", None)
    return getter() if getter is not None else None


def variable_name(variable: Any) -> str:
    """The graph name of a variable: its op name, the full name for a partition slice.

    Keras 3 variables are named by ``path`` (``"dense/kernel"``).
    """
    if PartitionedVariable is not None and isinstance(variable, PartitionedVariable):
        return variable.name
    info = _slice_info(variable)
    if info is not None:
        return info.full_name
    path = getattr(variable, "path", None)
    if isinstance(path, str) and path and not isinstance(variable, tf.Variable):
        return path
    name = variable.name
    return name[:-2] if name.endswith(":0") else name


def shape_tuple(shape: Any) -> Shape:
    """A TensorShape / list as a tuple with None for unknown dims, None for unknown rank."""
    shape = tf.TensorShape(shape)
    if shape.rank is None:
        return None
    return tuple(shape.as_list())


def graph_of(variable: Any) -> Optional[Any]:
    """The tf.Graph a graph-mode variable lives in, None for eager variables."""
    if PartitionedVariable is not None and isinstance(variable, PartitionedVariable):
        variable = next(iter(variable))
    try:
        return variable.graph
    except (AttributeError, RuntimeError):
        return None


class GraphVariable(NamedTuple):
    """One logical variable: a plain variable, or all slices of a partitioned one."""

    name: str
    shape: Shape
    dtype: str
    parts: Tuple[Any, ...]
    partitioned: bool

    @property
    def saveable(self) -> Any:
        """What tf.compat.v1.train.Saver takes for it: the variable, or the slice list.

        A Keras 3 variable is not a tf.Variable; its ``value`` is the tf.Variable it wraps.
        """
        if self.partitioned:
            return list(self.parts)
        variable = self.parts[0]
        if not isinstance(variable, tf.Variable) and isinstance(getattr(variable, "value", None), tf.Variable):
            return variable.value
        return variable

    @property
    def variable(self) -> Any:
        """What a callable filter sees: the variable, or one PartitionedVariable."""
        if not self.partitioned:
            return self.parts[0]
        return _as_partitioned_variable(self)


def _as_partitioned_variable(graph_variable: GraphVariable) -> Any:
    if PartitionedVariable is None:  # pragma: no cover - a TensorFlow that hides the class
        return list(graph_variable.parts)
    offsets = [_slice_info(part).var_offset for part in graph_variable.parts]
    rank = len(offsets[0])
    partitions = [len({offset[dim] for offset in offsets}) for dim in range(rank)]
    try:
        return PartitionedVariable(
            name=graph_variable.name,
            shape=tf.TensorShape(graph_variable.shape),
            dtype=tf.as_dtype(graph_variable.dtype),
            variable_list=list(graph_variable.parts),
            partitions=partitions,
        )
    except (ValueError, TypeError):
        # Only some slices were given (a user's explicit var_list): no valid
        # PartitionedVariable exists, so the callable gets the slice list.
        return list(graph_variable.parts)


def _dtype_name(variable: Any) -> str:
    return tf.as_dtype(variable.dtype).base_dtype.name


def collect_variables(variables: Iterable[Any]) -> Dict[str, GraphVariable]:
    """Group variables into GraphVariables by graph name, keeping first-seen order.

    Slices of a partitioned variable become one entry named by the full name with the
    full shape. A PartitionedVariable expands to its slices.

    Raises:
        UsageError: an item is not a variable, or a variable is listed twice.
    """
    grouped: Dict[str, List[Any]] = {}
    not_variables: List[str] = []
    duplicates: List[str] = []
    seen_ids: set = set()
    for item in variables:
        if not is_variable(item):
            not_variables.append(f"{type(item).__name__} {item!r:.60}")
            continue
        members = list(item) if (PartitionedVariable is not None and isinstance(item, PartitionedVariable)) else [item]
        for member in members:
            if id(member) in seen_ids:
                duplicates.append(variable_name(member))
                continue
            seen_ids.add(id(member))
            grouped.setdefault(variable_name(member), []).append(member)
    if not_variables:
        raise UsageError(
            f"var_list holds {len(not_variables)} item(s) that are not variables: "
            f"{format_items(not_variables)}; pass tf.Variable / PartitionedVariable objects "
            "(or None for all global variables)"
        )
    if duplicates:
        raise UsageError(
            f"var_list lists {len(set(duplicates))} variable(s) more than once: "
            f"{format_items(duplicates)}; pass each variable once"
        )
    collected: Dict[str, GraphVariable] = {}
    for name, members in grouped.items():
        info = _slice_info(members[0])
        if info is not None:
            members.sort(key=lambda member: list(_slice_info(member).var_offset))
            shape: Shape = tuple(info.full_shape)
            partitioned = True
        else:
            if len(members) > 1:
                raise UsageError(
                    f"var_list holds {len(members)} different variables named {name!r}; "
                    "pass variables from one graph with unique names"
                )
            shape = shape_tuple(members[0].shape)
            partitioned = False
        collected[name] = GraphVariable(name, shape, _dtype_name(members[0]), tuple(members), partitioned)
    return collected


def graph_variables(graph: Any, collection: str = "global") -> Dict[str, GraphVariable]:
    """The global (or local) variables of a tf.Graph, grouped by graph name."""
    key = v1.GraphKeys.GLOBAL_VARIABLES if collection == "global" else v1.GraphKeys.LOCAL_VARIABLES
    return collect_variables(graph.get_collection(key))


class LazyVariables(Mapping):
    """name -> what a callable filter sees, built only when a callable asks."""

    def __init__(self, variables: Mapping[str, GraphVariable]) -> None:
        self._variables = variables

    def __getitem__(self, name: str) -> Any:
        return self._variables[name].variable

    def __iter__(self):  # pragma: no cover - Mapping protocol
        return iter(self._variables)

    def __len__(self) -> int:  # pragma: no cover - Mapping protocol
        return len(self._variables)

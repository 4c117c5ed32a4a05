"""Argument checks and parsing for SmartSaver: every bad argument is a UsageError naming
the problem and the fix, raised when the SmartSaver is built where possible."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from partialsaver._tf import tf
from partialsaver.errors import UsageError, format_items
from partialsaver.mapping import NameMapArg
from partialsaver.names import collect_variables, is_variable, variable_name

__all__ = [
    "SAVER_KWARGS",
    "check_bool",
    "check_budget",
    "check_fraction",
    "check_save_arguments",
    "check_saver_kwargs",
    "parse_var_list",
]

# tf.compat.v1.train.Saver keyword arguments a SmartSaver passes on; the ones that shape
# how values are read also go to the savers restore() builds.
SAVER_KWARGS = frozenset(
    {
        "reshape",
        "sharded",
        "max_to_keep",
        "keep_checkpoint_every_n_hours",
        "name",
        "restore_sequentially",
        "allow_empty",
        "write_version",
        "pad_step_number",
        "save_relative_paths",
        "filename",
    }
)


def check_bool(flag: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"{flag} must be True or False, not {value!r}")


# Types of the tf.compat.v1.train.Saver options, checked up front so that a typo surfaces
# when the SmartSaver is built rather than deep inside the first save().
_SAVER_KWARG_TYPES: Dict[str, Tuple[type, ...]] = {
    "reshape": (bool,),
    "sharded": (bool,),
    "restore_sequentially": (bool,),
    "allow_empty": (bool,),
    "pad_step_number": (bool,),
    "save_relative_paths": (bool,),
    "max_to_keep": (int, type(None)),
    "keep_checkpoint_every_n_hours": (int, float),
    "write_version": (int,),
    "name": (str, type(None)),
    "filename": (str, type(None)),
}


def check_saver_kwargs(saver_kwargs: Mapping[str, Any]) -> None:
    unknown = sorted(set(saver_kwargs) - SAVER_KWARGS)
    if unknown:
        raise UsageError(
            f"SmartSaver got unknown keyword argument(s) {format_items(unknown)}; "
            f"tf.compat.v1.train.Saver options it passes on are {format_items(SAVER_KWARGS, 20)}"
        )
    wrong = [
        f"{key}={value!r}"
        for key, value in saver_kwargs.items()
        if not isinstance(value, _SAVER_KWARG_TYPES[key])
        or (key in _SAVER_KWARG_TYPES and bool not in _SAVER_KWARG_TYPES[key] and isinstance(value, bool))
    ]
    if wrong:
        raise UsageError(
            f"SmartSaver got Saver option(s) of the wrong type: {format_items(wrong)}; e.g. max_to_keep=5, "
            "sharded=True, keep_checkpoint_every_n_hours=2.0"
        )


def check_budget(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise UsageError(
            f"memory_budget must be a positive number of bytes or None, not {value!r}; e.g. memory_budget=2**30"
        )


def check_fraction(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise UsageError(f"min_restored_fraction must be a number in [0, 1], not {value!r}")


def check_save_arguments(save_path: Any, global_step: Any) -> None:
    if not isinstance(save_path, (str, os.PathLike)) or not os.fspath(save_path):
        raise UsageError(
            f"save_path must be a non-empty str or os.PathLike, not {save_path!r}; e.g. 'train/model.ckpt'"
        )
    path = os.fspath(save_path)
    # A prefix that is a directory would write "dir.index" next to it. (Only local paths
    # can be asked: on object stores and ram:// every prefix of existing files is a "directory".)
    if path.endswith(("/", os.sep)) or ("://" not in path and os.path.isdir(path)):
        example = os.path.join(path, "model.ckpt")
        raise UsageError(f"save_path {path!r} is a directory; pass a checkpoint prefix in it, e.g. {example!r}")
    if global_step is not None and (
        isinstance(global_step, bool) or not isinstance(global_step, (int, np.integer, tf.Tensor, tf.Variable))
    ):
        raise UsageError(f"global_step must be an int, an integer tensor or variable, or None, not {global_step!r}")


def parse_var_list(var_list: Any, name_map: NameMapArg) -> Tuple[Optional[List[Any]], Optional[Dict[str, str]]]:
    """(the variables listed or None for all, {checkpoint name: graph name} of a dict var_list)."""
    if var_list is None:
        return None, None
    if isinstance(var_list, Mapping):
        if name_map is not None:
            raise UsageError(
                "var_list as a dict already names every checkpoint key; pass either the dict "
                "or name_map, not both (e.g. var_list=[...], name_map={...})"
            )
        bad = [repr(key) for key, value in var_list.items() if not isinstance(key, str) or not is_variable(value)]
        if bad:
            raise UsageError(
                f"var_list dict must map checkpoint names (str) to variables; bad entries for keys {format_items(bad)}"
            )
        return list(var_list.values()), {key: variable_name(value) for key, value in var_list.items()}
    if isinstance(var_list, (list, tuple)):
        collect_variables(var_list)  # validate types and duplicates now
        return list(var_list), None
    raise UsageError(
        f"var_list must be None, a list of variables or a dict {{checkpoint_name: variable}}, "
        f"not {type(var_list).__name__}"
    )

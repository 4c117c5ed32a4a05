"""The ops SmartSaver runs in a session: restore savers, the initialised check, save savers.

Every op is built once per graph and signature and reused, so calling restore() or
save() in a loop never grows the graph, and a finalized graph works as long as the ops
were built before it was finalized (see SmartSaver.init_fn).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from partialsaver._reading import CheckpointReader
from partialsaver._tf import tf, v1
from partialsaver.errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    PartialSaverError,
    UsageError,
)
from partialsaver.names import GraphVariable, graph_variables

_logger = logging.getLogger("partialsaver")
_SAVE_KWARGS = frozenset(
    {"latest_filename", "meta_graph_suffix", "write_meta_graph", "write_state", "strip_default_attrs", "save_debug_info"}
)
Pairs = Sequence[Tuple[str, GraphVariable]]

__all__ = ["GraphOps", "check_session", "restore_eager", "translate_read_error"]


def check_session(sess: Any) -> Any:
    """The graph of a usable session; UsageError for anything else or a closed session."""
    graph = getattr(sess, "graph", None)
    if graph is None or not callable(getattr(sess, "run", None)):
        raise UsageError(
            f"sess must be a tf.compat.v1.Session (or MonitoredSession), not {type(sess).__name__}; "
            "pass the session that runs the graph"
        )
    if getattr(sess, "_closed", False):
        raise UsageError("the session is closed; restore with an open session (e.g. inside `with Session() as sess:`)")
    return graph


def translate_read_error(error: Exception, prefix: str) -> PartialSaverError:
    """TensorFlow's restore-time OpErrors as PartialSaverErrors naming the checkpoint."""
    first_line = str(getattr(error, "message", error)).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, tf.errors.NotFoundError):
        return CheckpointNotFoundError(
            f"restoring from {prefix!r} failed, a file is missing ({first_line}); copy all files of the checkpoint"
        )
    if isinstance(error, tf.errors.InvalidArgumentError):
        return CheckpointMismatchError(
            f"restoring from {prefix!r} failed: {first_line}; check the shapes in the plan (SmartSaver.plan)"
        )
    return CorruptCheckpointError(
        f"restoring from {prefix!r} failed ({type(error).__name__}: {first_line}); "
        "the checkpoint is truncated or corrupt: re-copy or re-save it"
    )


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


class GraphOps:
    """Restore / check / save ops of one graph (graph=None: eager), cached by signature."""

    def __init__(self, graph: Any, saver_kwargs: Mapping[str, Any], restore_kwarg_names: Set[str]) -> None:
        self.graph = graph
        self._saver_kwargs = dict(saver_kwargs)
        self._restore_kwargs = {k: v for k, v in saver_kwargs.items() if k in restore_kwarg_names}
        self._restore: Dict[Tuple, List[Tuple[str, str]]] = {}
        self._checks: Dict[Tuple, Tuple[Optional[Any], List[Any]]] = {}
        self._savers: Dict[Tuple, Any] = {}
        self._last_saver: Any = None

    def _build(self, build: Callable[[], Any]) -> Any:
        try:
            with self.graph.as_default():
                return build()
        except RuntimeError as error:
            if "finalized" in str(error):
                raise UsageError(
                    "the graph is finalized (MonitoredTrainingSession?), so the restore ops cannot be "
                    "built now; use SmartSaver.scaffold(checkpoint) or init_fn(checkpoint), which build "
                    "them before the graph is finalized"
                ) from error
            raise

    def restore_ops(self, pairs: Pairs) -> List[Tuple[str, str]]:
        """(restore op name, filename tensor name) per Saver needed for these pairs."""
        signature = tuple((key, gv.name) for key, gv in pairs)
        if signature not in self._restore:

            def build() -> List[Tuple[str, str]]:
                savers = [
                    v1.train.Saver(var_list=var_list, name="partialsaver_restore", **self._restore_kwargs)
                    for var_list in _saver_rounds(pairs)
                ]
                return [(s.saver_def.restore_op_name, s.saver_def.filename_tensor_name) for s in savers]

            self._restore[signature] = self._build(build)
        return self._restore[signature]

    def init_check(self, restored: Set[str]) -> Tuple[Optional[Any], List[Any]]:
        """(bool vector tensor, variables) telling which not-restored variables are initialised.

        Only the candidates are checked, in one op, instead of every variable of the graph.
        """
        candidates = dict(graph_variables(self.graph, "global"))
        candidates.update(graph_variables(self.graph, "local"))
        parts = [part for name, gv in candidates.items() if name not in restored for part in gv.parts]
        signature = tuple(part.name for part in parts)
        if signature not in self._checks:
            if not parts:
                self._checks[signature] = (None, [])
            else:

                def build() -> Any:
                    with tf.name_scope("partialsaver_initialized"):
                        return tf.stack([v1.is_variable_initialized(part) for part in parts])

                self._checks[signature] = (self._build(build), parts)
        return self._checks[signature]

    def restore_and_initialize(self, sess: Any, prefix: str, pairs: Pairs, restored: Optional[Set[str]]) -> None:
        """Restore the pairs, then initialise what is neither restored nor initialised.

        Two session calls: the restore ops with the initialised check, then the initialisers.
        """
        restore = self.restore_ops(pairs) if pairs else []
        check, parts = self.init_check(restored) if restored is not None else (None, [])
        fetches: List[Any] = [op_name for op_name, _ in restore]
        if check is not None:
            fetches.append(check)
        if not fetches:
            return
        try:
            results = sess.run(fetches, feed_dict={feed_name: prefix for _, feed_name in restore})
        except tf.errors.OpError as error:
            raise translate_read_error(error, prefix) from error
        if check is None:
            return
        uninitialized = [part for part, initialized in zip(parts, results[-1]) if not initialized]
        if uninitialized:
            _logger.info("initialising %d variable(s) not restored", len(uninitialized))
            sess.run([part.initializer for part in uninitialized])

    def save(self, sess: Any, save_path: str, pairs: Pairs, global_step: Any, save_kwargs: Mapping[str, Any]) -> str:
        """Save the pairs (checkpoint key, variable) with a Saver cached per signature."""
        unknown = sorted(set(save_kwargs) - _SAVE_KWARGS)
        if unknown:
            raise UsageError(f"save() got unknown keyword argument(s) {unknown}; known: {sorted(_SAVE_KWARGS)}")
        signature = tuple((key, gv.name) for key, gv in pairs)
        saver = self._savers.get(signature)
        if saver is None:
            var_list = {key: gv.saveable for key, gv in pairs}
            saver = self._build(lambda: v1.train.Saver(var_list=var_list, **self._saver_kwargs)) if self.graph is not None \
                else v1.train.Saver(var_list=var_list, **self._saver_kwargs)
            if self._last_saver is not None:
                # Keep max_to_keep bookkeeping when the variable set changed between saves.
                saver.set_last_checkpoints_with_time(self._last_saver.last_checkpoints_with_time)
            self._savers[signature] = saver
        self._last_saver = saver
        parent = os.path.dirname(save_path)
        try:
            if parent:
                tf.io.gfile.makedirs(parent)
            return saver.save(sess, save_path, global_step=global_step, **save_kwargs)
        except (tf.errors.PermissionDeniedError, PermissionError) as error:
            raise UsageError(
                f"cannot write the checkpoint {save_path!r}: permission denied; pass a save_path in a writable directory"
            ) from error
        except (tf.errors.OpError, OSError, ValueError) as error:
            raise PartialSaverError(
                f"writing the checkpoint {save_path!r} failed ({type(error).__name__}: {error}); "
                "check free disk space and the path"
            ) from error


def restore_eager(prefix: str, pairs: Pairs) -> None:
    """Eager restore: read every value first, then assign (no partial restore on read errors)."""
    reader = CheckpointReader(prefix)
    values = [(graph_variable, reader.tensor(key)) for key, graph_variable in pairs]
    for graph_variable, value in values:
        graph_variable.parts[0].assign(value)

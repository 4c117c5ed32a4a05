"""The ops SmartSaver runs in a session, built once per graph: the restore op, the initialized check, the savers.

Every op is built once per graph and signature and reused, so calling restore() or
save() in a loop never grows the graph, and a finalized graph works as long as the ops
were built before it was finalized (see SmartSaver.init_fn).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from partialsaver._batches import partial_restore_error, split_into_batches, verify_before_restoring
from partialsaver._check import NO_CHECK, InitCheck, build_check, refuse_fed_initializers
from partialsaver._files import filesystem_for
from partialsaver._logs import quiet_tensorflow_logs
from partialsaver._reading import CheckpointReader
from partialsaver._restore_graph import build_restore
from partialsaver._temporaries import remove_stale_temporaries
from partialsaver._tf import tf, v1
from partialsaver._tf_errors import meaningful_line, translate_read_error
from partialsaver.errors import PartialSaverError, UsageError
from partialsaver.names import GraphVariable, graph_variables

_logger = logging.getLogger("partialsaver")
_SAVE_KWARGS = frozenset(
    {
        "latest_filename",
        "meta_graph_suffix",
        "write_meta_graph",
        "write_state",
        "strip_default_attrs",
        "save_debug_info",
    }
)
Pairs = Sequence[Tuple[str, GraphVariable]]

__all__ = ["GraphOps", "check_session", "restore_eager"]


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


class GraphOps:
    """Restore / check / save ops of one graph (graph=None: eager), cached by signature."""

    def __init__(self, graph: Any, saver_kwargs: Mapping[str, Any]) -> None:
        self.graph = graph
        self._saver_kwargs = dict(saver_kwargs)
        self._restore: Dict[Tuple, Tuple[str, str]] = {}
        self._checks: Dict[Tuple, InitCheck] = {}
        self._held: Dict[Tuple, InitCheck] = {}
        self._savers: Dict[Tuple, Any] = {}
        self._last_saver: Any = None
        # Two threads restoring or saving at once must not build the same ops twice.
        self._lock = threading.RLock()

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

    def restore_op(self, pairs: Pairs, reshaped: Sequence[str] = ()) -> Tuple[str, str]:
        """(restore op name, filename placeholder name) for these pairs, built once."""
        signature = (tuple((key, gv.name) for key, gv in pairs), tuple(sorted(reshaped)))
        with self._lock:
            if signature not in self._restore:
                self._restore[signature] = self._build(lambda: build_restore(pairs, reshaped))
            return self._restore[signature]

    def restore_batches(
        self, pairs: Pairs, reshaped: Sequence[str] = (), budget: Optional[int] = None, held: bool = True
    ) -> List[Tuple[Pairs, Tuple[str, str]]]:
        """The pairs in batches under ``budget`` (see _batches), each with its restore op, built
        once; one batch when the variables hold no values yet (``held=False``): then old and new
        values never meet in memory, and one step needs no checksum pass."""
        batches = split_into_batches(pairs, budget) if pairs else []
        if len(batches) > 1 and not held:
            batches = [list(pairs)]
        return [(batch, self.restore_op(batch, reshaped)) for batch in batches]

    def prepare_restore(self, pairs: Pairs, reshaped: Sequence[str] = (), budget: Optional[int] = None) -> None:
        """Build every op a later restore of these pairs may run (init_fn builds them before
        MonitoredTrainingSession finalizes the graph)."""
        if len(self.restore_batches(pairs, reshaped, budget)) > 1:
            self._held_check(pairs)
            self.restore_batches(pairs, reshaped, budget, held=False)

    def _held_check(self, pairs: Pairs) -> InitCheck:
        parts = [part for _, graph_variable in pairs for part in graph_variable.parts if isinstance(part, tf.Variable)]
        signature = tuple(part.name for part in parts)
        with self._lock:
            if signature not in self._held:
                self._held[signature] = self._build(lambda: build_check(parts))
            return self._held[signature]

    def _any_holds_a_value(self, sess: Any, pairs: Pairs) -> bool:
        """Whether a variable to restore is initialized: only then do old and new values meet in
        memory, and only then is restoring in batches worth its checksum pass."""
        check = self._held_check(pairs)
        return check.tensor is not None and bool(np.any(sess.run(check.tensor)))

    def init_check(self, pairs: Pairs, known: Iterable[GraphVariable] = ()) -> InitCheck:
        """Which variables this restore does not set are initialized already: one op over
        the candidates only (the graph's global and local variables plus ``known`` ones,
        since a var_list may hold variables outside the collections). Only the parts
        restored are skipped, so a partly listed partitioned variable still gets its
        other slices initialized."""
        restored = {id(part) for _, graph_variable in pairs for part in graph_variable.parts}
        candidates = list(graph_variables(self.graph, "global").values())
        candidates += list(graph_variables(self.graph, "local").values()) + list(known)
        parts: List[Any] = []
        seen: Set[int] = set(restored)
        for graph_variable in candidates:
            for part in graph_variable.parts:
                if id(part) not in seen and isinstance(part, tf.Variable):
                    seen.add(id(part))
                    parts.append(part)
        signature = tuple(part.name for part in parts)
        with self._lock:
            if signature not in self._checks:
                self._checks[signature] = self._build(lambda: build_check(parts))
            return self._checks[signature]

    def restore_and_initialize(
        self,
        sess: Any,
        prefix: str,
        pairs: Pairs,
        known: Iterable[GraphVariable] = (),
        initialize: bool = True,
        reshaped: Sequence[str] = (),
        budget: Optional[int] = None,
    ) -> int:
        """Restore the pairs, then initialize what is neither restored nor initialized.

        All or nothing: in one batch, the restore op reads every key before it assigns any
        variable; in several (past ``budget`` bytes), every tensor is checked against its
        crc32c before the first batch is read. The initialized check (read-only) runs in the
        first restore call. Only when an initializer that would run needs a fed placeholder is
        the check run on its own first, to refuse before anything changes. The initializers
        run last, after a successful restore.

        Returns:
            The number of variables initialized.
        """
        held = len(split_into_batches(pairs, budget)) < 2 or self._any_holds_a_value(sess, pairs)
        batches = self.restore_batches(pairs, reshaped, budget, held)
        check = self.init_check(pairs, known) if initialize else NO_CHECK
        uninitialized: List[Any] = []
        fetches: List[Any] = []
        if check.tensor is not None and (check.needs_feed or not batches):
            uninitialized = check.uninitialized(sess.run(check.tensor))
            refuse_fed_initializers(uninitialized, check.needs_feed)
        elif check.tensor is not None:
            fetches.append(check.tensor)
        if len(batches) > 1:
            verify_before_restoring(prefix, pairs)
        for index, (_, (op_name, feed_name)) in enumerate(batches):
            try:
                results = sess.run([op_name, *fetches], feed_dict={feed_name: prefix})
            except tf.errors.OpError as error:
                if index == 0:
                    raise translate_read_error(error, prefix) from error
                batch_pairs = [batch for batch, _ in batches]
                raise partial_restore_error(meaningful_line(error), prefix, batch_pairs, index) from error
            if fetches:
                uninitialized = check.uninitialized(results[1])
                fetches = []
        if uninitialized:
            _logger.info("initializing %d variable(s) not restored", len(uninitialized))
            try:
                sess.run(check.initializers(uninitialized))
            except tf.errors.OpError as error:
                raise UsageError(
                    f"the checkpoint was restored, but initializing the other variables failed "
                    f"({type(error).__name__}: {meaningful_line(error)}); initialize them yourself and "
                    "pass init_unrestored=False"
                ) from error
        return len(uninitialized)

    def _saver_for(self, pairs: Pairs) -> Any:
        signature = tuple((key, gv.name) for key, gv in pairs)
        saver = self._savers.get(signature)
        if saver is None:
            var_list = {key: gv.saveable for key, gv in pairs}
            if self.graph is not None:
                saver = self._build(lambda: v1.train.Saver(var_list=var_list, **self._saver_kwargs))
            else:
                with quiet_tensorflow_logs():  # "Saver is deprecated" does not apply to explicit names
                    saver = v1.train.Saver(var_list=var_list, **self._saver_kwargs)
            if self._last_saver is not None:
                # Keep max_to_keep bookkeeping when the variable set changed between saves.
                saver.set_last_checkpoints_with_time(self._last_saver.last_checkpoints_with_time)
            self._savers[signature] = saver
        self._last_saver = saver
        return saver

    def save(self, sess: Any, save_path: str, pairs: Pairs, global_step: Any, save_kwargs: Mapping[str, Any]) -> str:
        """Save the pairs (checkpoint key, variable) with a Saver cached per signature."""
        unknown = sorted(set(save_kwargs) - _SAVE_KWARGS)
        if unknown:
            raise UsageError(f"save() got unknown keyword argument(s) {unknown}; known: {sorted(_SAVE_KWARGS)}")
        with self._lock:
            saver = self._saver_for(pairs)
        parent = os.path.dirname(save_path)
        try:
            if parent:
                tf.io.gfile.makedirs(parent)
            remove_stale_temporaries(filesystem_for(save_path), parent or ".", os.path.basename(save_path))
            # The graph as default: a thread that never entered it is in eager mode, and
            # tf.compat.v1.train.Saver.save would then build eager ops for graph tensors.
            in_graph = self.graph.as_default() if self.graph is not None else contextlib.nullcontext()
            with in_graph, quiet_tensorflow_logs():  # TF's Saver logs deprecations of its internals
                return saver.save(sess, save_path, global_step=global_step, **save_kwargs)
        except tf.errors.FailedPreconditionError as error:
            raise UsageError(
                f"cannot save {save_path!r}: a variable is not initialized ({meaningful_line(error)}); "
                "run its initializer or restore() first"
            ) from error
        except (tf.errors.PermissionDeniedError, PermissionError) as error:
            raise UsageError(
                f"cannot write the checkpoint {save_path!r}: permission denied; "
                "pass a save_path in a writable directory"
            ) from error
        except ValueError as error:  # tf.compat.v1.train.Saver's own argument checks
            raise UsageError(f"cannot save {save_path!r}: {meaningful_line(error)}") from error
        except (tf.errors.OpError, OSError) as error:
            raise PartialSaverError(
                f"writing the checkpoint {save_path!r} failed ({type(error).__name__}: {meaningful_line(error)}); "
                "check free disk space and the path: the previous checkpoints are unchanged"
            ) from error


def restore_eager(prefix: str, pairs: Pairs, reshaped: Sequence[str] = (), budget: Optional[int] = None) -> None:
    """Eager restore, all or nothing: every value read before the first assignment, or, past
    ``budget`` bytes, every tensor checked first and then read and assigned batch by batch."""
    batches = split_into_batches(pairs, budget)
    if len(batches) > 1:
        verify_before_restoring(prefix, pairs)
    with CheckpointReader(prefix) as reader:
        for index, batch in enumerate(batches):
            try:
                values = [(graph_variable, reader.tensor(key)) for key, graph_variable in batch]
            except PartialSaverError as error:
                if index == 0:
                    raise
                raise partial_restore_error(str(error), prefix, batches, index) from error
            for graph_variable, value in values:
                _assign_eager(graph_variable, value, graph_variable.name in reshaped)


def _assign_eager(graph_variable: GraphVariable, value: Any, reshape: bool) -> None:
    variable = graph_variable.parts[0]
    wanted = tf.as_dtype(variable.dtype).as_numpy_dtype
    if value.dtype != object and value.dtype != wanted and value.dtype.name == np.dtype(wanted).name:
        value = value.view(wanted)  # ml_dtypes' bfloat16 vs an older TensorFlow's own: the same bits
    if reshape:  # planned only for a fully defined shape
        value = value.reshape([dim or 0 for dim in graph_variable.shape or ()])
    variable.assign(value)

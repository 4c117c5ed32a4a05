"""The ops SmartSaver runs in a session: restore savers, the initialised check, save savers.

Every op is built once per graph and signature and reused, so calling restore() or
save() in a loop never grows the graph, and a finalized graph works as long as the ops
were built before it was finalized (see SmartSaver.init_fn).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from partialsaver._reading import CheckpointReader, meaningful_line
from partialsaver._tf import tf, v1
from partialsaver.errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    PartialSaverError,
    UsageError,
    format_items,
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


_FEED_OPS = frozenset({"Placeholder", "PlaceholderV2"})


def _refuse_fed_initializers(parts: Sequence[Any]) -> None:
    """UsageError before anything runs when an initializer depends on a placeholder."""
    needs_feed = []
    for part in parts:
        pending, seen = [part.initializer], set()
        while pending:
            op = pending.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type in _FEED_OPS:
                needs_feed.append(f"{part.op.name} (feeds {op.name})")
                break
            pending.extend(tensor.op for tensor in op.inputs)
            pending.extend(op.control_inputs)
    if needs_feed:
        raise UsageError(
            f"{len(needs_feed)} variable(s) not restored have an initializer that needs a fed placeholder: "
            f"{format_items(needs_feed)}; initialise them yourself first (then they are kept), or pass "
            "init_unrestored=False"
        )


def translate_read_error(error: Exception, prefix: str, touched: bool = False) -> PartialSaverError:
    """TensorFlow's restore-time OpErrors as PartialSaverErrors naming the checkpoint."""
    cause = meaningful_line(error)
    state = (
        "some variables fed by keys listed several times were already restored"
        if touched
        else "no variable was changed"
    )
    if isinstance(error, tf.errors.NotFoundError):
        return CheckpointNotFoundError(
            f"restoring from {prefix!r} failed, a file is missing ({cause}); {state}: copy all files of the checkpoint"
        )
    if isinstance(error, tf.errors.InvalidArgumentError):
        return CheckpointMismatchError(
            f"restoring from {prefix!r} failed: {cause}; {state}: check the shapes in the plan (SmartSaver.plan)"
        )
    return CorruptCheckpointError(
        f"restoring from {prefix!r} failed ({type(error).__name__}: {cause}); {state}: "
        "the checkpoint is truncated or corrupt, re-copy or re-save it"
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

    def init_check(self, pairs: Pairs, known: Iterable[GraphVariable] = ()) -> Tuple[Optional[Any], List[Any]]:
        """(bool vector tensor, variables): which variables this restore does not set are
        initialised already. Candidates are the graph's global and local variables plus
        ``known`` ones (a var_list may hold variables outside the collections); only the
        parts restored are skipped, so a partly listed partitioned variable still gets
        its other slices initialised. One op checks them all."""
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
        if signature not in self._checks:
            if not parts:
                self._checks[signature] = (None, [])
            else:

                def build() -> Any:
                    with tf.name_scope("partialsaver_initialized"):
                        return tf.stack([v1.is_variable_initialized(part) for part in parts])

                self._checks[signature] = (self._build(build), parts)
        return self._checks[signature]

    def restore_and_initialize(
        self, sess: Any, prefix: str, pairs: Pairs, known: Iterable[GraphVariable] = (), initialize: bool = True
    ) -> int:
        """Restore the pairs, then initialise what is neither restored nor initialised.

        Order matters for "all or nothing": the initialised check runs first (read-only),
        initialisers that cannot run (they need a feed) are refused before anything is
        touched, then the first Saver reads every distinct key in one RestoreV2 op (it
        fails before any assignment, or every key is readable), then the Savers of keys
        that feed several variables, and only then the initialisers.

        Returns:
            The number of variables initialised.
        """
        restore = self.restore_ops(pairs) if pairs else []
        check, parts = self.init_check(pairs, known) if initialize else (None, [])
        uninitialized: List[Any] = []
        if check is not None:
            flags = sess.run(check)
            uninitialized = [part for part, initialized in zip(parts, flags) if not initialized]
            _refuse_fed_initializers(uninitialized)
        for index, (op_name, feed_name) in enumerate(restore):
            try:
                sess.run(op_name, feed_dict={feed_name: prefix})
            except tf.errors.OpError as error:
                raise translate_read_error(error, prefix, touched=index > 0) from error
        if uninitialized:
            _logger.info("initialising %d variable(s) not restored", len(uninitialized))
            try:
                sess.run([part.initializer for part in uninitialized])
            except tf.errors.OpError as error:
                raise UsageError(
                    f"the checkpoint was restored, but initialising the other variables failed "
                    f"({type(error).__name__}: {meaningful_line(error)}); initialise them yourself and "
                    "pass init_unrestored=False"
                ) from error
        return len(uninitialized)

    def save(self, sess: Any, save_path: str, pairs: Pairs, global_step: Any, save_kwargs: Mapping[str, Any]) -> str:
        """Save the pairs (checkpoint key, variable) with a Saver cached per signature."""
        unknown = sorted(set(save_kwargs) - _SAVE_KWARGS)
        if unknown:
            raise UsageError(f"save() got unknown keyword argument(s) {unknown}; known: {sorted(_SAVE_KWARGS)}")
        signature = tuple((key, gv.name) for key, gv in pairs)
        saver = self._savers.get(signature)
        if saver is None:
            var_list = {key: gv.saveable for key, gv in pairs}
            if self.graph is not None:
                saver = self._build(lambda: v1.train.Saver(var_list=var_list, **self._saver_kwargs))
            else:
                with _quiet_tensorflow_logs():  # "Saver is deprecated" does not apply to explicit names
                    saver = v1.train.Saver(var_list=var_list, **self._saver_kwargs)
            if self._last_saver is not None:
                # Keep max_to_keep bookkeeping when the variable set changed between saves.
                saver.set_last_checkpoints_with_time(self._last_saver.last_checkpoints_with_time)
            self._savers[signature] = saver
        self._last_saver = saver
        parent = os.path.dirname(save_path)
        try:
            if parent:
                tf.io.gfile.makedirs(parent)
            remove_stale_tempstate(save_path)
            with _quiet_tensorflow_logs():  # TF's Saver logs deprecations of its own internals on cleanup
                return saver.save(sess, save_path, global_step=global_step, **save_kwargs)
        except tf.errors.FailedPreconditionError as error:
            raise UsageError(
                f"cannot save {save_path!r}: a variable is not initialised ({meaningful_line(error)}); "
                "run its initializer or restore() first"
            ) from error
        except (tf.errors.PermissionDeniedError, PermissionError) as error:
            raise UsageError(
                f"cannot write the checkpoint {save_path!r}: permission denied; pass a save_path in a writable directory"
            ) from error
        except (tf.errors.OpError, OSError, ValueError) as error:
            raise PartialSaverError(
                f"writing the checkpoint {save_path!r} failed ({type(error).__name__}: {meaningful_line(error)}); "
                "check free disk space and the path"
            ) from error


# TensorFlow writes a checkpoint's files as "<name>.tempstate<random>" and renames them when
# complete; a killed save leaves them behind. One untouched this long belongs to no live save.
STALE_TEMPSTATE_SECONDS = 600


def remove_stale_tempstate(save_path: str) -> None:
    """Delete the partial files of killed saves of ``save_path`` (local paths only)."""
    directory, name = os.path.split(save_path)
    if "://" in save_path or not os.path.isdir(directory or "."):
        return
    now = time.time()
    for entry in os.listdir(directory or "."):
        path = os.path.join(directory, entry)
        if entry.startswith(name) and ".tempstate" in entry and now - os.path.getmtime(path) > STALE_TEMPSTATE_SECONDS:
            _logger.info("removing %s left by an interrupted save", path)
            os.remove(path)


@contextlib.contextmanager
def _quiet_tensorflow_logs() -> Iterator[None]:
    tf_logger = tf.get_logger()
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)


def restore_eager(prefix: str, pairs: Pairs) -> None:
    """Eager restore: read every value first, then assign (no partial restore on read errors)."""
    reader = CheckpointReader(prefix)
    values = [(graph_variable, reader.tensor(key)) for key, graph_variable in pairs]
    for graph_variable, value in values:
        graph_variable.parts[0].assign(value)

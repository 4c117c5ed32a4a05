"""SmartSaver: select -> map -> plan -> restore -> initialize the rest -> save."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

from partialsaver import _graph_ops
from partialsaver._arguments import (
    check_bool,
    check_budget,
    check_fraction,
    check_save_arguments,
    check_saver_kwargs,
    parse_var_list,
)
from partialsaver._batches import DEFAULT_RESTORE_BUDGET
from partialsaver._planner import PlanOptions, build_plan, refuse_if_needed
from partialsaver._reading import read_metadata
from partialsaver._tf import tf, v1
from partialsaver.errors import NameMapError, UsageError, format_items
from partialsaver.mapping import NameMap, NameMapArg, describe_collisions
from partialsaver.names import GraphVariable, LazyVariables, collect_variables, graph_of, graph_variables, variable_name
from partialsaver.plan import RestorePlan
from partialsaver.selection import SpecArg, normalize_specs, select

_logger = logging.getLogger("partialsaver")

__all__ = ["SmartSaver"]


def _log_plan(plan: RestorePlan) -> None:
    """The report at INFO when all is well, at WARNING when something needs a look (the
    plan is not ok, a mismatch is initialized instead of restored, or a diagnostic).

    No handler is installed: a warning reaches stderr through Python's last-resort
    handler in a script that configured no logging, and goes where the application's
    logging configuration says otherwise.
    """
    quiet = plan.ok and not plan.diagnostics and not plan.mismatched
    _logger.log(logging.INFO if quiet else logging.WARNING, "%s", plan)


class SmartSaver:
    """Partial restore with a report first, then initialization of exactly the rest.

    Args:
        var_list: None (every global variable of the graph), a list of variables, or a dict
            ``{checkpoint_name: variable}`` taken as tf.compat.v1.train.Saver takes it.
        include: which variables to restore and save: scope strings, globs, compiled regexes,
            callables or presets (one or a list); None keeps all.
        exclude: which of those to leave out, with the same kinds of specs.
        name_map: checkpoint key -> graph name rules (exact, scope, regex) or a callable.
        expect_new: specs of variables that are new (never restored, never "missing").
        require: specs that must restore at least ``min_restored_fraction`` of their
            variables (and at least one), else restore() raises before touching anything.
        strict: missing variables, unused keys and specs/rules matching nothing raise.
        skip_mismatched: initialize shape/dtype mismatches instead of raising.
        memory_budget: restore in batches of at most this many bytes of tensors (a larger
            tensor alone), after checking every tensor's crc32c, so that variables that hold
            values peak at the model plus one batch instead of twice the model; None restores
            in one step (every tensor read before any assignment).
        **saver_kwargs: tf.compat.v1.train.Saver options (max_to_keep, sharded, ...).

    Example:
        >>> saver = SmartSaver(include="backbone", name_map={"InceptionV1/": "backbone/InceptionV1/"})
        >>> plan = saver.restore(sess, "pretrained_dir")          # doctest: +SKIP
        >>> print(plan)                                          # doctest: +SKIP
    """

    def __init__(
        self,
        var_list: Any = None,
        *,
        include: SpecArg = None,
        exclude: SpecArg = None,
        name_map: NameMapArg = None,
        expect_new: SpecArg = None,
        require: SpecArg = None,
        min_restored_fraction: float = 0.0,
        strict: bool = False,
        skip_mismatched: bool = False,
        memory_budget: Optional[int] = DEFAULT_RESTORE_BUDGET,
        **saver_kwargs: Any,
    ) -> None:
        check_bool("strict", strict)
        check_bool("skip_mismatched", skip_mismatched)
        check_saver_kwargs(saver_kwargs)
        check_fraction(min_restored_fraction)
        check_budget(memory_budget)
        self._var_list, explicit = parse_var_list(var_list, name_map)
        self._include = normalize_specs(include, "include")
        self._exclude = normalize_specs(exclude, "exclude")
        self._expect_new = normalize_specs(expect_new, "expect_new")
        self._require = normalize_specs(require, "require")
        self._min_restored_fraction = float(min_restored_fraction)
        self._name_map = NameMap(name_map, explicit=explicit)
        self._strict = strict
        self._skip_mismatched = skip_mismatched
        self._memory_budget = memory_budget
        self._saver_kwargs = dict(saver_kwargs)
        # Ops built per graph, reused by later calls so a training loop never grows the graph.
        self._ops: "weakref.WeakKeyDictionary[Any, _graph_ops.GraphOps]" = weakref.WeakKeyDictionary()
        self._eager_ops: Optional[_graph_ops.GraphOps] = None
        self._ops_lock = threading.Lock()

    # -- graph and variables ----------------------------------------------------------------

    def _graph(self, sess: Any, *, need_session: bool) -> Any:
        """The graph to work on (None in eager mode), with the session checked against it."""
        listed_graphs = list(dict.fromkeys(map(graph_of, self._var_list or [])))  # None for eager variables
        eager = sess is None and tf.executing_eagerly() and (self._var_list is None or None in listed_graphs)
        if eager:
            if self._var_list is None:
                raise UsageError(
                    "in eager mode there is no graph to collect variables from; pass "
                    "var_list=model.variables (or build the model inside tf.Graph().as_default())"
                )
            return None
        if sess is not None and None in listed_graphs and self._var_list:
            raise UsageError("eager variables need no session; call with sess=None")
        if sess is None:
            if need_session:
                raise UsageError(
                    "a tf.compat.v1.Session is needed in graph mode; pass the session that "
                    "runs this graph (sess=None only works in eager mode)"
                )
            graph = listed_graphs[0] if listed_graphs else v1.get_default_graph()
        else:
            graph = _graph_ops.check_session(sess)
        foreign = [variable_name(v) for v in self._var_list or [] if graph_of(v) is not graph]
        if foreign:
            raise UsageError(
                f"var_list holds {len(foreign)} variable(s) from another graph than the "
                f"session's: {format_items(foreign)}; build the SmartSaver in the graph you restore into"
            )
        return graph

    def _variables(self, graph: Any) -> Tuple[Dict[str, GraphVariable], List[str]]:
        """(every known variable by name, the candidates for selection in order)."""
        listed = collect_variables(self._var_list) if self._var_list is not None else None
        if graph is None:
            return dict(listed or {}), list(listed or {})
        pool = graph_variables(graph)
        if listed is None:
            return pool, list(pool)
        pool.update(listed)
        return pool, list(listed)

    def _plan(
        self, checkpoint: Any, graph: Any, skip_mismatched: Optional[bool] = None
    ) -> Tuple[RestorePlan, List[Tuple[str, GraphVariable]], Dict[str, GraphVariable]]:
        """(the plan, the (stored key, variable) pairs to restore, every known variable)."""
        metadata = read_metadata(checkpoint)
        variables, candidates = self._variables(graph)
        if not candidates:
            where = "var_list is empty" if self._var_list is not None else "the graph has no global variables"
            raise UsageError(
                f"there is nothing to restore into: {where}; build the model first (or pass its variables)"
            )
        selection = select(candidates, self._include, self._exclude, self._expect_new, obj_of=LazyVariables(variables))
        plan, pairs = build_plan(
            metadata,
            variables,
            selection,
            self._name_map,
            graph=graph,
            options=PlanOptions(
                require=self._require,
                min_restored_fraction=self._min_restored_fraction,
                skip_mismatched=self._skip_mismatched if skip_mismatched is None else skip_mismatched,
                reshape=bool(self._saver_kwargs.get("reshape", False)),
            ),
        )
        return plan, pairs, variables

    # -- public API -------------------------------------------------------------------------

    def plan(self, checkpoint: Any) -> RestorePlan:
        """What restore() would do, from the checkpoint's index only (no session, no ops).

        Uses the default graph (or the graph of ``var_list``); in eager mode, ``var_list``.

        Raises:
            CheckpointNotFoundError, CorruptCheckpointError: the checkpoint cannot be read.
            NameMapError: colliding rules or rules naming variables that do not exist.
        """
        return self._plan(checkpoint, self._graph(None, need_session=False))[0]

    def restore(
        self,
        sess: Any,
        checkpoint: Any,
        *,
        strict: Optional[bool] = None,
        skip_mismatched: Optional[bool] = None,
        init_unrestored: bool = True,
    ) -> RestorePlan:
        """Plan, check, restore the planned pairs, then initialize what is left.

        Nothing is restored when the plan has an error; variables that were already
        initialized in ``sess`` are never overwritten by initialization.

        Args:
            sess: the tf.compat.v1.Session of the graph (None in eager mode).
            checkpoint: a directory (its latest checkpoint), a prefix, or a checkpoint file.
            strict: override the constructor's ``strict`` for this call.
            skip_mismatched: override the constructor's ``skip_mismatched`` for this call.
            init_unrestored: initialize every not-yet-initialized variable not restored.

        Returns:
            The RestorePlan that was carried out.

        Raises:
            CheckpointMismatchError: mismatches (unless skip_mismatched), failed guardrails,
                or under strict missing/unused/unmatched items; ``.plan`` holds the plan.
            CheckpointNotFoundError: no checkpoint at ``checkpoint``.
            CorruptCheckpointError: the checkpoint cannot be read; nothing was changed.
            NameMapError: colliding rules, or rules naming variables that do not exist.
            UsageError: a wrong argument, no session in graph mode, a foreign variable.
        """
        strict, skip_mismatched = self._flags(strict, skip_mismatched)
        check_bool("init_unrestored", init_unrestored)
        graph = self._graph(sess, need_session=True)
        plan, pairs, variables = self._plan(checkpoint, graph, skip_mismatched)
        _log_plan(plan)
        refuse_if_needed(plan, strict)
        reshaped = [record.graph_name for record in plan.reshaped]
        if graph is None:
            _graph_ops.restore_eager(plan.checkpoint, pairs, reshaped, self._memory_budget)
            return plan
        self._graph_ops(graph).restore_and_initialize(
            sess, plan.checkpoint, pairs, variables.values(), init_unrestored, reshaped, self._memory_budget
        )
        return plan

    def _flags(self, strict: Optional[bool], skip_mismatched: Optional[bool]) -> Tuple[bool, bool]:
        for flag, value in (("strict", strict), ("skip_mismatched", skip_mismatched)):
            if value is not None:
                check_bool(flag, value)
        return (
            self._strict if strict is None else strict,
            self._skip_mismatched if skip_mismatched is None else skip_mismatched,
        )

    def init_fn(
        self, checkpoint: Any, *, strict: Optional[bool] = None, skip_mismatched: Optional[bool] = None
    ) -> Callable[[Any, Any], None]:
        """A ``Scaffold(init_fn=...)`` callback that restores ``checkpoint`` and initializes the rest.

        Plans and checks now (errors surface before training starts) and builds every op
        now, because MonitoredTrainingSession finalizes the graph before calling it. The
        callback runs only when the session was not restored from its own checkpoint_dir,
        so a fine-tune restores the pretrained weights once and resumes from its own
        checkpoints afterwards.

        Example:
            >>> scaffold = tf.compat.v1.train.Scaffold(init_op=tf.no_op(), init_fn=saver.init_fn("pretrained"))
        """
        strict, skip_mismatched = self._flags(strict, skip_mismatched)
        graph = self._graph(None, need_session=False)
        if graph is None:
            raise UsageError("init_fn / scaffold are for graph mode; in eager mode call restore(None, checkpoint)")
        plan, pairs, variables = self._plan(checkpoint, graph, skip_mismatched)
        refuse_if_needed(plan, strict)
        ops = self._graph_ops(graph)
        known = list(variables.values())
        reshaped = [record.graph_name for record in plan.reshaped]
        ops.prepare_restore(pairs, reshaped, self._memory_budget)
        ops.init_check(pairs, known)

        def restore_pretrained(scaffold: Any, session: Any) -> None:
            del scaffold  # the Scaffold API passes it; everything needed was built above
            _log_plan(plan)
            ops.restore_and_initialize(session, plan.checkpoint, pairs, known, True, reshaped, self._memory_budget)

        return restore_pretrained

    def scaffold(self, checkpoint: Any, **scaffold_kwargs: Any) -> Any:
        """A tf.compat.v1.train.Scaffold that warm-starts from ``checkpoint``.

        The default ``init_op`` becomes a no-op: the init_fn restores the selected
        variables and initializes every other one, so nothing is initialized twice.
        Other Scaffold arguments pass through.

        Example:
            >>> with tf.compat.v1.train.MonitoredTrainingSession(
            ...         checkpoint_dir="finetune", scaffold=saver.scaffold("pretrained")) as sess: ...
        """
        if "init_fn" in scaffold_kwargs:
            raise UsageError("scaffold() makes the init_fn itself; pass other Scaffold arguments only")
        graph = self._graph(None, need_session=False)
        init_fn = self.init_fn(checkpoint)
        if "init_op" not in scaffold_kwargs:
            with graph.as_default():
                scaffold_kwargs["init_op"] = tf.no_op(name="partialsaver_init_op")
        return v1.train.Scaffold(init_fn=init_fn, **scaffold_kwargs)

    def _graph_ops(self, graph: Any) -> "_graph_ops.GraphOps":
        with self._ops_lock:
            if graph is None:
                if self._eager_ops is None:
                    self._eager_ops = _graph_ops.GraphOps(None, self._saver_kwargs)
                return self._eager_ops
            ops = self._ops.get(graph)
            if ops is None:
                ops = self._ops[graph] = _graph_ops.GraphOps(graph, self._saver_kwargs)
            return ops

    def _save_keys(self, graph: Any) -> List[Tuple[str, GraphVariable]]:
        variables, candidates = self._variables(graph)
        selection = select(candidates, self._include, self._exclude, self._expect_new, obj_of=LazyVariables(variables))
        names = list(selection.selected) + list(selection.expected_new)
        keys = {name: self._name_map.invert(name) for name in names}
        collisions = describe_collisions((key, name) for name, key in keys.items())
        if collisions:
            raise NameMapError(
                f"save() would write several variables under one checkpoint key: {format_items(collisions)}; "
                "make name_map invertible for these variables or exclude some of them"
            )
        return [(key, variables[name]) for name, key in keys.items()]

    def save(self, sess: Any, save_path: Any, global_step: Any = None, **kwargs: Any) -> str:
        """Save the selected variables under the keys restore() would read them from.

        Exact and scope entries of ``name_map`` are inverted (``{"v3": "v3_x"}`` saves
        ``v3_x`` as ``v3``); regex and callable rules cannot be inverted in general, so
        the variables only they would name are saved under their graph names. Creates
        ``save_path``'s parent directory. ``kwargs`` go to tf.compat.v1.train.Saver.save.

        Returns:
            The path prefix of the written checkpoint.
        """
        check_save_arguments(save_path, global_step)
        graph = self._graph(sess, need_session=True)
        if not self._name_map.invertible:
            _logger.info(
                "save(): regex/callable name_map rules are not inverted; those variables keep their graph names"
            )
        pairs = self._save_keys(graph)
        if not pairs:
            raise UsageError(
                "nothing to save: no variable is selected (check include / exclude, or build the model first)"
            )
        return self._graph_ops(graph).save(sess, os.fspath(save_path), pairs, global_step, kwargs)

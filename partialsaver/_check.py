"""The "is it initialized already?" check SmartSaver runs before initializing what it did
not restore, and the initializers it runs after.

TensorFlow's own way to ask, ``report_uninitialized_variables``, builds one op per variable
of the graph. Here the check covers only the candidates (the variables a restore does not
set), and its cost is dominated by preparing the ops for their first run (graph building
in Python, then Grappler rewriting every new op), so it is built with as few ops as the
graph allows:

- 200 or more resource variables of a single-device, GPU-less graph: their handles are
  stacked into one tensor and one while loop asks each variable in turn (a few dozen ops for
  any number of candidates; benchmarks/check.py, 5,000 candidates among 10,000 variables:
  7.6 s to build and run first instead of 11.8 s, 4.7 s of either being what any new op
  costs there);
- otherwise (reference variables, variables pinned to devices, a GPU): one
  ``is_variable_initialized`` flag per candidate, stacked in chunks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

from partialsaver._tf import tf, v1
from partialsaver.errors import UsageError, format_items

__all__ = ["InitCheck", "build_check", "refuse_fed_initializers"]

# Grappler's first-run cost grows faster than linearly with one op's fan-in (10,000 flags:
# 13 s as one stack, 7-9 s as stacks of 64 joined by one concat), so wide stacks are chunked.
_CHUNK = 64
# Below this many candidates one flag each builds and first-runs as fast as the loop
# (benchmarks/check.py: about even at 200 candidates, the loop 30% faster at 300).
_LOOP_FROM = 200
_FEED_OPS = frozenset({"Placeholder", "PlaceholderV2"})


class InitCheck(NamedTuple):
    """The initialized check over ``parts``, the placeholders their initializers need, and
    one op running every part's initializer (the usual case: none was initialized)."""

    tensor: Optional[Any]
    parts: List[Any]
    needs_feed: Dict[int, str]
    initialize_all: Optional[Any] = None

    def uninitialized(self, flags: Any) -> List[Any]:
        return [part for part, initialized in zip(self.parts, flags) if not initialized]

    def initializers(self, uninitialized: Sequence[Any]) -> Any:
        """What to run to initialize ``uninitialized``: one grouped op when it is every
        part (a first run then prepares one op, not one fetch per variable), else the
        initializers themselves."""
        if self.initialize_all is not None and len(uninitialized) == len(self.parts):
            return self.initialize_all
        return [part.initializer for part in uninitialized]


NO_CHECK = InitCheck(None, [], {})


def build_check(parts: Sequence[Any]) -> InitCheck:
    """The check and the grouped initializer for ``parts`` (tf.Variables of the default
    graph, each listed once); call inside the graph's ``as_default()``."""
    if not parts:
        return NO_CHECK
    with tf.name_scope("partialsaver_initialized"):
        flags = _flags_in_one_loop(parts) if _loop_applies(parts) else _flag_per_variable(parts)
    initialize_all = tf.group(*[part.initializer for part in parts], name="partialsaver_initialize")
    needs_feed = {id(part): feed for part in parts for feed in [_needs_feed(part)] if feed}
    return InitCheck(flags, list(parts), needs_feed, initialize_all)


def _loop_applies(parts: Sequence[Any]) -> bool:
    """Whether the one-loop check is safe: it reads resource handles through a stacked
    tensor, so every ``VarIsInitializedOp`` runs where the loop runs, which is where the
    variables are only when none is pinned to a device and no GPU can take them."""
    if len(parts) < _LOOP_FROM or tf.config.list_physical_devices("GPU"):
        return False
    return all(
        part.device == "" and getattr(getattr(part, "handle", None), "dtype", None) == tf.resource for part in parts
    )


def _flag_per_variable(parts: Sequence[Any]) -> Any:
    flags = [v1.is_variable_initialized(part) for part in parts]
    chunks = [tf.stack(flags[start : start + _CHUNK]) for start in range(0, len(flags), _CHUNK)]
    return chunks[0] if len(chunks) == 1 else tf.concat(chunks, axis=0)


def _flags_in_one_loop(parts: Sequence[Any]) -> Any:
    """One bool per part from a while loop over the parts' resource handles, laid out as
    rows of ``_CHUNK`` (stacked twice: resource tensors cannot be concatenated, and one
    wide stack is what makes Grappler slow); the last row is padded with its last handle."""
    count = len(parts)
    handles = [part.handle for part in parts]
    handles += [handles[-1]] * (-count % _CHUNK)
    rows = tf.stack([tf.stack(handles[start : start + _CHUNK]) for start in range(0, len(handles), _CHUNK)])

    def ask(index: Any, flags: Any) -> Any:
        handle = tf.gather(tf.gather(rows, index // _CHUNK), index % _CHUNK)
        return index + 1, flags.write(index, tf.raw_ops.VarIsInitializedOp(resource=handle))

    _, flags = tf.while_loop(lambda index, _: index < count, ask, [tf.constant(0), tf.TensorArray(tf.bool, size=count)])
    return flags.stack()


def _needs_feed(part: Any) -> str:
    """The placeholder a variable's initializer depends on, or ""."""
    pending, seen = [part.initializer], set()
    while pending:
        op = pending.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in _FEED_OPS:
            return op.name
        pending.extend(tensor.op for tensor in op.inputs)
        pending.extend(op.control_inputs)
    return ""


def refuse_fed_initializers(parts: Sequence[Any], needs_feed: Mapping[int, str]) -> None:
    """UsageError before anything runs when an initializer to run depends on a placeholder."""
    refused = [f"{part.op.name} (feeds {needs_feed[id(part)]})" for part in parts if id(part) in needs_feed]
    if refused:
        raise UsageError(
            f"{len(refused)} variable(s) not restored have an initializer that needs a fed placeholder: "
            f"{format_items(refused)}; initialize them yourself first (then they are kept), or pass "
            "init_unrestored=False"
        )

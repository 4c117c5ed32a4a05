"""Restoring in batches under a memory budget: each batch reads at most the budget (a larger
tensor alone), every tensor is checked before the first assignment, and a batch that fails
after that says exactly what was and was not restored."""

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import CorruptCheckpointError, SmartSaver, UsageError, list_variables
from tests.conftest import zeros_variable

v1 = tf.compat.v1
MIB = 2**20
VALUES = {f"w{i}": np.full(MIB // 4, i + 1, np.float32) for i in range(6)}  # 1 MiB each


def restore_reads(graph):
    """The keys each RestoreV2 op partialsaver built reads, in the order the ops were built."""
    return [[name.decode() for name in tf.get_static_value(op.inputs[1])] for op in graph.get_operations()
            if op.type == "RestoreV2" and op.name.startswith("partialsaver_restore")]


@pytest.fixture
def six(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint(VALUES)
    variables = {name: zeros_variable(name, value.shape) for name, value in VALUES.items()}
    sess.run([variable.initializer for variable in variables.values()])
    sess.run([variable.assign(tf.fill(variable.shape, -9.0)) for variable in variables.values()])
    return checkpoint, variables


def test_each_batch_reads_at_most_the_budget(six, graph, sess):
    checkpoint, variables = six
    budget = int(2.5 * MIB)
    plan = SmartSaver(memory_budget=budget).restore(sess, checkpoint)
    assert plan.ok
    sizes = {info.name: info.nbytes for info in list_variables(checkpoint)}
    reads = restore_reads(graph)
    assert reads == [["w0", "w1"], ["w2", "w3"], ["w4", "w5"]]
    assert all(sum(sizes[key] for key in batch) <= budget for batch in reads)  # bytes read per batch
    for name, variable in variables.items():
        assert sess.run(variable).tolist() == VALUES[name].tolist()


def test_a_tensor_larger_than_the_budget_goes_alone_and_none_means_one_step(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"big": np.ones(3 * MIB // 4, np.float32), "a": np.ones(MIB // 4, np.float32),
                                   "b": np.ones(MIB // 4, np.float32)})
    for name, size in (("a", MIB // 4), ("b", MIB // 4), ("big", 3 * MIB // 4)):
        zeros_variable(name, [size])
    SmartSaver(memory_budget=2 * MIB).restore(sess, checkpoint)
    assert restore_reads(graph) == [["a", "b"], ["big"]]
    SmartSaver(memory_budget=None).restore(sess, checkpoint)
    assert restore_reads(graph)[-1] == ["a", "b", "big"]  # one step


def test_a_damaged_checkpoint_changes_no_variable_before_the_first_batch(six, sess):
    checkpoint, variables = six
    with open(checkpoint + ".data-00000-of-00001", "r+b") as data:
        data.seek(5 * MIB + 100)  # inside w5, the last batch
        data.write(b"\x13" * 8)
    with pytest.raises(CorruptCheckpointError, match="w5.*fail their crc32c check.*No variable was changed"):
        SmartSaver(memory_budget=int(2.5 * MIB)).restore(sess, checkpoint)
    assert all(set(sess.run(variable).tolist()) == {-9.0} for variable in variables.values())


class TruncatingSession:
    """The session, passed through; after its first run (the first batch) the checkpoint's
    data file is truncated, as if another process replaced the checkpoint mid-restore."""

    def __init__(self, sess, data_file):
        self._sess, self._data_file, self.runs = sess, data_file, 0
        self.graph = sess.graph

    def run(self, *args, **kwargs):
        result = self._sess.run(*args, **kwargs)
        self.runs += 1
        if self.runs == 1:
            with open(self._data_file, "r+b") as data:
                data.truncate(0)
        return result


def test_a_batch_that_fails_after_the_check_says_what_was_restored(six, sess):
    checkpoint, variables = six
    session = TruncatingSession(sess, checkpoint + ".data-00000-of-00001")
    with pytest.raises(CorruptCheckpointError) as caught:
        SmartSaver(memory_budget=int(2.5 * MIB)).restore(session, checkpoint)
    message = str(caught.value)
    assert "failed in batch 2 of 3" in message and "every tensor had passed its checksum" in message
    assert "2 variable(s) were restored: 'w0', 'w1'; 4 were not: 'w2', 'w3', 'w4', 'w5'" in message
    assert [sess.run(variables[name])[0] for name in sorted(VALUES)] == [1.0, 2.0, -9.0, -9.0, -9.0, -9.0]


def test_eager_variables_restore_in_batches_too(write_checkpoint):
    checkpoint = write_checkpoint(VALUES)
    variables = [tf.Variable(tf.zeros([MIB // 4]), name=name) for name in VALUES]
    plan = SmartSaver(var_list=variables, memory_budget=int(2.5 * MIB)).restore(None, checkpoint)
    assert plan.ok and [variable.numpy()[0] for variable in variables] == [1, 2, 3, 4, 5, 6]
    with open(checkpoint + ".data-00000-of-00001", "r+b") as data:
        data.truncate(4 * MIB)  # w4 and w5 gone: found before any assignment
    for variable in variables:
        variable.assign(tf.fill([MIB // 4], -9.0))
    with pytest.raises(CorruptCheckpointError, match="No variable was changed"):
        SmartSaver(var_list=variables, memory_budget=int(2.5 * MIB)).restore(None, checkpoint)
    assert all(variable.numpy()[0] == -9.0 for variable in variables)


@pytest.mark.parametrize("budget", [0, -1, 1.5, True, "1G"])
def test_a_bad_budget_is_a_usage_error(budget):
    with pytest.raises(UsageError, match="memory_budget must be a positive number of bytes or None"):
        SmartSaver(memory_budget=budget)

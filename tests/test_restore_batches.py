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


class RecordingSession:
    """The session, passed through, recording what each run fetched."""

    def __init__(self, sess):
        self._sess, self.fetched = sess, []
        self.graph = sess.graph

    def run(self, fetches, *args, **kwargs):
        self.fetched.append(fetches)
        return self._sess.run(fetches, *args, **kwargs)


def restore_reads(session):
    """The keys each restore op that ran read, in the order they ran."""
    reads = []
    for fetches in session.fetched:
        for name in fetches if isinstance(fetches, list) else [fetches]:
            if isinstance(name, str) and name.startswith("partialsaver_restore") and name.endswith("/restore_all:0"[:-2]):
                scope = name.rsplit("/", 1)[0]
                reads += [[key.decode() for key in tf.get_static_value(op.inputs[1])]
                          for op in session.graph.get_operations()
                          if op.type == "RestoreV2" and op.name.startswith(scope + "/")]
    return reads


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
    session = RecordingSession(sess)
    plan = SmartSaver(memory_budget=budget).restore(session, checkpoint)
    assert plan.ok
    sizes = {info.name: info.nbytes for info in list_variables(checkpoint)}
    reads = restore_reads(session)
    assert reads == [["w0", "w1"], ["w2", "w3"], ["w4", "w5"]]
    assert all(sum(sizes[key] for key in batch) <= budget for batch in reads)  # bytes read per batch
    for name, variable in variables.items():
        assert sess.run(variable).tolist() == VALUES[name].tolist()


def test_a_tensor_larger_than_the_budget_goes_alone_fresh_variables_and_none_go_in_one_step(write_checkpoint, graph, sess):
    checkpoint = write_checkpoint({"big": np.ones(3 * MIB // 4, np.float32), "a": np.ones(MIB // 4, np.float32),
                                   "b": np.ones(MIB // 4, np.float32)})
    for name, size in (("a", MIB // 4), ("b", MIB // 4), ("big", 3 * MIB // 4)):
        zeros_variable(name, [size])
    session = RecordingSession(sess)
    SmartSaver(memory_budget=2 * MIB).restore(session, checkpoint)  # fresh variables: nothing old to keep
    assert restore_reads(session) == [["a", "b", "big"]]
    session = RecordingSession(sess)
    SmartSaver(memory_budget=2 * MIB).restore(session, checkpoint)  # now they hold values: in batches
    assert restore_reads(session) == [["a", "b"], ["big"]]
    session = RecordingSession(sess)
    SmartSaver(memory_budget=None).restore(session, checkpoint)
    assert restore_reads(session) == [["a", "b", "big"]]  # one step


def test_a_damaged_checkpoint_changes_no_variable_before_the_first_batch(six, sess):
    checkpoint, variables = six
    with open(checkpoint + ".data-00000-of-00001", "r+b") as data:
        data.seek(5 * MIB + 100)  # inside w5, the last batch
        data.write(b"\x13" * 8)
    with pytest.raises(CorruptCheckpointError, match="w5.*fail their crc32c check.*No variable was changed"):
        SmartSaver(memory_budget=int(2.5 * MIB)).restore(sess, checkpoint)
    assert all(set(sess.run(variable).tolist()) == {-9.0} for variable in variables.values())


class TruncatingSession:
    """The session, passed through; after the first restore run (the first batch) the
    checkpoint's data file is truncated, as if another process replaced the checkpoint mid-restore."""

    def __init__(self, sess, data_file):
        self._sess, self._data_file, self.runs = sess, data_file, 0
        self.graph = sess.graph

    def run(self, fetches, *args, **kwargs):
        result = self._sess.run(fetches, *args, **kwargs)
        if isinstance(fetches, list) and any("partialsaver_restore" in str(fetch) for fetch in fetches):
            self.runs += 1
        if self.runs == 1:
            self.runs += 1
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


@pytest.mark.parametrize("initialized_first", [False, True], ids=["fresh", "holding values"])
def test_a_scaffold_builds_every_batch_before_the_graph_is_finalized(write_checkpoint, tmp_path, initialized_first):
    checkpoint = write_checkpoint(VALUES)
    with tf.Graph().as_default():
        variables = [zeros_variable(name, value.shape) for name, value in VALUES.items()]
        step = tf.compat.v1.train.get_or_create_global_step()
        # Holding values: the scaffold's init_op initializes everything, then init_fn restores in batches.
        init_op = {"init_op": v1.global_variables_initializer()} if initialized_first else {}
        scaffold = SmartSaver(include="w*", memory_budget=int(2.5 * MIB)).scaffold(checkpoint, **init_op)
        with v1.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path / "run"), scaffold=scaffold,
                                               save_summaries_steps=None, save_checkpoint_secs=None) as sess:
            assert [sess.run(variable)[0] for variable in variables] == [1, 2, 3, 4, 5, 6]
            assert sess.run(step) == 0

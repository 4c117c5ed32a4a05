"""The bad-input matrix: every case is a PartialSaverError subclass whose message names the
problem and the fix, and the graph and session are left as they were."""

import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NameMapError,
    PartialSaverError,
    SmartSaver,
    UsageError,
    VariableNotFoundError,
    list_variables,
    load_variable,
    rename_variables,
)
from partialsaver.cli import main as cli
from tests.conftest import save_values, zeros_variable

v1 = tf.compat.v1


class Env:
    """A graph with v1, v2, v3_x set to known values in an open session, and the seed checkpoint."""

    def __init__(self, tmp_path, checkpoint):
        self.tmp_path, self.checkpoint = tmp_path, checkpoint
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.variables = {name: zeros_variable(name, shape) for name, shape in (("v1", [3]), ("v2", [5]), ("v3_x", [4]))}
            assigns = [variable.assign(tf.fill(variable.shape, 9.0)) for variable in self.variables.values()]
            self.sess = v1.Session(graph=self.graph)
            self.sess.run(v1.global_variables_initializer())
            self.sess.run(assigns)

    def state(self):
        return len(self.graph.get_operations()), {k: v.tolist() for k, v in self.sess.run(self.variables).items()}


def other_graph_variable():
    with tf.Graph().as_default():
        return zeros_variable("v1", [3])


def closed_session(env):
    closed = v1.Session(graph=env.graph)
    closed.close()
    return closed


def file_path(env):
    path = env.tmp_path / "notes.txt"
    path.write_text("not a checkpoint")
    return str(path)


def empty_dir(env):
    path = env.tmp_path / "empty"
    path.mkdir()
    return str(path)


def deleted_latest(env):
    directory = os.path.dirname(env.checkpoint)
    for name in os.listdir(directory):
        if name.startswith("model.ckpt"):
            os.remove(os.path.join(directory, name))
    return directory


def zero_byte_index(env):
    path = env.tmp_path / "zero" / "model.ckpt"
    path.parent.mkdir()
    (path.parent / "model.ckpt.index").write_bytes(b"")
    (path.parent / "model.ckpt.data-00000-of-00001").write_bytes(b"")
    return str(path)


# id, call(env), expected class, message fragment (a regex) naming the problem and the fix
CASES = [
    ("include=5", lambda e: SmartSaver(include=5), NameMapError, "include=5 is not a filter spec; pass a scope"),
    ("exclude=[re, 3.0]", lambda e: SmartSaver(exclude=[re.compile("x"), 3.0]), NameMapError, "3.0.*each spec must be"),
    ("include=''", lambda e: SmartSaver(include=""), NameMapError, "empty scope would match every name"),
    ("name_map=list", lambda e: SmartSaver(name_map=[("v3", "v3_x")]), NameMapError, "must be a dict.*or a callable"),
    ("name_map scope side", lambda e: SmartSaver(name_map={"a/": "b"}), NameMapError, "needs '/' at the end of both"),
    ("var_list=str", lambda e: SmartSaver(var_list="v1"), UsageError, "var_list must be None, a list"),
    ("var_list=[1, 2]", lambda e: SmartSaver(var_list=[1, 2]), UsageError, "not variables.*pass tf.Variable"),
    ("var_list duplicated", lambda e: SmartSaver(var_list=[e.variables["v1"], e.variables["v1"]]), UsageError,
     "more than once.*pass each variable once"),
    ("var_list dict bad value", lambda e: SmartSaver({"v1": 3}), UsageError, "must map checkpoint names"),
    ("dict var_list and name_map", lambda e: SmartSaver({"v1": e.variables["v1"]}, name_map={"a": "b"}), UsageError,
     "either the dict or name_map"),
    ("variable of another graph", lambda e: SmartSaver(var_list=[other_graph_variable()]).restore(e.sess, e.checkpoint),
     UsageError, "another graph.*build the SmartSaver in the graph"),
    ("closed session", lambda e: SmartSaver().restore(closed_session(e), e.checkpoint), UsageError, "session is closed"),
    ("sess=None in graph mode", lambda e: SmartSaver(var_list=list(e.variables.values())).restore(None, e.checkpoint),
     UsageError, "Session is needed in graph mode"),
    ("sess=str", lambda e: SmartSaver().restore("session", e.checkpoint), UsageError, "sess must be a tf.compat.v1.Session"),
    ("strict='yes'", lambda e: SmartSaver(strict="yes"), UsageError, "strict must be True or False"),
    ("restore skip_mismatched='no'", lambda e: SmartSaver().restore(e.sess, e.checkpoint, skip_mismatched="no"),
     UsageError, "skip_mismatched must be True or False"),
    ("init_unrestored=1", lambda e: SmartSaver().restore(e.sess, e.checkpoint, init_unrestored=1), UsageError,
     "init_unrestored must be True or False"),
    ("min_restored_fraction=2", lambda e: SmartSaver(min_restored_fraction=2), UsageError, "number in \\[0, 1\\]"),
    ("max_to_keep='x'", lambda e: SmartSaver(max_to_keep="x"), UsageError, "wrong type.*max_to_keep='x'"),
    ("unknown saver option", lambda e: SmartSaver(max_to_keeep=3), UsageError, "unknown keyword.*max_to_keeep"),
    ("save_path=''", lambda e: SmartSaver().save(e.sess, ""), UsageError, "save_path must be a non-empty"),
    ("save global_step=1.5", lambda e: SmartSaver().save(e.sess, str(e.tmp_path / "m"), global_step=1.5), UsageError,
     "global_step must be an int"),
    ("save selects nothing", lambda e: SmartSaver(include="nothing_here").save(e.sess, str(e.tmp_path / "m")),
     UsageError, "nothing to save"),
    ("checkpoint=None", lambda e: SmartSaver().restore(e.sess, None), UsageError, "must be a str or os.PathLike"),
    ("missing path", lambda e: SmartSaver().restore(e.sess, str(e.tmp_path / "nope")), CheckpointNotFoundError,
     "no checkpoint at.*Pass a checkpoint directory or prefix"),
    ("a file, not a checkpoint", lambda e: SmartSaver().restore(e.sess, file_path(e)), CorruptCheckpointError,
     "not a TensorFlow V2 checkpoint.*re-save it"),
    ("empty directory", lambda e: SmartSaver().restore(e.sess, empty_dir(e)), CheckpointNotFoundError,
     "holds no checkpoint.*pass the directory a Saver wrote"),
    ("state file -> deleted prefix", lambda e: SmartSaver().restore(e.sess, deleted_latest(e)),
     CheckpointNotFoundError, "does not exist \\(deleted\\?\\)"),
    ("zero-byte index", lambda e: SmartSaver().restore(e.sess, zero_byte_index(e)), CorruptCheckpointError,
     "too short for a TensorFlow checkpoint index. Re-copy"),
    ("load_variable name=5", lambda e: load_variable(e.checkpoint, 5), UsageError, "name must be a str"),
    ("load_variable unknown", lambda e: load_variable(e.checkpoint, "v3x"), VariableNotFoundError,
     "no variable 'v3x'; did you mean 'v3'"),
    ("rename budget=0", lambda e: rename_variables(e.checkpoint, str(e.tmp_path / "r"), {"v3": "x"}, memory_budget=0),
     UsageError, "memory_budget must be a positive"),
    ("rename dst=123", lambda e: rename_variables(e.checkpoint, 123, {"v3": "x"}), UsageError, "dst must be a str"),
    ("strict mismatch", lambda e: SmartSaver(strict=True).restore(e.sess, e.checkpoint), PartialSaverError,
     "missing variable.*v3_x.*strict=True"),
]


@pytest.mark.parametrize("case, call, error, fragment", CASES, ids=[case[0] for case in CASES])
def test_bad_input(seed_checkpoint, tmp_path, case, call, error, fragment):
    env = Env(tmp_path, seed_checkpoint)
    before = env.state()
    with env.graph.as_default():
        with pytest.raises(error, match=fragment):
            call(env)
    assert env.state() == before
    env.sess.close()


def test_an_empty_graph_and_an_empty_var_list(seed_checkpoint, graph, sess):
    with pytest.raises(UsageError, match="the graph has no global variables; build the model first"):
        SmartSaver().restore(sess, seed_checkpoint)
    with pytest.raises(UsageError, match="var_list is empty"):
        SmartSaver(var_list=[]).plan(seed_checkpoint)


def test_a_checkpoint_with_no_variables(tmp_path):
    empty = tf.train.Checkpoint().save(str(tmp_path / "empty" / "ckpt"))  # eager: only its save counter
    assert [info.name for info in list_variables(empty)] == ["save_counter"]
    with tf.Graph().as_default():
        zeros_variable("w", [2])
        with v1.Session() as sess:
            plan = SmartSaver().restore(sess, empty)
            assert plan.missing == ("w",) and plan.unused == ("save_counter",)
            with pytest.raises(PartialSaverError, match="missing"):
                SmartSaver(strict=True).restore(sess, empty)


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_state_file_with_relative_or_absolute_paths(tmp_path, relative):
    with tf.Graph().as_default():
        zeros_variable("w", [2])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver(save_relative_paths=relative).save(sess, str(tmp_path / "run" / "model.ckpt"), global_step=3)
    state = (tmp_path / "run" / "checkpoint").read_text()
    assert ("/" not in state.split("\n")[0]) == relative
    assert [info.name for info in list_variables(tmp_path / "run")] == ["w"]


def test_a_relative_checkpoint_path(seed_checkpoint, monkeypatch, renamed_graph, sess):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(seed_checkpoint)))
    assert SmartSaver(name_map={"v3": "v3_x"}).restore(sess, "seed").ok


def test_unicode_and_spaces_in_paths_and_names(tmp_path):
    directory = tmp_path / "dir é 中 with spaces"
    directory.mkdir()
    src = save_values(directory, {"v1": np.ones(2, np.float32)}, filename="model ckpt é")
    dst = str(directory / "renamed é.ckpt")
    rename_variables(src, dst, {"v1": "scope ü/v1 é"})
    assert [info.name for info in list_variables(dst)] == ["scope ü/v1 é"]
    np.testing.assert_array_equal(load_variable(dst, "scope ü/v1 é"), [1, 1])
    with tf.Graph().as_default():
        w = zeros_variable("w", [2])
        with v1.Session() as sess:
            SmartSaver(name_map={"scope ü/v1 é": "w"}, strict=True).restore(sess, dst)
            np.testing.assert_array_equal(sess.run(w), [1, 1])


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory nobody may write into: mode 0555 for an ordinary user; for root, who
    bypasses modes, the immutable attribute (chattr +i), which binds root too."""
    directory = tmp_path / "readonly"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no directory is unwritable for root")
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_a_directory_without_write_permission(seed_checkpoint, unwritable_dir, graph, sess):
    v1.get_variable("w", initializer=tf.constant([1.0]))
    sess.run(v1.global_variables_initializer())
    with pytest.raises(UsageError, match="cannot write the checkpoint .*permission denied; pass a save_path"):
        SmartSaver().save(sess, str(unwritable_dir / "model.ckpt"))
    with pytest.raises(UsageError, match="is not writable; pass a dst in a writable directory"):
        rename_variables(seed_checkpoint, str(unwritable_dir / "r.ckpt"), {"v1": "x"})
    assert os.listdir(unwritable_dir) == []


@pytest.mark.parametrize("argv, fragment", [
    (["list", "{file}"], "not a TensorFlow V2 checkpoint"),
    (["rename", "{ckpt}", "{tmp}/x.ckpt", "--map", "v3=x", "--memory-budget", "nan"], "positive number of megabytes"),
    (["rename", "{ckpt}", "{tmp}/x.ckpt", "--map", "v3=x", "--memory-budget", "inf"], "positive number of megabytes"),
    (["plan", "{ckpt}", "--meta", "{tmp}/missing.meta"], "cannot import the meta graph"),
    (["show", "{ckpt}", "v3_y"], "did you mean 'v3'"),
    (["diff", "{ckpt}", "{tmp}/nope"], "no checkpoint at"),
])
def test_cli_bad_input_is_one_line_exit_2(seed_checkpoint, tmp_path, capsys, argv, fragment):
    (tmp_path / "file.txt").write_text("hello")
    argv = [arg.format(ckpt=seed_checkpoint, tmp=tmp_path, file=tmp_path / "file.txt") for arg in argv]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err

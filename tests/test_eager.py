"""TF2 eager and Keras: name-based checkpoints into eager variables and Keras models,
and object-based checkpoints read by their readable names."""

import re

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import SmartSaver, UsageError, list_variables, load_variable, rename_variables

keras = pytest.importorskip("keras")
v1 = tf.compat.v1
# Keras 3 names a variable by its path, prefixed by a Sequential's own name ("net/layer1/kernel");
# Keras 2 variables are tf.Variables named "layer1/kernel:0".
KERAS_3 = int(keras.__version__.split(".")[0]) >= 3
PREFIX = "net/" if KERAS_3 else ""


def keras_model(name="net", seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="layer1"),
                             keras.layers.Dense(2, name="layer2")], name=name)


def variable_names(model):
    """The graph names partialsaver gives Keras variables."""
    return [variable.path if KERAS_3 else variable.name[: -len(":0")] for variable in model.variables]


def test_eager_save_plan_restore_round_trip(tmp_path):
    assert tf.executing_eagerly()
    source = keras_model(seed=1)
    path = SmartSaver(var_list=source.variables).save(None, str(tmp_path / "keras" / "model.ckpt"))
    assert [info.name for info in list_variables(path)] == sorted(variable_names(source))

    target = keras_model(seed=2)
    saver = SmartSaver(var_list=target.variables)
    plan = saver.plan(path)
    assert plan.ok and len(plan.restored) == 4
    assert saver.restore(None, path) == plan
    for restored, original in zip(target.variables, source.variables):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())


def test_eager_plan_lists_what_keeps_its_initial_value(tmp_path):
    source = keras_model(seed=1)
    path = SmartSaver(var_list=source.variables[:2]).save(None, str(tmp_path / "half.ckpt"))
    target = keras_model(seed=2)
    before = target.variables[2].numpy().copy()
    plan = SmartSaver(var_list=target.variables).restore(None, path)
    assert plan.missing == (f"{PREFIX}layer2/bias", f"{PREFIX}layer2/kernel") == plan.initialized
    np.testing.assert_array_equal(target.variables[2].numpy(), before)  # kept its initial value


def test_eager_needs_a_var_list_and_no_session():
    with pytest.raises(UsageError, match="var_list=model.variables"):
        SmartSaver().plan("anything")
    with pytest.raises(UsageError, match="need no session"):
        SmartSaver(var_list=[tf.Variable(1.0, name="x")]).restore(object(), "anything")


def tf1_checkpoint(path):
    """A TF1 graph of two dense layers written with get_variable; returns (checkpoint, f(x))."""
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    with tf.Graph().as_default():
        inputs = tf.constant(x)
        hidden = inputs
        for layer, (fan_in, fan_out) in (("layer1", (4, 3)), ("layer2", (3, 2))):
            weights = v1.get_variable(f"{layer}/weights", [fan_in, fan_out], initializer=v1.random_normal_initializer(seed=3))
            biases = v1.get_variable(f"{layer}/biases", [fan_out], initializer=v1.random_normal_initializer(seed=4))
            hidden = tf.matmul(hidden, weights) + biases
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver().save(sess, path), x, sess.run(hidden)


MIGRATION_MAP = {re.compile(r"^(layer\d)/weights$"): PREFIX + r"\1/kernel",
                 re.compile(r"^(layer\d)/biases$"): PREFIX + r"\1/bias"}


def test_tf1_graph_checkpoint_into_a_keras_3_model(tmp_path):
    checkpoint, x, expected = tf1_checkpoint(str(tmp_path / "tf1" / "model.ckpt"))
    model = keras_model()

    plain = SmartSaver(var_list=model.variables).plan(checkpoint)
    assert plain.suggestions[f"{PREFIX}layer1/kernel"][0] == "layer1/weights"
    assert plain.suggestions[f"{PREFIX}layer2/bias"][0] == "layer2/biases"
    assert plain.proposed_name_map == {re.compile(r"^(.*)/weights$"): PREFIX + r"\1/kernel",
                                       re.compile(r"^(.*)/biases$"): PREFIX + r"\1/bias"}

    plan = SmartSaver(var_list=model.variables, name_map=MIGRATION_MAP, strict=True).restore(None, checkpoint)
    assert plan.ok and len(plan.restored) == 4
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-6)


def test_an_object_based_checkpoint_reads_by_readable_names(tmp_path):
    module = tf.Module(name="net")
    module.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    module.b = tf.Variable([1.0, 2.0], name="b")
    path = tf.train.Checkpoint(net=module).save(str(tmp_path / "object" / "ckpt"))
    expected_w = module.w.numpy()

    assert [info.name for info in list_variables(path)] == ["net/b", "net/w", "save_counter"]
    np.testing.assert_array_equal(load_variable(path, "net/w"), module.w.numpy())

    with tf.Graph().as_default():  # into a TF1 graph
        w = v1.get_variable("model/w", [2, 3])
        with v1.Session() as sess:
            plan = SmartSaver(name_map={"net/": "model/"}).restore(sess, path)
            assert [(r.checkpoint_key, r.graph_name) for r in plan.restored] == [("net/w", "model/w")]
            np.testing.assert_array_equal(sess.run(w), expected_w)

    eager_w = tf.Variable(tf.zeros([2, 3]), name="w")  # into eager variables
    SmartSaver(var_list=[eager_w], name_map={"net/w": "w"}).restore(None, path)
    np.testing.assert_array_equal(eager_w.numpy(), module.w.numpy())

    converted = str(tmp_path / "named" / "model.ckpt")
    (tmp_path / "named").mkdir()
    rename_variables(path, converted, {"net/": "model/"}, exclude="save_counter")
    assert [info.name for info in list_variables(converted)] == ["model/b", "model/w"]
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" not in v1.train.NewCheckpointReader(converted).get_variable_to_shape_map()


def test_eager_restore_of_bfloat16_and_half_variables(write_checkpoint):
    values = {"bf16": tf.constant([1.5, -2.25], tf.bfloat16).numpy(), "half": np.array([0.5, 3.0], np.float16)}
    checkpoint = write_checkpoint(values)
    variables = [tf.Variable(tf.zeros([2], tf.bfloat16), name="bf16"), tf.Variable(tf.zeros([2], tf.float16), name="half")]
    assert SmartSaver(var_list=variables, strict=True).restore(None, checkpoint).ok
    assert variables[0].numpy().tobytes() == values["bf16"].tobytes()
    assert variables[1].numpy().tolist() == [0.5, 3.0]

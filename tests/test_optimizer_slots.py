"""OPTIMIZER_SLOTS covers the optimizer state real checkpoints carry: a table of keys seen in
checkpoints written by each optimizer, then the optimizers this TensorFlow can run, built for
real, every key they write checked; and what fine-tuning does with a BERT checkpoint."""


import numpy as np
import pytest
import tensorflow as tf

from partialsaver import GLOBAL_STEP, OPTIMIZER_SLOTS, SmartSaver, list_variables, load_variable, rename_variables
from tests.optimizer_slot_cases import CASES, KNOWN_LIMITS, OBJ

v1 = tf.compat.v1


@pytest.mark.parametrize("key, expected, origin", CASES + KNOWN_LIMITS, ids=[case[0] for case in CASES + KNOWN_LIMITS])
def test_the_table_of_keys(key, expected, origin):
    assert bool(OPTIMIZER_SLOTS.search(key)) is expected, origin


@pytest.mark.parametrize("key, expected", [
    ("global_step", True), ("net/global_step", True), ("global_step" + OBJ, True), ("global_step_x", False),
    ("model/global_steps", False),
])
def test_global_step(key, expected):
    assert bool(GLOBAL_STEP.search(key)) is expected


def keys_written_by(make_optimizer, tmp_path):
    """(model variable names, every key a tf.compat.v1.train.Saver wrote after one step)."""
    with tf.Graph().as_default():
        kernel = v1.get_variable("dense/kernel", [3, 2])
        bias = v1.get_variable("dense/bias", [2])
        query = v1.get_variable("bert/encoder/layer_0/attention/self/query/kernel", [2, 2])
        loss = tf.reduce_sum(tf.square(tf.matmul(tf.matmul(tf.ones([4, 3]), kernel) + bias, query)))
        model = sorted(variable.op.name for variable in v1.global_variables())
        step = v1.train.get_or_create_global_step()
        optimizers = make_optimizer()
        train = tf.group(*[optimizer.minimize(loss, global_step=step if index == 0 else None)
                           for index, optimizer in enumerate(optimizers)])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            path = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"), write_meta_graph=False)
    return model, [info.name for info in list_variables(path)]


TF1_OPTIMIZERS = {
    "GradientDescent": lambda: [v1.train.GradientDescentOptimizer(0.1)],
    "Momentum": lambda: [v1.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True)],
    "Adam": lambda: [v1.train.AdamOptimizer(0.1)],
    "two Adams": lambda: [v1.train.AdamOptimizer(0.1), v1.train.AdamOptimizer(0.2)],
    "Adagrad": lambda: [v1.train.AdagradOptimizer(0.1)],
    "AdagradDA": lambda: [v1.train.AdagradDAOptimizer(0.1, v1.train.get_or_create_global_step())],
    "Adadelta": lambda: [v1.train.AdadeltaOptimizer(0.1)],
    "RMSProp centered": lambda: [v1.train.RMSPropOptimizer(0.1, momentum=0.9, centered=True)],
    "Ftrl": lambda: [v1.train.FtrlOptimizer(0.1, l2_shrinkage_regularization_strength=0.1)],
    "ProximalAdagrad": lambda: [v1.train.ProximalAdagradOptimizer(0.1)],
    "ProximalGradientDescent": lambda: [v1.train.ProximalGradientDescentOptimizer(0.1)],
    "mixed precision loss scale": lambda: [v1.train.experimental.MixedPrecisionLossScaleOptimizer(
        v1.train.AdamOptimizer(0.1), "dynamic")],
}


@pytest.mark.parametrize("name", list(TF1_OPTIMIZERS))
def test_every_tf_compat_v1_optimizer(name, tmp_path):
    model, keys = keys_written_by(TF1_OPTIMIZERS[name], tmp_path)
    state = [key for key in keys if key not in model and key != "global_step"]
    assert [key for key in keys if OPTIMIZER_SLOTS.search(key)] == state
    if name not in ("GradientDescent", "ProximalGradientDescent"):
        assert state  # the optimizer did keep state, and all of it matched


def bert_optimization():
    return pytest.importorskip("bert.optimization", reason="pip install bert-tensorflow (Google BERT's own code)")


def build_bert_training_graph(optimization):
    """BERT's variable names (tiny shapes) trained by BERT's own AdamWeightDecayOptimizer."""
    names = ["bert/embeddings/word_embeddings", "bert/embeddings/LayerNorm/beta",
             "bert/encoder/layer_0/attention/self/query/kernel", "bert/encoder/layer_0/attention/self/query/bias",
             "cls/seq_relationship/output_weights"]
    variables = [v1.get_variable(name, [2, 2] if name.endswith(("kernel", "embeddings", "weights")) else [2])
                 for name in names]
    loss = tf.add_n([tf.reduce_sum(tf.square(variable)) for variable in variables])
    step = v1.train.get_or_create_global_step()
    optimizer = optimization.AdamWeightDecayOptimizer(learning_rate=0.1, exclude_from_weight_decay=["LayerNorm"])
    grads = tf.gradients(loss, variables)
    train = optimizer.apply_gradients(list(zip(grads, variables)), global_step=step)
    slots = {name: [v for v in v1.global_variables() if v.op.name == f"{name}/adam_m"][0] for name in names}
    return dict(zip(names, variables)), slots, tf.group(train, step.assign_add(1))


@pytest.fixture
def bert_pretrained(tmp_path):
    optimization = bert_optimization()
    with tf.Graph().as_default():
        variables, _, train = build_bert_training_graph(optimization)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            path = v1.train.Saver().save(sess, str(tmp_path / "bert" / "model.ckpt"), write_meta_graph=False)
            values = sess.run(variables)
    return path, list(variables), values


def test_berts_adam_weight_decay_state_is_optimizer_state(bert_pretrained):
    path, names, _ = bert_pretrained
    keys = [info.name for info in list_variables(path)]
    state = sorted(set(keys) - set(names) - {"global_step"})
    assert state == sorted(f"{name}/{slot}" for name in names for slot in ("adam_m", "adam_v"))
    assert [key for key in keys if OPTIMIZER_SLOTS.search(key)] == state


def test_fine_tuning_bert_restores_weights_only_into_berts_own_training_graph(bert_pretrained):
    path, names, values = bert_pretrained
    with tf.Graph().as_default():
        variables, slots, _ = build_bert_training_graph(bert_optimization())
        with v1.Session() as sess:
            plan = SmartSaver(exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP]).restore(sess, path)
            assert sorted(r.graph_name for r in plan.restored) == sorted(names) and plan.ok
            assert len(plan.not_selected) == 2 * len(names) + 1  # the slots and the step: left out on purpose
            for name in names:
                np.testing.assert_array_equal(sess.run(variables[name]), values[name])
                assert not sess.run(slots[name]).any()  # fresh zeros, not pretraining's moments
            assert sess.run(v1.train.get_global_step()) == 0


def test_bert_slots_are_reported_as_optimizer_state_and_never_suggested(bert_pretrained, tmp_path):
    path, names, _ = bert_pretrained
    with tf.Graph().as_default():
        v1.get_variable("bert/encoder/layer_0/attention/self/query/kernel_renamed", [2, 2])
        plan = SmartSaver().plan(path)
    assert plan.suggestions == {"bert/encoder/layer_0/attention/self/query/kernel_renamed": (
        "bert/encoder/layer_0/attention/self/query/kernel",)}
    assert f"unused optimizer state ({2 * len(names)})" in str(plan)
    stripped = rename_variables(path, str(tmp_path / "weights" / "model.ckpt"), exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP])
    assert sorted(stripped) == sorted(names)


def keras_major():
    keras = pytest.importorskip("keras")
    return keras, int(keras.__version__.split(".")[0])


def keras_checkpoint_keys(make_optimizer, tmp_path):
    """(the keys holding the model's weights, every key) of tf.train.Checkpoint(model, optimizer)
    after one training step. The weights are then set to values no optimizer variable holds
    (1000, 1001, ...), which is how their keys are told apart."""
    keras, _ = keras_major()
    keras.backend.clear_session()
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(make_optimizer(keras), "mse")
    model.train_on_batch(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32))
    for index, weight in enumerate(model.weights):
        weight.assign(np.full(weight.shape, 1000.0 + index, np.float32))
    both = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(tmp_path / "both" / "ckpt"))
    keys = [info.name for info in list_variables(both) if info.name != "save_counter"]
    marks = {1000.0 + index for index in range(len(model.weights))}
    model_keys = [key for key in keys if load_variable(both, key).dtype.kind == "f"
                  and set(np.unique(load_variable(both, key)).tolist()) <= marks]
    return model_keys, keys, model


KERAS_OPTIMIZERS = {
    "SGD momentum": lambda k: k.optimizers.SGD(0.1, momentum=0.9),
    "Adam amsgrad": lambda k: k.optimizers.Adam(0.1, amsgrad=True),
    "AdamW": lambda k: k.optimizers.AdamW(0.1),
    "RMSprop centered": lambda k: k.optimizers.RMSprop(0.1, momentum=0.9, centered=True),
    "Adafactor": lambda k: k.optimizers.Adafactor(0.1),
    "Lamb (Keras 3)": lambda k: k.optimizers.Lamb(0.1),
    "loss scale": lambda k: k.mixed_precision.LossScaleOptimizer(k.optimizers.Adam(0.1)),
}


@pytest.mark.parametrize("name", list(KERAS_OPTIMIZERS))
def test_keras_optimizers_in_object_based_checkpoints(name, tmp_path):
    keras, major = keras_major()
    if name == "Lamb (Keras 3)" and not hasattr(keras.optimizers, "Lamb"):
        pytest.skip("Keras 2 has no Lamb optimizer (tensorflow-addons LAMB is in the table)")
    model_keys, keys, model = keras_checkpoint_keys(KERAS_OPTIMIZERS[name], tmp_path)
    assert len(model_keys) == len(model.weights) and len(keys) > len(model_keys)  # weights and optimizer state
    assert [key for key in keys if OPTIMIZER_SLOTS.search(key)] == [key for key in keys if key not in model_keys]


def test_keras_3_optimizer_variable_paths(tmp_path):
    keras, major = keras_major()
    if major < 3:
        pytest.skip("variable paths are Keras 3's; Keras 2 names are in the table")
    for make in KERAS_OPTIMIZERS.values():
        _, _, model = keras_checkpoint_keys(make, tmp_path)
        paths = [variable.path for variable in model.optimizer.variables]
        assert paths and [path for path in paths if not OPTIMIZER_SLOTS.search(path)] == []
        assert [variable.path for variable in model.weights if OPTIMIZER_SLOTS.search(variable.path)] == []

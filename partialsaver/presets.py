"""Filter presets for the names fine-tuning leaves behind: optimizer state and the step.

``OPTIMIZER_SLOTS`` matches the optimizer state real TensorFlow checkpoints carry, as graph
variable names, name-based checkpoint keys and object-based keys (raw, ending in
``/.ATTRIBUTES/VARIABLE_VALUE``, or as partialsaver shows them, without it). Every family
below was observed in a checkpoint written by the optimizer itself, or read from its source
where it cannot run on TensorFlow 2.13+; docs/guide/presets.md has the table with examples.

=====================================  ===================================================
family                                 keys (examples)
=====================================  ===================================================
tf.compat.v1.train optimizers          ``w/Adam``, ``w/Adam_1``, ``beta1_power``,
                                       ``w/Momentum``, ``w/RMSProp_2``, ``w/Ftrl_1``, ...
tf.contrib / TF1 ports                 ``w/AdaMax``, ``w/AdamW``, ``w/LARSOptimizer``,
                                       ``w/LAMB_1``, ``w/Adafactor_2`` (tensor2tensor)
BERT, ALBERT, ELECTRA, LAMB ports      ``w/adam_m``, ``w/adam_v``, ``w/lamb_m``,
                                       ``w/AdamWeightDecayOptimizer_1``
Mesh TensorFlow (T5)                   ``w_slot_vr``, ``w_slot_vc``, ``w_slot_v``, ``w_momentum_v``
Keras 2 (tf.keras <= 2.15, tf_keras)   ``Adam/m/dense/kernel``, ``Adam/dense/kernel/m``,
                                       ``Adam/iter``, ``training/Adam/...``, addons' ``LAMB/...``
Keras 3                                ``adam/dense_kernel_momentum``, ``adam/iteration``,
                                       ``loss_scale_optimizer/dynamic_scale``
object-based (tf.train.Checkpoint)     ``.../.OPTIMIZER_SLOT/optimizer/m``, ``optimizer/_variables/3``,
                                       ``optimizer/iter`` (never ``optimizer/_trainable_variables/N``,
                                       which Keras 3 uses for the model's own weights)
loss scaling, accumulation             ``current_loss_scale``, ``good_steps``, ``bad_steps``,
                                       ``loss_scale``, ``aggregation_variables/...`` (Horovod),
                                       ``OptimizeLoss/learning_rate``, ``training/iter``
=====================================  ===================================================

Known limits: a *model* variable literally named like a TF1 slot (``model/Adam``) matches;
optimizers given a custom ``name=`` (``w/MyAdam``) and bare ``iteration`` /
``learning_rate`` / ``iter`` without an optimizer scope (a model may own such variables) do
not. Exponential moving averages (``w/ExponentialMovingAverage``) are not optimizer state.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["GLOBAL_STEP", "OPTIMIZER_SLOTS"]

# An object-based key may end in its attribute path; the rules match it either way.
_END = r"(?:/\.ATTRIBUTES/VARIABLE_VALUE)?$"


def _one_of(names: Iterable[str]) -> str:
    # Longest first, so that "AdagradDA" is tried before "Adagrad".
    return "(?:" + "|".join(sorted(set(names), key=lambda name: (-len(name), name))) + ")"


# TF1 slots are "<variable>/<optimizer name>", then "_1", "_2", ... in creation order.
_TF1_OPTIMIZERS = [
    "Adam",
    "Momentum",
    "RMSProp",
    "Adagrad",
    "AdagradDA",
    "ProximalAdagrad",
    "Adadelta",
    "Ftrl",
    "GradientDescent",
    "ProximalGradientDescent",  # tf.compat.v1.train (the last two keep no slots)
    "AdaMax",
    "AdamW",
    "MomentumW",
    "LARSOptimizer",
    "AddSignOptimizer",
    "PowerSignOptimizer",  # tf.contrib.opt
    "Adafactor",
    "LAMB",
    "AdamWeightDecayOptimizer",
    "Nadam",
    "Adamax",
    "LazyAdam",  # ports and wrappers
]
_TF1_SLOT = r"/" + _one_of(_TF1_OPTIMIZERS) + r"(?:_\d+)*" + _END
_BETA_POWER = r"(?:^|/)beta[12]_power(?:_\d+)?" + _END
# Slots made with get_variable under a fixed suffix: BERT-family and LAMB ports, Mesh TensorFlow.
_SUFFIX_SLOT = r"(?:/(?:adam|lamb)_[mv]|_slot_(?:vr|vc|v|m)|_momentum_v)" + _END

# Keras 2 keeps everything under a scope named after the optimizer class: "Adam/iter",
# "Adam/beta_1" (legacy and new), "Adam/dense/kernel/m" (legacy), "Adam/m/dense/kernel" (new).
_KERAS2_OPTIMIZERS = [
    "SGD",
    "Adam",
    "AdamW",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Adamax",
    "Nadam",
    "Ftrl",
    "Lion",
    "Adafactor",
    "LAMB",
    "SGDW",
    "LazyAdam",
    "RectifiedAdam",
    "Lookahead",
    "MovingAverage",
    "SWA",
    "Yogi",
    "NovoGrad",
    "AdaBelief",
    "COCOB",
    "ConditionalGradient",
    "ProximalAdagrad",  # tensorflow-addons
    "AdamWeightDecay",  # tf-models official/nlp, HuggingFace's TF models
]
_KERAS2_LEGACY_SLOTS = [
    "m",
    "v",
    "vhat",
    "momentum",
    "rms",
    "mg",
    "accumulator",
    "accum_grad",
    "accum_var",
    "linear",
    "slow",
    "average",
    "lr",
    "grad_norm_sum",
    "gradients_sum",
    "tilde_w",
    "reward",
    "conditional_gradient",
]
_KERAS2_SLOTS = [
    "m",
    "v",
    "vhat",
    "momentum",
    "velocity",
    "average_gradient",
    "accumulator",
    "accumulated_grad",
    "accumulated_delta_var",
    "linear",
    "u",
    "r",
    "c",
    "average",
]
_KERAS2 = (
    r"(?:^|/)"
    + _one_of(_KERAS2_OPTIMIZERS)
    + r"(?:_\d+)?/(?:[^/]+|.+/"
    + _one_of(_KERAS2_LEGACY_SLOTS)
    + r"|"
    + _one_of(_KERAS2_SLOTS)
    + r"/.+)"
    + _END
)

# Keras 3 paths: "<snake_case optimizer>/<variable path with _>_<slot>", ".../iteration".
_KERAS3_OPTIMIZERS = [
    "sgd",
    "adam",
    "adam_w",
    "adagrad",
    "adadelta",
    "rm_sprop",
    "adamax",
    "nadam",
    "ftrl",
    "lion",
    "lamb",
    "muon",
    "loss_scale_optimizer",
]
_KERAS3_SLOTS = [
    "momentum",
    "velocity",
    "velocity_hat",
    "accumulator",
    "accumulated_grad",
    "accumulated_delta_var",
    "average_gradient",
    "norm",
    "linear",
    "average",
    "gradient_accumulator",
]
_KERAS3 = (
    r"(?:^|/)"
    + _one_of(_KERAS3_OPTIMIZERS)
    + r"(?:_\d+)?/(?:iteration|learning_rate|variable|step_counter|dynamic_scale|[^/]*_"
    + _one_of(_KERAS3_SLOTS)
    + r")"
    + _END
    # Adafactor's row and column factors are named after the bare variable: "adafactor/kernel".
    + r"|(?:^|/)adafactor(?:_\d+)?/[^/]+"
    + _END
)

# Object-based checkpoints: slots hang off the variable, the rest off the "optimizer" object,
# except Keras 3's "optimizer/_trainable_variables/N", which are the model's own weights.
_OBJECT = r"/\.OPTIMIZER_SLOT/|(?:^|/)optimizer/(?!(?:[^/]+/)*_trainable_variables/)"

_BOOKKEEPING = (
    r"(?:^|/)(?:current_loss_scale|loss_scale|good_steps|bad_steps)"
    + _END
    + r"|(?:^|/)aggregation_variables(?:_\d+)?/"
    + r"|(?:^|/)(?:OptimizeLoss|training)/(?:learning_rate|iter)"
    + _END
)

OPTIMIZER_SLOTS: "re.Pattern[str]" = re.compile(
    "|".join(f"(?:{rule})" for rule in (_TF1_SLOT, _BETA_POWER, _SUFFIX_SLOT, _KERAS2, _KERAS3, _OBJECT, _BOOKKEEPING))
)
"""Optimizer state: slots, step powers, counters, loss-scale and accumulation variables."""

GLOBAL_STEP: "re.Pattern[str]" = re.compile(r"(?:^|/)global_step" + _END)
"""The training step counter (``global_step``, also under a scope or object-based)."""

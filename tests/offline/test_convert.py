"""export / import without TensorFlow, checked with the safetensors package and numpy."""

import os

import numpy as np
import pytest

from partialsaver import GLOBAL_STEP, OPTIMIZER_SLOTS, UsageError, diff_checkpoints, list_variables, load_variable
from partialsaver.convert import export_checkpoint, import_checkpoint
from tests.offline.helpers import write_bundle

ml_dtypes = pytest.importorskip("ml_dtypes")
safetensors = pytest.importorskip("safetensors")

VALUES = {
    "encoder/kernel": np.arange(24, dtype=np.float32).reshape(6, 4) / 3,
    "encoder/kernel/adam_m": np.zeros((6, 4), np.float32),
    "encoder/bias": np.array([1.5, -2.25, 3.0e38], ml_dtypes.bfloat16),
    "head/logits": np.array([[1, -1]], np.int8),
    "global_step": np.array(100, np.int64),
}


@pytest.fixture
def checkpoint(tmp_path):
    return write_bundle(str(tmp_path / "src" / "model.ckpt"), VALUES, partitions={"encoder/kernel": 2})


def test_safetensors_keeps_bfloat16_bits_and_drops_training_state(checkpoint, tmp_path):
    out = str(tmp_path / "model.safetensors")
    written = export_checkpoint(checkpoint, out, lambda key: key.replace("/", "."),
                                exclude=[OPTIMIZER_SLOTS, GLOBAL_STEP])
    assert sorted(written.values()) == ["encoder.bias", "encoder.kernel", "head.logits"]
    with open(out, "rb") as file:
        stored = dict(safetensors.deserialize(file.read()))
    assert stored["encoder.bias"]["dtype"].lower() in ("bf16", "bfloat16")
    assert stored["encoder.bias"]["data"] == VALUES["encoder/bias"].tobytes()
    assert stored["encoder.kernel"]["data"] == VALUES["encoder/kernel"].tobytes()  # assembled from its slices
    back = str(tmp_path / "back" / "model.ckpt")
    import_checkpoint(out, back, lambda name: name.replace(".", "/"))
    assert load_variable(back, "encoder/bias").tobytes() == VALUES["encoder/bias"].tobytes()
    assert load_variable(back, "encoder/bias").dtype == ml_dtypes.bfloat16


def test_npz_round_trip(checkpoint, tmp_path):
    out = str(tmp_path / "model.npz")
    with pytest.raises(UsageError, match="'encoder/bias \\(bfloat16\\)'.*or write .safetensors"):
        export_checkpoint(checkpoint, out)
    export_checkpoint(checkpoint, out, exclude="encoder/bias")
    back = str(tmp_path / "back" / "model.ckpt")
    import_checkpoint(out, back)
    diff = diff_checkpoints(checkpoint, back)
    assert diff.only_in_a == ("encoder/bias",) and diff.only_in_b == () and diff.value_changes == ()


def test_import_into_an_existing_checkpoint_needs_overwrite_and_replaces_it_whole(checkpoint, tmp_path):
    out = str(tmp_path / "m.safetensors")
    export_checkpoint(checkpoint, out, include="head")
    with pytest.raises(UsageError, match="already exists; pass overwrite=True"):
        import_checkpoint(out, checkpoint)
    import_checkpoint(out, checkpoint, overwrite=True)
    assert [info.name for info in list_variables(checkpoint)] == ["head/logits"]
    assert sorted(os.listdir(os.path.dirname(checkpoint))) == [
        "checkpoint", "model.ckpt.data-00000-of-00002", "model.ckpt.data-00001-of-00002", "model.ckpt.index"]

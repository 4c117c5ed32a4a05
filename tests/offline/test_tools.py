"""list, load, diff and rename without TensorFlow: on checkpoints TensorFlow wrote (committed
fixtures) and on checkpoints partialsaver's writer wrote, locally and on fsspec's memory://."""

import os
import re
import sys

import numpy as np
import pytest

from partialsaver import (
    OPTIMIZER_SLOTS,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    VariableNotFoundError,
    diff_checkpoints,
    list_variables,
    load_variable,
    rename_variables,
    resolve_checkpoint,
)
from partialsaver._resolve import read_state
from partialsaver.format import LOCAL
from tests.offline.helpers import fixture, fixture_values, write_bundle

VALUES = {"net/conv/w": np.arange(12, dtype=np.float32).reshape(3, 4), "net/conv/b": np.ones(4, np.float32),
          "net/emb": np.arange(40, dtype=np.int64).reshape(10, 4), "step": np.array(7, np.int64),
          "net/conv/w/Adam": np.zeros((3, 4), np.float32), "vocab": np.array([b"a", b"", b"\x00z"], dtype=object)}


@pytest.fixture
def checkpoint(tmp_path):
    return write_bundle(str(tmp_path / "run" / "model.ckpt-7"), VALUES, partitions={"net/emb": 3})


def test_tensorflow_written_fixtures_list_and_load(tmp_path):
    for name in ("partitioned", "sharded", "object"):
        expected = fixture_values(name)
        listed = {info.name: info for info in list_variables(fixture(name))}
        readable = {key[: -len("/.ATTRIBUTES/VARIABLE_VALUE")] if key.endswith("/.ATTRIBUTES/VARIABLE_VALUE") else key:
                    info for key, info in expected.items() if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}
        assert sorted(listed) == sorted(readable)
        for key, info in readable.items():
            assert listed[key].shape == tuple(info["shape"]) and listed[key].dtype == info["dtype"]
            if "hex" in info:
                assert load_variable(fixture(name), key).tobytes().hex() == info["hex"], (name, key)


def test_a_directory_resolves_through_the_state_file(checkpoint):
    directory = os.path.dirname(checkpoint)
    assert resolve_checkpoint(directory) == checkpoint
    assert resolve_checkpoint(os.path.join(directory, "checkpoint")) == checkpoint
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint at"):
        resolve_checkpoint(checkpoint + "x")


def test_list_and_load(checkpoint):
    infos = list_variables(checkpoint)
    assert [info.name for info in infos] == sorted(VALUES)
    assert {info.name: info.nbytes for info in infos}["net/emb"] == 320 and infos[-1].nbytes is None
    np.testing.assert_array_equal(load_variable(checkpoint, "net/emb"), VALUES["net/emb"])  # assembled from slices
    assert load_variable(checkpoint, "step:0") == 7  # a tensor name finds its variable
    assert load_variable(checkpoint, "vocab").tolist() == [b"a", b"", b"\x00z"]
    with pytest.raises(VariableNotFoundError, match="did you mean 'net/conv/w'"):
        load_variable(checkpoint, "net/conv/weight")


def test_rename_only_renames_by_rewriting_the_index(checkpoint, tmp_path):
    dst = str(tmp_path / "out" / "model.ckpt")
    renames = rename_variables(checkpoint, dst, {"net/": "model/"})
    assert renames["net/emb"] == "model/emb"
    assert os.path.samefile(dst + ".data-00000-of-00001", checkpoint + ".data-00000-of-00001")
    for name, value in VALUES.items():
        new = name.replace("net/", "model/")
        assert np.asarray(load_variable(dst, new)).tolist() == np.asarray(value).tolist()
    assert read_state(LOCAL, str(tmp_path / "out")).latest == "model.ckpt"
    assert diff_checkpoints(checkpoint, dst).only_in_a == tuple(sorted(k for k in VALUES if k.startswith("net/")))


def test_rename_that_drops_copies_only_the_kept_bytes(checkpoint, tmp_path):
    dst = str(tmp_path / "weights" / "model.ckpt")
    rename_variables(checkpoint, dst, exclude=[OPTIMIZER_SLOTS, "step"])
    assert [info.name for info in list_variables(dst)] == ["net/conv/b", "net/conv/w", "net/emb", "vocab"]
    kept_bytes = 12 * 4 + 4 * 4 + 40 * 8
    assert os.path.getsize(dst + ".data-00000-of-00001") < os.path.getsize(checkpoint + ".data-00000-of-00001")
    assert os.path.getsize(dst + ".data-00000-of-00001") >= kept_bytes
    assert diff_checkpoints(checkpoint, dst).value_changes == ()


def _large_and_small(seed):
    """Large tensors behind small ones of odd sizes (so none starts on a page), each with a slot."""
    rng = np.random.default_rng(seed)
    return {"a": rng.standard_normal(1000).astype(np.float32), "a/Adam": np.ones(10, np.float32),
            "b": rng.standard_normal(300_000).astype(np.float32), "b/Adam": np.ones(300_000, np.float32),
            "c": rng.standard_normal((700, 500)).astype(np.float64), "c/Adam": np.ones(3, np.float32),
            "d": np.arange(5, dtype=np.int64)}


def test_a_drop_whose_source_is_damaged_writes_nothing(tmp_path):
    from partialsaver.format.index import read_index

    values = _large_and_small(1)
    src = write_bundle(str(tmp_path / "src" / "model.ckpt"), values)
    entry = read_index(src, LOCAL)[1][b"c"]  # the last large tensor: damage found while copying
    with open(src + ".data-00000-of-00001", "r+b") as data:
        data.seek(entry.offset + entry.size - 100)
        data.write(b"\x13" * 20)
    with pytest.raises(CorruptCheckpointError, match="crc32c"):
        rename_variables(src, str(tmp_path / "dst" / "model.ckpt"), exclude=OPTIMIZER_SLOTS)
    assert os.listdir(tmp_path / "dst") == []


def test_in_place(checkpoint):
    rename_variables(checkpoint, checkpoint, {re.compile(r"^net/(.*)$"): r"\1"}, overwrite=True)
    assert [info.name for info in list_variables(checkpoint)] == ["conv/b", "conv/w", "conv/w/Adam", "emb", "step",
                                                                  "vocab"]
    rename_variables(checkpoint, checkpoint, exclude=OPTIMIZER_SLOTS, overwrite=True)
    names = sorted(os.listdir(os.path.dirname(checkpoint)))
    assert names == ["checkpoint", "model.ckpt-7.data-00000-of-00002", "model.ckpt-7.data-00001-of-00002",
                     "model.ckpt-7.index"]
    np.testing.assert_array_equal(load_variable(checkpoint, "emb"), VALUES["net/emb"])


def test_the_memory_file_system_of_fsspec(checkpoint):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    for path in ("model.ckpt-7.index", "model.ckpt-7.data-00000-of-00001", "checkpoint"):
        memory.pipe(f"memory://offline/run/{path}", open(os.path.join(os.path.dirname(checkpoint), path), "rb").read())
    try:
        assert resolve_checkpoint("memory://offline/run") == "memory://offline/run/model.ckpt-7"
        assert [info.name for info in list_variables("memory://offline/run")] == sorted(VALUES)
        np.testing.assert_array_equal(load_variable("memory://offline/run", "net/emb"), VALUES["net/emb"])
        rename_variables("memory://offline/run", "memory://offline/out/m.ckpt", {"net/": "model/"})
        rename_variables("memory://offline/out/m.ckpt", "memory://offline/out/m.ckpt", exclude=OPTIMIZER_SLOTS,
                         overwrite=True)
        assert [info.name for info in list_variables("memory://offline/out")] == [
            "model/conv/b", "model/conv/w", "model/emb", "step", "vocab"]
        np.testing.assert_array_equal(load_variable("memory://offline/out/m.ckpt", "model/conv/w"), VALUES["net/conv/w"])
        assert memory.cat("memory://offline/out/checkpoint").decode().startswith('model_checkpoint_path: "m.ckpt"')
        leftovers = [path for path in memory.ls("memory://offline/out", detail=False) if "partialsaver-tmp" in path]
        assert leftovers == []
    finally:
        memory.rm("memory://offline", recursive=True)


def test_the_offline_tools_never_import_tensorflow(checkpoint, tmp_path):
    import subprocess

    code = f"""
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
from partialsaver import diff_checkpoints, list_variables, load_variable, rename_variables
from partialsaver.convert import export_checkpoint, import_checkpoint
list_variables({checkpoint!r}); load_variable({checkpoint!r}, "net/emb"); diff_checkpoints({checkpoint!r}, {checkpoint!r})
rename_variables({checkpoint!r}, {str(tmp_path / "r" / "m")!r}, {{"net/": "x/"}})
export_checkpoint({checkpoint!r}, {str(tmp_path / "m.npz")!r})
import_checkpoint({str(tmp_path / "m.npz")!r}, {str(tmp_path / "i" / "m")!r})
print(sorted(name for name in sys.modules if name.startswith(("tensorflow", "keras", "google.protobuf"))
             and sys.modules[name] is not None))
"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=root))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_liveness_probe_never_signals_a_process_on_windows(monkeypatch):
    import ctypes

    from partialsaver import _temporaries

    calls = []

    class Kernel32:
        def OpenProcess(self, access, inherit, pid):  # noqa: N802 - the Windows API's names
            calls.append(("open", pid))
            return 42 if pid == 1234 else 0

        def GetExitCodeProcess(self, handle, code):  # noqa: N802
            ctypes.cast(code, ctypes.POINTER(ctypes.c_ulong)).contents.value = 259  # STILL_ACTIVE
            return 1

        def CloseHandle(self, handle):  # noqa: N802
            calls.append(("close", handle))

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(ctypes, "windll", type("WinDLL", (), {"kernel32": Kernel32()})(), raising=False)
    monkeypatch.setattr(os, "kill", lambda *args: pytest.fail(f"os.kill{args} would terminate the process on Windows"))
    assert _temporaries.process_alive(1234) is True and _temporaries.process_alive(999) is False
    assert calls == [("open", 1234), ("close", 42), ("open", 999)]


def test_the_liveness_probe_on_posix():
    import subprocess

    from partialsaver._temporaries import process_alive

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert process_alive(os.getpid()) is True and process_alive(int(finished.stdout)) is False

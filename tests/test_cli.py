"""The partialsaver CLI: output, --json, exit codes 0 / 1 / 2, one-line errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import list_variables
from partialsaver.cli import main

v1 = tf.compat.v1


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def graph_meta(tmp_path):
    """A .meta of the renamed graph (v1, v2, v3_x), as a Saver writes it."""
    with tf.Graph().as_default():
        for name, shape in (("v1", [3]), ("v2", [5]), ("v3_x", [4])):
            v1.get_variable(name, shape=shape, initializer=v1.zeros_initializer())
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver().save(sess, str(tmp_path / "graph" / "model.ckpt")) + ".meta"


def test_list_text_and_json(capsys, seed_checkpoint):
    code, out, _ = run(capsys, "list", seed_checkpoint)
    assert code == 0
    assert out.splitlines()[1].split() == ["v1", "(3,)", "float32", "12", "B"]
    assert out.splitlines()[-1] == "3 variables, 48 B"
    code, out, _ = run(capsys, "list", os.path.dirname(seed_checkpoint), "--json", "--exclude", "v2")
    payload = json.loads(out)
    assert payload["variables"][1] == {"name": "v3", "shape": [4], "dtype": "float32", "nbytes": 16}
    assert (payload["total_variables"], payload["total_bytes"]) == (2, 28)


def test_show_prints_stats_and_preview(capsys, seed_checkpoint):
    code, out, _ = run(capsys, "show", seed_checkpoint, "v2")
    assert code == 0
    assert "shape: (5,)   dtype: float32" in out and "min -1  max -1  mean -1" in out and "[-1. -1. -1. -1. -1.]" in out


def test_show_of_an_unknown_name_suggests_close_names(capsys, seed_checkpoint):
    code, out, err = run(capsys, "show", seed_checkpoint, "v3_x")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "did you mean 'v3'" in err


def test_plan_against_a_saved_graph(capsys, seed_checkpoint, graph_meta):
    code, out, _ = run(capsys, "plan", seed_checkpoint, "--meta", graph_meta)
    assert code == 1 and "missing in checkpoint: initialised if not yet (1)\n  v3_x" in out
    code, out, _ = run(capsys, "plan", seed_checkpoint, "--meta", graph_meta, "--map", "v3=v3_x", "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_plan_with_a_bad_meta_file(capsys, seed_checkpoint, tmp_path):
    (tmp_path / "bad.meta").write_bytes(b"not a graph")
    code, _, err = run(capsys, "plan", seed_checkpoint, "--meta", str(tmp_path / "bad.meta"))
    assert code == 2 and "cannot import the meta graph" in err and err.count("\n") == 1


def test_rename_dry_run_then_for_real(capsys, seed_checkpoint, tmp_path):
    dst = str(tmp_path / "m.ckpt")
    code, out, _ = run(capsys, "rename", seed_checkpoint, dst, "--map", "v3=v3_x", "--exclude", "v2", "--dry-run")
    assert code == 0 and out.splitlines() == [
        "v3 -> v3_x", "v2 -> (dropped)", "1 renamed, 1 unchanged, 1 dropped (dry run: nothing written)"]
    assert not os.path.exists(dst + ".index")
    code, out, _ = run(capsys, "rename", seed_checkpoint, dst, "--map", "v3=v3_x", "--quiet")
    assert code == 0 and out.startswith(f"wrote {dst}: 3 variables (1 renamed, 0 dropped)")
    assert [info.name for info in list_variables(dst)] == ["v1", "v2", "v3_x"]


def test_rename_with_scope_and_regex_maps(capsys, write_checkpoint, tmp_path):
    src = write_checkpoint({"net/conv/weights": np.ones(2, np.float32), "net/conv/biases": np.ones(1, np.float32)})
    code, _, _ = run(capsys, "rename", src, str(tmp_path / "a.ckpt"), "--map", "net/=model/", "--quiet")
    assert code == 0 and [i.name for i in list_variables(str(tmp_path / "a.ckpt"))] == [
        "model/conv/biases", "model/conv/weights"]
    code, _, _ = run(capsys, "rename", src, str(tmp_path / "b.ckpt"), "--regex",
                     "--map", r"^(.*)/weights$=\1/kernel", "--map", r"^(.*)/biases$=\1/bias", "--quiet")
    assert code == 0 and [i.name for i in list_variables(str(tmp_path / "b.ckpt"))] == [
        "net/conv/bias", "net/conv/kernel"]


@pytest.mark.parametrize("argv_tail, code, fragment", [
    (["--map", "v9=v10"], 1, "renames nothing"),
    (["--map", "v3"], 2, "is not OLD=NEW"),
    (["--regex", "--map", "v(3=x"], 2, "invalid regex"),
    (["--map", "v1=w", "--map", "v2=w"], 2, "written from several keys"),
])
def test_rename_problems(capsys, seed_checkpoint, tmp_path, argv_tail, code, fragment):
    got, _, err = run(capsys, "rename", seed_checkpoint, str(tmp_path / "m.ckpt"), *argv_tail)
    assert got == code and fragment in err
    assert not os.path.exists(tmp_path / "m.ckpt.index")


def test_diff_exit_codes(capsys, seed_checkpoint, tmp_path):
    copy = str(tmp_path / "copy.ckpt")
    run(capsys, "rename", seed_checkpoint, copy, "--map", "v3=v3_x", "--quiet")
    code, out, _ = run(capsys, "diff", seed_checkpoint, seed_checkpoint)
    assert code == 0 and out.startswith("same:")
    code, out, _ = run(capsys, "diff", seed_checkpoint, copy, "--json")
    assert code == 1 and json.loads(out)["only_in_a"] == ["v3"] and json.loads(out)["only_in_b"] == ["v3_x"]


@pytest.mark.parametrize("argv", [
    ["list", "/no/such/checkpoint"],
    ["list"],
    ["frobnicate"],
    ["show", "/no/such/checkpoint", "x"],
    ["diff", "/no/a", "/no/b"],
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("partialsaver: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("launcher", ["console_script", "module"])
def test_the_installed_entry_points_never_print_a_traceback(seed_checkpoint, launcher):
    script = shutil.which("partialsaver", path=os.path.dirname(sys.executable))
    command = [script] if launcher == "console_script" else [sys.executable, "-m", "partialsaver"]
    ok = subprocess.run(command + ["list", seed_checkpoint], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "3 variables" in ok.stdout
    bad = subprocess.run(command + ["show", seed_checkpoint, "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("partialsaver: error: ")

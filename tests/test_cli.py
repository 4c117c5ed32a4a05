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
    assert code == 1 and "missing in checkpoint: initialized if not yet (1)\n  v3_x" in out
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
    (["--map", "v1=w", "--map", "v2=w"], 2, "written from several checkpoint keys"),
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


@pytest.fixture
def head_graph_meta(tmp_path):
    """A .meta of a graph with a new 3-class head, a step counter and Momentum slots."""
    with tf.Graph().as_default():
        w = v1.get_variable("net/w", [2, 2])
        head = v1.get_variable("net/head", [2, 3])
        loss = tf.reduce_sum(tf.matmul(tf.matmul(tf.ones([1, 2]), w), head))
        v1.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=v1.train.get_or_create_global_step())
        return v1.train.export_meta_graph(str(tmp_path / "head.meta"))


@pytest.fixture
def pretrained_with_slots(tmp_path):
    with tf.Graph().as_default():
        w = v1.get_variable("net/w", [2, 2])
        head = v1.get_variable("net/head", [2, 10])
        loss = tf.reduce_sum(tf.matmul(tf.matmul(tf.ones([1, 2]), w), head))
        train = v1.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=v1.train.get_or_create_global_step())
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            return v1.train.Saver().save(sess, str(tmp_path / "pre" / "model.ckpt"), write_meta_graph=False)


def test_plan_takes_presets_and_guardrails(capsys, pretrained_with_slots, tmp_path, head_graph_meta):
    base = ["plan", pretrained_with_slots, "--meta", str(tmp_path / "head.meta")]
    code, out, _ = run(capsys, *base)
    assert code == 1 and "to fix, add:\n  --skip-mismatched  # initialize" in out
    assert "--exclude net/head --exclude net/head/Momentum  # or leave them out of the restore" in out
    code, out, _ = run(capsys, *base, "--exclude", "@optimizer", "--exclude", "@global_step", "--expect-new", "net/head",
                       "--require", "net/w", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["ok"] and [r["graph_name"] for r in payload["restored"]] == ["net/w"]
    assert payload["expected_new"] == ["net/head", "net/head/Momentum"] and payload["fix_cli"] == []
    code, out, _ = run(capsys, *base, "--skip-mismatched", "--exclude", "@optimizer", "--exclude", "@global_step")
    assert code == 0 and "shape mismatch: skipped (as asked)" in out
    code, out, _ = run(capsys, *base, "--skip-mismatched", "--require", "net/bogus")
    assert code == 1 and "require scope 'net/bogus': 0 of 0 variables would be restored" in out
    code, _, err = run(capsys, *base, "--exclude", "@optimiser")
    assert code == 2 and "unknown preset; the presets are @global_step, @optimizer" in err


def test_plan_fix_hints_are_cli_options_that_work(capsys, write_checkpoint, tmp_path):
    checkpoint = write_checkpoint({f"net/l{i}/weights": np.ones(2, np.float32) for i in range(3)})
    with tf.Graph().as_default():
        for i in range(3):
            v1.get_variable(f"model/l{i}/kernel", [2])
        meta = v1.train.export_meta_graph(str(tmp_path / "g.meta"))
    del meta
    code, out, _ = run(capsys, "plan", checkpoint, "--meta", str(tmp_path / "g.meta"))
    hint = out.split("to fix, add:\n", 1)[1].splitlines()[0].split("  #")[0].strip()
    assert code == 1 and hint == "--regex-map '^net/(.*)/weights$=model/\\1/kernel'"
    import shlex
    code, out, _ = run(capsys, "plan", checkpoint, "--meta", str(tmp_path / "g.meta"), *shlex.split(hint))
    assert code == 0 and "all 3 variables restored" in out


def test_plan_given_a_checkpoint_file_as_meta(capsys, seed_checkpoint):
    for wrong in (seed_checkpoint + ".index", seed_checkpoint + ".data-00000-of-00001"):
        code, _, err = run(capsys, "plan", seed_checkpoint, "--meta", wrong)
        assert code == 2 and err.count("\n") == 1 and "is a checkpoint file, not a graph; pass the .meta" in err
    code, _, err = run(capsys, "plan", seed_checkpoint, "--meta", seed_checkpoint + ".meta")
    assert code == 0 and err == ""  # the seed's own graph: v1, v2, v3; fine to import


@pytest.mark.parametrize("preview, expected", [
    ("3", "first 3 of 5 elements (row-major):\n[-1. -1. -1.]"),
    ("5", "[-1. -1. -1. -1. -1.]"),
])
def test_show_preview_prints_that_many_elements(capsys, seed_checkpoint, preview, expected):
    code, out, _ = run(capsys, "show", seed_checkpoint, "v2", "--preview", preview)
    assert code == 0 and out.rstrip().endswith(expected)


def test_list_with_a_filter_that_matches_nothing_says_so(capsys, seed_checkpoint):
    code, out, err = run(capsys, "list", seed_checkpoint, "--include", "v11")
    assert code == 1 and out.splitlines()[-1] == "0 variables, 0 B"
    assert "include scope 'v11' matched no checkpoint key (closest: 'v1')" in err
    code, out, _ = run(capsys, "list", seed_checkpoint, "--include", "v[12]")
    assert code == 0 and out.splitlines()[-1] == "2 variables, 32 B"


def test_the_cli_leaves_the_environment_and_tensorflows_logger_as_it_found_them(capsys, seed_checkpoint, tmp_path,
                                                                               monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    level = tf.get_logger().level
    tf.get_logger().setLevel("INFO")  # whatever an earlier test left: a level the CLI must keep
    request_level = tf.get_logger().level
    for argv in (["list", seed_checkpoint], ["plan", seed_checkpoint, "--meta", seed_checkpoint + ".meta"],
                 ["rename", seed_checkpoint, str(tmp_path / "r.ckpt"), "--map", "v1=w", "--quiet"]):
        run(capsys, *argv)
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        assert tf.get_logger().level == request_level and tf.get_logger().filters == []
    tf.get_logger().setLevel(level)


def test_export_and_import_from_the_command_line(capsys, seed_checkpoint, tmp_path):
    out = str(tmp_path / "seed.safetensors")
    code, stdout, _ = run(capsys, "export", seed_checkpoint, out, "--regex-map", "^v(\\d)$=layer\\1.weight",
                          "--exclude", "v2")
    assert code == 0 and stdout.startswith(f"wrote {out}: 2 tensors")
    code, stdout, _ = run(capsys, "import", out, str(tmp_path / "back") + "/", "--map", "layer3.weight=v3_x")
    assert code == 0 and stdout.startswith(f"wrote {tmp_path / 'back' / 'seed'}: 2 variables")
    assert [info.name for info in list_variables(tmp_path / "back")] == ["layer1.weight", "v3_x"]
    code, _, err = run(capsys, "export", seed_checkpoint, str(tmp_path / "x.pt"))
    assert code == 2 and "must end in .safetensors or .npz" in err

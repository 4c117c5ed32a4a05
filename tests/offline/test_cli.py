"""The CLI without TensorFlow: list, show, diff, rename, export, import; --help starts fast."""

import os
import subprocess
import sys

import numpy as np

from partialsaver.cli import main
from tests.offline.helpers import write_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_offline_command(capsys, tmp_path):
    checkpoint = write_bundle(str(tmp_path / "run" / "model.ckpt"),
                              {"net/w": np.arange(6, dtype=np.float32).reshape(2, 3), "net/w/Momentum": np.zeros(6),
                               "global_step": np.array(3, np.int64)})
    code, out, _ = run(capsys, "list", str(tmp_path / "run"), "--exclude", "@optimizer")
    assert code == 0 and out.splitlines()[-1] == "2 variables, 32 B"
    code, out, _ = run(capsys, "show", checkpoint, "net/w", "--preview", "4")
    assert code == 0 and "first 4 of 6 elements (row-major):\n[0. 1. 2. 3.]" in out
    code, out, _ = run(capsys, "rename", checkpoint, str(tmp_path / "out") + "/", "--map", "net/=model/",
                       "--exclude", "@optimizer", "--exclude", "@global_step", "--quiet")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'out' / 'model.ckpt'}: 1 variables (1 renamed, 2 dropped)")
    code, out, _ = run(capsys, "diff", checkpoint, str(tmp_path / "out"))
    assert code == 1 and "only in b (1)\n  model/w" in out
    code, out, _ = run(capsys, "export", str(tmp_path / "out"), str(tmp_path / "w.npz"))
    assert code == 0 and out.startswith("wrote")
    code, out, _ = run(capsys, "import", str(tmp_path / "w.npz"), str(tmp_path / "back" / "m.ckpt"))
    assert code == 0
    code, out, _ = run(capsys, "diff", str(tmp_path / "out"), str(tmp_path / "back"))
    assert code == 0 and out.startswith("same:")


def test_help_and_list_never_import_tensorflow(tmp_path):
    checkpoint = write_bundle(str(tmp_path / "m.ckpt"), {"w": np.ones(2, np.float32)})
    probe = ("import sys, runpy; sys.argv = ['partialsaver'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('partialsaver', run_name='__main__')\n"
             "except SystemExit: pass\n"
             "print('tensorflow' in sys.modules, file=sys.stderr)")
    for argv in (["--help"], ["list", checkpoint], ["show", checkpoint, "w"]):
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=ROOT))
        assert result.stderr.strip().splitlines()[-1] == "False", (argv, result.stderr[-1000:])
        assert "usage: partialsaver" in result.stdout or "w" in result.stdout

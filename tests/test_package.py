"""The public surface, the install story, and the demo behind `make demo`."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import partialsaver

ROOT = Path(__file__).resolve().parents[1]


def test_the_public_api_is_explicit():
    tree = ast.parse((ROOT / "partialsaver" / "__init__.py").read_text())
    star_imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.names[0].name == "*"]
    assert not star_imports
    assert sorted(partialsaver.__all__) == sorted(set(partialsaver.__all__))
    for name in partialsaver.__all__:
        assert hasattr(partialsaver, name), name
    for name in ("SmartSaver", "RestorePlan", "resolve_checkpoint", "list_variables", "load_variable",
                 "OPTIMIZER_SLOTS", "GLOBAL_STEP", "PartialSaverError"):
        assert name in partialsaver.__all__


def test_the_error_tree():
    errors = partialsaver
    for subclass in (errors.CheckpointNotFoundError, errors.CorruptCheckpointError, errors.CheckpointMismatchError,
                     errors.VariableNotFoundError, errors.NameMapError, errors.UsageError):
        assert issubclass(subclass, errors.PartialSaverError)
    assert issubclass(errors.CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(errors.VariableNotFoundError, KeyError)
    assert issubclass(errors.NameMapError, ValueError)
    assert issubclass(errors.UsageError, TypeError)


def test_without_tensorflow_the_package_imports_and_smartsaver_names_the_extra_to_install():
    code = ("import sys; sys.modules['tensorflow'] = None; import partialsaver; "
            "print(bool(partialsaver.OPTIMIZER_SLOTS.search('w/adam_m'))); from partialsaver import SmartSaver")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and result.stdout.strip() == "True"
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: partialsaver needs TensorFlow >= 2.13")
    assert "pip install 'partialsaver[tf-cpu]'" in last_line


def test_import_partialsaver_does_not_import_tensorflow():
    code = "import sys, partialsaver; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def test_py_typed_ships_with_the_package():
    assert (Path(partialsaver.__file__).parent / "py.typed").exists()
    assert '"py.typed"' in (ROOT / "setup.py").read_text()


def test_the_demo_walks_through_the_original_problem(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--workdir", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Key v3_x not found in checkpoint" in out
    a, b, c = out.split("\na. ")[1], out.split("\nb. ")[1], out.split("\nc. ")[1]
    assert "missing in checkpoint: initialized if not yet (1)\n  v3_x" in a
    assert "did you mean 'v3' (4,)?" in a and "unused checkpoint keys (1)\n  v3 " in a
    assert "v3_x = [0. 0. 0. 0.]" in a
    assert "all 3 variables restored" in b and "v3_x = [-2. -2. -2. -2.]" in b
    assert "checkpoint keys left out on purpose (include / exclude) (3)" in c
    assert "uninitialized variables left: []" in c


def test_importing_partialsaver_in_a_module_run_with_dash_m_leaves_the_environment_alone(tmp_path):
    package = tmp_path / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("import partialsaver.saver\n")  # imported while argv[0] is "-m"
    (package / "__main__.py").write_text("import os\nprint(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = subprocess.run([sys.executable, "-m", "trainer"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "None"

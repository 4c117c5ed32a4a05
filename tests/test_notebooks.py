"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel, and is stored clean.

The kernel is this test run's own interpreter: a kernelspec named "python3" pointing at
``sys.executable`` is written into tmp_path and put first on JUPYTER_PATH, so a user-level
"python3" kernelspec for another Python can never take its place. The first cell executed
(added in memory only) checks that the kernel really runs this interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "python3"
TIMEOUT_SECONDS = 600


def committed_notebooks() -> List[Path]:
    """Notebooks git tracks under notebooks/, plus any not committed yet (they will be)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "notebooks/*.ipynb"],
            cwd=REPO, capture_output=True, check=True, text=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an sdist)
        listed = []
    tracked = {REPO / name for name in listed if name}
    return sorted(tracked | set(NOTEBOOKS))


@pytest.fixture
def kernel_env(tmp_path, monkeypatch) -> str:
    """A "python3" kernelspec for sys.executable, first on JUPYTER_PATH; returns its name."""
    jupyter_dir = tmp_path / "jupyter"
    kernelspec.write_kernel_spec(jupyter_dir / "kernels" / KERNEL_NAME)
    spec = json.loads((jupyter_dir / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable, spec["argv"]
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # the kernel inherits this environment
    return KERNEL_NAME


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path, kernel_env, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    # A notebook written for Keras 3 (variable paths) says so in its metadata; the TF 2.13 /
    # Keras 2 leg of the version matrix skips it, the main leg runs it.
    required = notebook.metadata.get("partialsaver", {}).get("requires_keras")
    if required:
        keras = pytest.importorskip("keras")
        if int(keras.__version__.split(".")[0]) < required:
            pytest.skip(f"{path.name} is written for Keras {required}; this environment has Keras {keras.__version__}")
    interpreter_check = nbformat.v4.new_code_cell(
        "import sys, partialsaver\n"
        f"assert sys.prefix == {sys.prefix!r}, sys.prefix\n"
        f"assert sys.executable == {sys.executable!r}, sys.executable"
    )
    notebook.cells.insert(0, interpreter_check)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT_SECONDS,
        kernel_name=kernel_env,
        resources={"metadata": {"path": str(workdir)}},  # the kernel's working directory
    )
    # A failing cell raises CellExecutionError, naming the cell and the kernel's traceback.
    client.execute()
    assert not list(workdir.iterdir()), f"{path.name} left files in its working directory"


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda path: path.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs != [] or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing "
        "(Jupyter: Edit > Clear Outputs of All Cells, then save)"
    )

"""partialsaver.format imports and works with TensorFlow (and ml_dtypes) made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from ._helpers import REPO_ROOT, fixture_prefix


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter with the repository first on the path; return its JSON output."""
    environment = {"PYTHONPATH": REPO_ROOT, "PATH": "/usr/bin:/bin"}
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=120, env=environment)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_reading_and_writing_never_import_tensorflow_or_protobuf(tmp_path) -> None:
    result = run_python(f"""
        import json, sys
        sys.modules["tensorflow"] = None  # Any "import tensorflow" now raises ImportError.
        import partialsaver.format as fmt
        reader = fmt.BundleReader({fixture_prefix("object")!r})
        values = {{key: reader.read(key).tolist() for key in reader.keys() if "ATTRIBUTES" in key}}
        with fmt.BundleWriter({str(tmp_path / "out")!r}) as writer:
            writer.add("x", reader.read("model/step/.ATTRIBUTES/VARIABLE_VALUE"))
        heavy = sorted(name for name in sys.modules
                       if name.split(".")[0] in ("tensorflow", "google", "scipy", "pandas", "ml_dtypes", "keras")
                       and sys.modules[name] is not None and name != "google_crc32c")
        print(json.dumps({{"values": values, "heavy": heavy}}))
    """)
    assert result["values"]["model/step/.ATTRIBUTES/VARIABLE_VALUE"] == 7
    # google.* would be protobuf; ml_dtypes is deferred until a bfloat16-like tensor needs it.
    assert result["heavy"] == []


def test_without_ml_dtypes_bfloat16_is_a_clear_error_and_bytes_still_copy(tmp_path) -> None:
    result = run_python(f"""
        import json, sys
        sys.modules["ml_dtypes"] = None
        sys.modules["tensorflow"] = None
        import numpy as np
        import partialsaver.format as fmt
        reader = fmt.BundleReader({fixture_prefix("dtypes")!r})
        key = "bfloat16/matrix"
        out = {{"name": reader.dtype_name(key), "nbytes": reader.nbytes(key)}}
        out["raw"] = reader.read_raw(key).tobytes().hex()
        try:
            reader.read(key)
        except fmt.UnsupportedCheckpointError as error:
            out["error"] = str(error)
        with fmt.BundleWriter({str(tmp_path / "copy")!r}) as writer:
            writer.copy_from(reader, key)
            writer.add("bits", np.array([0x3F80, 0xC000], dtype=np.uint16), dtype="bfloat16")
        copy = fmt.BundleReader({str(tmp_path / "copy")!r})
        out["copied"] = copy.read_raw(key).tobytes().hex()
        out["bits"] = [copy.dtype_name("bits"), copy.read_raw("bits").tobytes().hex()]
        print(json.dumps(out))
    """)
    assert result["name"] == "bfloat16" and result["nbytes"] == 12
    assert "needs ml_dtypes" in result["error"] and "pip install ml_dtypes" in result["error"]
    assert result["copied"] == result["raw"]
    assert result["bits"] == ["bfloat16", "803f00c0"]

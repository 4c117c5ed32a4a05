"""Reads checkpoints with TensorFlow for test_format_tf_fuzz.py, one JSON request per line.

Request: {"prefix": ..., "keys": [...]}. Answer: {"ok": true, "values": {key: hex}} or
{"ok": false, "error": "DataLossError", "message": ...}. Runs in its own process, so
that a TensorFlow CHECK failure on a damaged file kills this worker, not pytest.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def value_hex(value: object) -> str:
    array = np.asarray(value)
    if array.dtype == object:
        return "|".join(bytes(element).hex() for element in array.ravel())
    if array.dtype.names:
        array = array[array.dtype.names[0]]
    return np.ascontiguousarray(array).tobytes().hex()


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reader = tf.compat.v1.train.NewCheckpointReader(request["prefix"])
            values = {key: value_hex(reader.get_tensor(key)) for key in request["keys"]}
            answer = {"ok": True, "values": values}
        except Exception as error:  # Whatever TensorFlow raises is the answer.
            answer = {"ok": False, "error": type(error).__name__, "message": str(error).splitlines()[0][:300]}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()

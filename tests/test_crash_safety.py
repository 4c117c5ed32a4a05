"""kill -9 in the middle of rename_variables and SmartSaver.save, and a full disk: the
source and the previous latest checkpoint stay restorable bit-identically, the new
checkpoint is absent or complete, and the next run cleans what the killed one left."""

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import SmartSaver, load_variable, rename_variables
from partialsaver._rename import TEMP_PREFIX
from tests.conftest import save_values

v1 = tf.compat.v1
CHILD = Path(__file__).resolve().parent / "helpers" / "crash_child.py"
ROOT = Path(__file__).resolve().parents[1]
VALUES = {f"layer{i:02d}/w": np.full([256, 1024], i, np.float32) for i in range(24)}  # 24 MiB, 1 MiB each


def run_child(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(CHILD), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def hashes(prefix):
    directory = os.path.dirname(prefix)
    return {name: hashlib.sha256(Path(directory, name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(directory)) if name.startswith(os.path.basename(prefix))}


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    directory = tmp_path_factory.mktemp("crash_src")
    return save_values(directory, VALUES)


def assert_absent_or_complete(dst):
    if not os.path.exists(dst + ".index"):
        return "absent"
    for name, value in VALUES.items():
        np.testing.assert_array_equal(load_variable(dst, "renamed/" + name), value)
    return "complete"


@pytest.mark.parametrize("point", ["after_first_batch", "before_merge", "after_data_moved", "before_state_file",
                                   "timed:0.5", "timed:1.5"])
def test_rename_killed_at_any_point(big_source, tmp_path, point):
    before = hashes(big_source)
    dst = str(tmp_path / "out" / "model.ckpt")
    os.makedirs(os.path.dirname(dst))
    result = run_child("rename", big_source, dst, point)
    assert result.returncode in (-signal.SIGKILL, 0), result.stderr[-2000:]
    killed = result.returncode == -signal.SIGKILL
    assert hashes(big_source) == before  # src untouched, bit for bit
    state = assert_absent_or_complete(dst)
    if point in ("after_first_batch", "before_merge", "after_data_moved"):
        assert killed and state == "absent"
    if point == "before_state_file":
        assert killed and state == "complete"
    # The next run in that directory succeeds and removes what the killed one left.
    rename_variables(big_source, str(tmp_path / "out" / "again.ckpt"), {"/": "renamed/"})
    leftovers = [name for name in os.listdir(tmp_path / "out") if name.startswith(TEMP_PREFIX)]
    assert leftovers == []


def test_rename_over_an_existing_dst_killed_before_its_index(big_source, tmp_path):
    dst = str(tmp_path / "model.ckpt")
    rename_variables(big_source, dst, {"/": "renamed/"})
    result = run_child("rename", big_source, dst, "after_data_moved", "overwrite")
    assert result.returncode == -signal.SIGKILL
    assert assert_absent_or_complete(dst) == "absent"  # old one replaced, new one not there yet: absent, never mixed


@pytest.mark.parametrize("delay", [0.1, 0.25, 0.3, 0.35, 0.5])
def test_save_killed_at_any_point(tmp_path, delay):
    result = run_child("save", tmp_path, delay)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    saved = [int(line.split()[1]) for line in result.stdout.split("\n") if line.startswith("saved")]
    latest = v1.train.latest_checkpoint(str(tmp_path))
    step = int(re.search(r"-(\d+)$", latest).group(1))
    assert step in saved or step == max(saved) + 1
    np.testing.assert_array_equal(np.unique(load_variable(latest, "big")), [float(step)])
    for index in tmp_path.glob("model.ckpt-*.index"):  # every checkpoint on disk is complete
        prefix = str(index)[: -len(".index")]
        found = int(prefix.rsplit("-", 1)[1])
        np.testing.assert_array_equal(np.unique(load_variable(prefix, "big")), [float(found)])
    # The next run saves fine in that directory and removes the partial files of the killed
    # save once they are stale (an hour old here); a file another save is writing now stays.
    for partial in tmp_path.glob("model.ckpt-*.tempstate*"):
        os.utime(partial, (partial.stat().st_atime - 3600, partial.stat().st_mtime - 3600))
    busy = tmp_path / "model.ckpt-1000.data-00000-of-00001.tempstate123"
    busy.write_bytes(b"being written")
    with tf.Graph().as_default():
        big = v1.get_variable("big", [16 << 20], initializer=v1.ones_initializer())
        with v1.Session() as sess:
            sess.run(big.initializer)
            SmartSaver().save(sess, str(tmp_path / "model.ckpt"), global_step=999)
    assert v1.train.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-999")
    assert [path.name for path in tmp_path.glob("*.tempstate*")] == [busy.name]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB file system (tmpfs; needs root), else None."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def limit_file_size():
    """Without root: the process may write no file larger than 3 MiB (EFBIG, like a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))


DISK_FULL = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
from partialsaver import PartialSaverError, SmartSaver, rename_variables
v1 = tf.compat.v1
directory, src = sys.argv[1], sys.argv[2]
try:
    rename_variables(src, os.path.join(directory, "renamed.ckpt"), {"/": "renamed/"})
    print("rename: no error")
except PartialSaverError as error:
    print("rename:", type(error).__name__, str(error).splitlines()[0])
with tf.Graph().as_default():
    value = v1.placeholder(tf.float32, [])
    big = v1.get_variable("big", [400000], initializer=v1.zeros_initializer())        # 1.6 MB: fits
    huge = v1.get_variable("huge", [1 << 20], initializer=v1.zeros_initializer())     # 4 MiB more: does not
    fill = big.assign(tf.fill([400000], value))
    savers = {1: SmartSaver(include="big", max_to_keep=5), 2: SmartSaver(max_to_keep=5)}
    with v1.Session() as sess:
        sess.run([big.initializer, huge.initializer])
        for step in (1, 2):
            sess.run(fill, {value: float(step)})
            try:
                savers[step].save(sess, os.path.join(directory, "model.ckpt"), global_step=step, write_meta_graph=False)
                print("save", step, "ok")
            except PartialSaverError as error:
                print("save", step, type(error).__name__, str(error).splitlines()[0])
"""


def test_a_full_disk(big_source, small_disk, tmp_path):
    directory = small_disk or (tmp_path / "limited")
    directory.mkdir(exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", DISK_FULL, str(directory), big_source], capture_output=True,
                            text=True, env=env, timeout=300, preexec_fn=None if small_disk else limit_file_size)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("rename: PartialSaverError writing") and "check free disk space" in lines[0]
    if small_disk:
        assert "No space left on device" in lines[0]
    assert lines[1] == "save 1 ok"
    # The second save needs more room than there is, with root (a 3 MiB tmpfs) or without (a 3 MiB file limit).
    assert lines[2].startswith("save 2 PartialSaverError writing the checkpoint") and "check free disk space" in lines[2]
    names = sorted(os.listdir(directory))
    assert not [name for name in names if name.startswith(("renamed.ckpt", TEMP_PREFIX))]  # nothing half-written
    assert not (directory / "model.ckpt-2.index").exists()
    latest = v1.train.latest_checkpoint(str(directory))
    assert latest.endswith("model.ckpt-1")  # the previous checkpoint is still the latest, and whole
    np.testing.assert_array_equal(np.unique(load_variable(latest, "big")), [1.0])

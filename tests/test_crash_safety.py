"""kill -9 in the middle of rename_variables and SmartSaver.save, and a full disk: the
source and the previous latest checkpoint stay restorable bit-identically, the new
checkpoint is absent or complete, and the next run cleans what the killed one left."""

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from partialsaver import SmartSaver, list_variables, load_variable, rename_variables
from partialsaver._temporaries import TEMP_MARK
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


def state_of(prefix, mode, old_names=False):
    """"absent", "old" (the original keys and values) or "new" (renamed, and filtered in
    drop mode), asserting that whatever the index names is complete and bit-identical."""
    if not os.path.exists(prefix + ".index"):
        return "absent"
    names = [info.name for info in list_variables(prefix)]
    if names == sorted(VALUES):
        for name, value in VALUES.items():
            np.testing.assert_array_equal(load_variable(prefix, name), value)
        return "old"
    kept = {name: value for name, value in VALUES.items() if mode == "pure" or not DROPPED.match(name)}
    assert names == sorted("renamed/" + name for name in kept)
    for name, value in kept.items():
        np.testing.assert_array_equal(load_variable(prefix, "renamed/" + name), value)
    return "new"


DROPPED = re.compile(r"^layer0[0-3]/")
POINTS = ["data_written", "index_switched", "before_state_file", "timed:0.5", "timed:1.2"]
# (point, mode): a rename that only renames copies no bytes, so "mid_copy" is the drop mode's alone.
KILLS = [(point, mode) for mode in ("pure", "drop") for point in POINTS] + [("mid_copy", "drop")]


def leftovers(directory, prefix):
    """Files a finished run would not leave: temporaries, and data files the index does not name."""
    from partialsaver.format import read_index
    from partialsaver.format.naming import data_paths

    named = set()
    if os.path.exists(prefix + ".index"):
        named = {os.path.basename(path) for path in data_paths(prefix, read_index(prefix)[0].num_shards)}
    base = os.path.basename(prefix)
    return sorted(name for name in os.listdir(directory)
                  if TEMP_MARK in name or (name.startswith(base + ".data-") and name not in named))


@pytest.mark.parametrize("point, mode", KILLS)
def test_rename_killed_at_any_point(big_source, tmp_path, point, mode):
    before = hashes(big_source)
    dst = str(tmp_path / "out" / "model.ckpt")
    result = run_child("rename", big_source, dst, point, mode)
    assert result.returncode in (-signal.SIGKILL, 0), result.stderr[-2000:]
    killed = result.returncode == -signal.SIGKILL
    assert hashes(big_source) == before  # src untouched, bit for bit (hard links included)
    state = state_of(dst, mode)
    if point in ("mid_copy", "data_written"):
        assert killed and state == "absent"
    if point in ("index_switched", "before_state_file"):
        assert killed and state == "new"
    # The next run in that directory succeeds and removes what the killed one left.
    rename_variables(big_source, dst, {"/": "renamed/"}, exclude=DROPPED if mode == "drop" else None, overwrite=True)
    assert state_of(dst, mode) == "new" and leftovers(tmp_path / "out", dst) == []
    assert v1.train.latest_checkpoint(str(tmp_path / "out")) == dst


@pytest.mark.parametrize("point, mode", KILLS)
def test_an_in_place_rename_killed_at_any_point_leaves_the_old_or_the_new_checkpoint(big_source, tmp_path, point,
                                                                                     mode):
    directory = tmp_path / "inplace"
    shutil.copytree(os.path.dirname(big_source), directory)
    prefix = str(directory / os.path.basename(big_source))
    result = run_child("rename", prefix, prefix, point, mode, "overwrite")
    assert result.returncode in (-signal.SIGKILL, 0), result.stderr[-2000:]
    state = state_of(prefix, mode)
    assert state in ("old", "new")  # never absent, never mixed
    if point in ("mid_copy", "data_written"):
        assert state == "old"
    if point in ("index_switched", "before_state_file"):
        assert state == "new"
    # The next run finishes the job and removes what the killed one left.
    if state == "old":
        rename_variables(prefix, prefix, {"/": "renamed/"}, exclude=DROPPED if mode == "drop" else None,
                         overwrite=True)
    else:
        rename_variables(prefix, prefix, {"renamed/layer00/w": "renamed/layer00/w2"}, overwrite=True)
        rename_variables(prefix, prefix, {"renamed/layer00/w2": "renamed/layer00/w"}, overwrite=True)
    assert state_of(prefix, mode) == "new" and leftovers(directory, prefix) == []


def test_rename_over_an_existing_dst_killed_before_its_index_keeps_the_old_dst(big_source, tmp_path):
    dst = str(tmp_path / "model.ckpt")
    rename_variables(big_source, dst, {"/": "old_copy/"})
    result = run_child("rename", big_source, dst, "data_written", "pure", "overwrite")
    assert result.returncode == -signal.SIGKILL
    names = [info.name for info in list_variables(dst)]
    assert names == sorted("old_copy/" + name for name in VALUES)  # the old dst, whole
    np.testing.assert_array_equal(load_variable(dst, "old_copy/layer05/w"), VALUES["layer05/w"])


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


@pytest.fixture(params=["tmpfs", "file_size_limit"])
def small_disk(request, tmp_path):
    """(directory, preexec_fn): a 3 MiB tmpfs (needs root), or any directory written by a process
    that may write no file larger than 3 MiB (EFBIG, which is what a full disk looks like)."""
    directory = tmp_path / "small_disk"
    directory.mkdir()
    if request.param == "file_size_limit":
        yield directory, limit_file_size
        return
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(directory)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a tmpfs needs root; the file_size_limit case covers a full disk without it")
    try:
        yield directory, None
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


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
    # Keys left out: the kept bytes are copied, more than there is room for.
    rename_variables(src, os.path.join(directory, "renamed.ckpt"), {"/": "renamed/"}, exclude="layer00")
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


def test_a_full_disk(big_source, small_disk):
    directory, preexec = small_disk
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", DISK_FULL, str(directory), big_source], capture_output=True,
                            text=True, env=env, timeout=300, preexec_fn=preexec)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("rename: PartialSaverError writing") and "check free disk space" in lines[0]
    assert "nothing was written to dst" in lines[0]
    if preexec is None:
        assert "No space left on device" in lines[0]
    assert lines[1] == "save 1 ok"
    # The second save needs more room than there is, with root (a 3 MiB tmpfs) or without (a 3 MiB file limit).
    assert lines[2].startswith("save 2 PartialSaverError writing the checkpoint") and "check free disk space" in lines[2]
    names = sorted(os.listdir(directory))
    assert not [name for name in names if name.startswith("renamed.ckpt") or TEMP_MARK in name]  # nothing half-written
    assert not (directory / "model.ckpt-2.index").exists()
    latest = v1.train.latest_checkpoint(str(directory))
    assert latest.endswith("model.ckpt-1")  # the previous checkpoint is still the latest, and whole
    np.testing.assert_array_equal(np.unique(load_variable(latest, "big")), [1.0])

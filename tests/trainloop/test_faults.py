"""Fault injection: damaged checkpoints, torn metrics lines, a full disk, signals before the first
step, NaN stops, and (slow) repeated kill -9 during checkpoint saves."""

import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from toy import make_toy_task, toy_config

from trainloop import checkpoint as ckpt_lib
from trainloop import metrics as metrics_lib
from trainloop import train as train_lib
from trainloop.checkpoint import Checkpoints
from trainloop.checksums import tree_checksums
from trainloop.errors import CheckpointError
from trainloop.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
TIMING = ("train/steps_per_sec", "train/examples_per_sec", "train/tokens_per_sec")


def _run(workdir, task=None, **overrides):
    return train_lib.train_and_evaluate(
        toy_config(**overrides), str(workdir), task or make_toy_task(), devices=jax.devices()[:1]
    )


def _values(workdir):
    """metrics.jsonl without wall-clock keys."""
    return [
        {k: v for k, v in e.items() if k not in TIMING}
        for e in read_metrics(f"{workdir}/metrics.jsonl")
    ]


def _snapshot(path):
    return {
        os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(path)
        for f in files
    }


def _flip_16_bytes(step_dir):
    """Flips 16 bytes in the middle of the largest array-data file of a checkpoint step."""
    files = [
        os.path.join(d, f)
        for d, _, fs in os.walk(os.path.join(step_dir, "state"))
        for f in fs
        if os.path.basename(d) == "d"
    ]
    path = max(files, key=os.path.getsize)
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    open(path, "wb").write(bytes(data))


def _truncate(path, n=40):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:n])


DAMAGE = {
    "flipped array bytes": _flip_16_bytes,
    "truncated meta": lambda d: _truncate(os.path.join(d, "meta", "metadata")),
    "garbled meta": lambda d: open(os.path.join(d, "meta", "metadata"), "wb").write(b"\xff\xfe"),
    "missing state folder": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "truncated state metadata": lambda d: _truncate(os.path.join(d, "state", "_METADATA"), 100),
    "garbled array metadata": lambda d: open(
        os.path.join(d, "state", "array_metadatas", "process_0"), "w"
    ).write("garbage"),
}


def _state(step):
    """A train-state-like tree whose 256x256 array is stored in an orbax data file (too big to be
    inlined into orbax's CRC-checked index)."""
    key = jax.random.key(step)
    return {
        "step": jnp.int32(step),
        "params": {"w": jax.random.normal(key, (256, 256)), "b": jnp.arange(3.0) + step},
    }


def _save(workdir, *steps):
    ckpts = Checkpoints(str(workdir), every=1, keep=5)
    for step in steps:
        ckpts.save(step, _state(step), {"structure": {}}, force=True)
    ckpts.close()


def _restore_latest(workdir, read_only=False):
    ckpts = Checkpoints(str(workdir), every=1, keep=5, read_only=read_only)
    try:
        return ckpts.restore_latest()
    finally:
        ckpts.close()


def test_orbax_alone_restores_flipped_bytes_and_the_checksums_catch_them(tmp_path):
    _save(tmp_path, 1)
    _flip_16_bytes(tmp_path / "checkpoints" / "1")
    # orbax's own restore reads the damaged data without any error ...
    manager = ocp.CheckpointManager(str(tmp_path / "checkpoints"), item_names=("state", "meta"))
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(1))
    raw = manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    manager.close()
    assert not np.array_equal(np.asarray(raw["state"]["params"]["w"]), _state(1)["params"]["w"])
    # ... and the recorded checksums tell.
    ckpts = Checkpoints(str(tmp_path), every=1, keep=5, read_only=True)
    with pytest.raises(CheckpointError, match=r"step 1 .* damaged: checksum mismatch .*params/w"):
        ckpts.restore(1)
    ckpts.close()


def _partial_params_restore(workdir, step):
    """A restore of the params alone through a manager of one's own (how a tool that needs no
    optimizer state reads a checkpoint), followed by `verify_restored`."""
    manager = ocp.CheckpointManager(
        str(workdir / "checkpoints"),
        options=ocp.CheckpointManagerOptions(read_only=True, create=False),
        item_handlers={"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), _state(step)["params"]
    )
    args = jax.tree.map(
        lambda t: ocp.ArrayRestoreArgs(sharding=device, global_shape=t.shape, dtype=t.dtype), target
    )
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    {"params": target}, restore_args={"params": args}, partial_restore=True
                )
            ),
        )
        ckpt_lib.verify_restored(manager, step, restored["state"])
    finally:
        manager.close()
    return restored["state"]["params"]


def test_verify_restored_checks_a_partial_restore(tmp_path):
    _save(tmp_path, 1)
    params = _partial_params_restore(tmp_path, 1)
    chex.assert_trees_all_equal(jax.device_get(params), jax.device_get(_state(1)["params"]))
    _flip_16_bytes(tmp_path / "checkpoints" / "1")
    with pytest.raises(CheckpointError, match=r"step 1 .* damaged: checksum mismatch .*params/w"):
        _partial_params_restore(tmp_path, 1)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, damage):
    _save(tmp_path, 1, 2)
    DAMAGE[damage](tmp_path / "checkpoints" / "2")
    step, state, _ = _restore_latest(tmp_path)
    assert step == 1
    chex.assert_trees_all_equal(jax.device_get(state), jax.device_get(_state(1)))
    err = capsys.readouterr().err
    assert "Checkpoint step 2 in" in err and "Using step 1, the newest intact" in err, err
    assert "Traceback" not in err
    # Moved aside (not deleted), so the run can save step 2 again.
    assert os.listdir(tmp_path / "checkpoints") == ["1"]
    assert os.path.isdir(tmp_path / "damaged_checkpoints" / "2")
    _save(tmp_path, 2)
    assert _restore_latest(tmp_path)[0] == 2


def test_read_only_restore_falls_back_without_moving_anything(tmp_path, capsys):
    _save(tmp_path, 1, 2)
    _flip_16_bytes(tmp_path / "checkpoints" / "2")
    before = _snapshot(tmp_path)
    assert _restore_latest(tmp_path, read_only=True)[0] == 1
    assert "Using step 1" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_no_intact_checkpoint_is_an_error_that_changes_nothing(tmp_path):
    _save(tmp_path, 1, 2)
    _flip_16_bytes(tmp_path / "checkpoints" / "1")
    DAMAGE["garbled meta"](tmp_path / "checkpoints" / "2")
    before = _snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="No intact checkpoint.*step 2.*step 1.*Nothing was"):
        _restore_latest(tmp_path)
    assert _snapshot(tmp_path) == before


def test_checksums_do_not_depend_on_the_device_layout():
    x = jax.random.normal(jax.random.key(0), (64, 32))
    mesh = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d")))
    tree = {"x": x, "b": jnp.array([True, False]), "h": x.astype(jnp.bfloat16)}
    assert tree_checksums(tree)["x"] == tree_checksums({"x": sharded})["x"]
    changed = x.at[5, 7].set(jnp.nextafter(x[5, 7], jnp.inf))  # one bit of one element
    assert tree_checksums({"x": changed})["x"] != tree_checksums(tree)["x"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 12-step toy run (checkpoints 8 and 12 kept): (workdir, final state)."""
    workdir = tmp_path_factory.mktemp("reference")
    result = _run(workdir, num_steps=12)
    return workdir, jax.device_get(result.state)


def test_damaged_checkpoint_run_resumes_bitwise_identical(reference, tmp_path, capsys):
    ref_dir, ref_state = reference
    shutil.copytree(ref_dir, tmp_path / "run")
    _flip_16_bytes(tmp_path / "run" / "checkpoints" / "12")
    resumed = _run(tmp_path / "run", num_steps=12)  # 12 is damaged: from 8 to 12 again
    err = capsys.readouterr().err
    assert "Checkpoint step 12 in" in err and "Using step 8, the newest intact" in err, err
    chex.assert_trees_all_equal(ref_state, jax.device_get(resumed.state))
    assert _values(ref_dir) == _values(tmp_path / "run")
    assert os.listdir(tmp_path / "run" / "damaged_checkpoints") == ["12"]


def test_torn_metrics_line_is_moved_aside_and_the_resume_matches(reference, tmp_path, capsys):
    ref_dir, ref_state = reference
    shutil.copytree(ref_dir, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "12")  # the job died after step 12's metrics
    torn = b'{"step": 13, "train/lo'  # ... in the middle of writing a line
    with open(tmp_path / "run" / "metrics.jsonl", "ab") as f:
        f.write(torn)
    assert _values(tmp_path / "run") == _values(ref_dir)  # readers skip the torn line
    resumed = _run(tmp_path / "run", num_steps=12)  # from 8
    assert "moved 1 undecodable line(s)" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.torn.jsonl").read_bytes() == torn + b"\n"
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes().endswith(b"}\n")
    chex.assert_trees_all_equal(ref_state, jax.device_get(resumed.state))
    assert _values(ref_dir) == _values(tmp_path / "run")


def test_a_failed_metrics_write_leaves_no_torn_line(tmp_path, monkeypatch):
    writer = metrics_lib.MetricsWriter(str(tmp_path), tensorboard=False)
    writer.write(1, {"train/loss": 1.0})
    before = (tmp_path / "metrics.jsonl").read_bytes()
    real_write = os.write

    def disk_full_after_10_bytes(fd, data):
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics_lib.os, "write", disk_full_after_10_bytes)
    with pytest.raises(OSError, match="appending the metrics of step 2.*left as it was"):
        writer.write(2, {"train/loss": 0.5})
    assert (tmp_path / "metrics.jsonl").read_bytes() == before


def test_nonfinite_stop_without_checkpoint_says_so(tmp_path):
    with pytest.raises(train_lib.NonFiniteError, match="at step 3;.*No checkpoint had been"):
        _run(tmp_path, task=make_toy_task(blowup_at=2), checkpoint_every=0, log_every=1)


def test_stop_note_names_the_newest_complete_checkpoint(tmp_path):
    note = train_lib._stop_note(str(tmp_path / "checkpoints"))
    assert "no checkpoint was written" in note()
    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    (tmp_path / "checkpoints" / "8.orbax-checkpoint-tmp-1").mkdir()  # unfinished save
    assert "newest complete checkpoint is step 4 in" in note()


def _mount_tiny_disk(path, size):
    path.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here: the full-disk case needs a tiny tmpfs")
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root")


def _fill(path):
    """Writes `path` until the disk is full."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC


def test_full_disk_mid_run_is_a_clear_error_and_the_run_resumes(reference, tmp_path):
    ref_dir, ref_state = reference
    disk = tmp_path / "disk"
    _mount_tiny_disk(disk, "4m")
    try:
        task = make_toy_task()
        host_batch = task.host_batch

        def fills_the_disk_at_step_5(step, *args):
            if step == 5:
                _fill(disk / "filler")
            return host_batch(step, *args)

        task = dataclasses.replace(task, host_batch=fills_the_disk_at_step_5)
        workdir = disk / "run"
        with pytest.raises(OSError) as info:
            _run(workdir, task=task, num_steps=12)
        assert info.value.errno == errno.ENOSPC
        assert "No space left on device while" in str(info.value)
        for line in (workdir / "metrics.jsonl").read_bytes().splitlines():
            json.loads(line)  # no torn line
        # The step-4 save may still have been in flight when the disk filled up.
        complete = ckpt_lib.complete_steps(str(workdir / "checkpoints"))
        assert complete in ([], [4])
        named = "newest complete checkpoint is step 4" if complete else "no checkpoint is complete"
        assert named in str(info.value)
        os.remove(disk / "filler")  # space freed: the same command resumes
        resumed = _run(workdir, num_steps=12)
        chex.assert_trees_all_equal(ref_state, jax.device_get(resumed.state))
        assert _values(ref_dir) == _values(workdir)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _catches_sigterm(pid) -> bool:
    """Whether the process has a SIGTERM handler installed (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(line for line in f if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_sigterm_before_the_first_step_says_no_checkpoint_was_written(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "train.py"),
            f"--config={ROOT}/configs/linear_regression.py:setting=1,layers=1,steps=50",
            f"--workdir={tmp_path / 'run'}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not _catches_sigterm(proc.pid) and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # the handler is in; the first step is seconds away
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip() == (
        "Stopped by SIGTERM (signal 15) before training started; no checkpoint was written by "
        "this command (any already in the workdir are unchanged)."
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def _spawn_worker(workdir, num_steps):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["WORKER_CHECKPOINT_EVERY"] = "1"
    return subprocess.Popen(
        [sys.executable, WORKER, str(workdir), str(num_steps), "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _final_state(workdir):
    ckpts = Checkpoints(str(workdir), every=1, keep=1, read_only=True)
    try:
        step, state, _ = ckpts.restore_latest()
    finally:
        ckpts.close()
    return step, jax.device_get(state)


@pytest.mark.slow
def test_kill_9_during_checkpoint_saves_then_resume_matches_an_uninterrupted_run(tmp_path):
    """>= 10 kill -9 trials, mostly while an async save is in flight (a checkpoint every step)."""
    steps = 60
    reference = _spawn_worker(tmp_path / "reference", steps)
    assert reference.wait(timeout=600) == 0
    workdir = tmp_path / "killed"
    rng = random.Random(0)
    kills = during_save = 0
    while kills < 12:
        proc = _spawn_worker(workdir, steps)
        done = ckpt_lib.complete_steps(str(workdir / "checkpoints"))
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:  # wait until it trains past `done`
            now = ckpt_lib.complete_steps(str(workdir / "checkpoints"))
            if now and now[-1] > (done[-1] if done else 0):
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break  # finished before the kill
        proc.kill()
        proc.wait()
        kills += 1
        names = os.listdir(workdir / "checkpoints")
        during_save += any("orbax-checkpoint-tmp" in n for n in names)
    assert kills >= 10, f"only {kills} kills before the run finished"
    final = _spawn_worker(workdir, steps)
    assert final.wait(timeout=600) == 0
    step, state = _final_state(workdir)
    ref_step, ref_state = _final_state(tmp_path / "reference")
    assert step == ref_step == steps
    chex.assert_trees_all_equal(state, ref_state)
    assert _values(workdir) == _values(tmp_path / "reference")
    print(f"{kills} kill -9 trials, {during_save} with a save in flight")
    assert during_save >= kills // 2


def _tensorboard_scalars(logdir):
    """{(tag, step): value} from the TFRecord event files in `logdir`."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for name in os.listdir(logdir):
        data = open(os.path.join(logdir, name), "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out[(value.tag, event.step)] = value.simple_value
    return out


def test_tensorboard_events_hold_the_logged_scalars(reference):
    ref_dir, _ = reference
    scalars = _tensorboard_scalars(ref_dir / "tensorboard")
    for event in read_metrics(str(ref_dir / "metrics.jsonl")):
        for key, value in event.items():
            if key != "step":
                assert scalars[(key, event["step"])] == pytest.approx(value, rel=1e-6)

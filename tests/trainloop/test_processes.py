"""Multi-process training over gloo on localhost, and clean stops on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from trainloop.metrics import read_metrics

WORKER = os.path.join(os.path.dirname(__file__), "worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _spawn(*args, **env_vars):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | env_vars
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _losses(workdir):
    return [e["train/loss"] for e in read_metrics(f"{workdir}/metrics.jsonl") if "train/loss" in e]


def test_two_processes_match_one_process(tmp_path):
    # Log every 2 steps and checkpoint at 5 (and at the end, 7): only steps 2, 4, 5, 6 and 7 may
    # synchronise the processes; steps 1 and 3 must make no cross-process blocking call.
    every = {"WORKER_LOG_EVERY": "2", "WORKER_CHECKPOINT_EVERY": "5"}
    single = _spawn(tmp_path / "single", 7, 4, **every)
    out, _ = single.communicate(timeout=300)
    assert single.returncode == 0, out
    port = _free_port()
    workers = [_spawn(tmp_path / "multi", 7, 2, i, 2, port, **every) for i in range(2)]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    assert len(_losses(tmp_path / "single")) == 4  # steps 2, 4, 6, 7
    assert _losses(tmp_path / "multi") == pytest.approx(_losses(tmp_path / "single"), rel=1e-5)
    for out in outs:
        line = next(x for x in out.splitlines() if x.startswith("SYNC_CALLS="))
        calls = {int(k): v for k, v in json.loads(line.removeprefix("SYNC_CALLS=")).items()}
        assert set(calls) - {0} <= {2, 4, 5, 6, 7}, calls  # 0: setup and restore
        for log_step in (2, 4, 6):  # the stop flag, gathered once
            assert calls[log_step] == ["process_allgather"], calls


def test_sigterm_saves_checkpoint_and_rerun_resumes(tmp_path):
    proc = _spawn(tmp_path, 10**6, 1)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and len(_losses(tmp_path)) < 3:
        time.sleep(0.2)
    assert len(_losses(tmp_path)) >= 3, "worker never started training"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "interrupted=True" in out
    saved = [int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit()]
    stopped_at = max(saved)
    assert stopped_at >= 3
    assert max(e["step"] for e in read_metrics(str(metrics))) == stopped_at
    # The rerun restores the saved step and carries on to its (smaller) budget.
    rerun = _spawn(tmp_path, stopped_at + 2, 1)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    assert f"WORKER_DONE step={stopped_at + 2}" in out
    steps = [e["step"] for e in read_metrics(str(metrics)) if "train/loss" in e]
    assert steps == list(range(1, stopped_at + 3))

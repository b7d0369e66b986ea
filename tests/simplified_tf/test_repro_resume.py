"""A figure sweep killed at a random point continues where it stopped: finished runs are never
retrained and the sweep completes. (That a resumed run equals an uninterrupted one bitwise is the
training loop's guarantee, tested in tests/trainloop.)"""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

from stf_helpers import write_corpus

ROOT = pathlib.Path(__file__).resolve().parents[2]

SWEEP = """
import dataclasses, json, sys
sys.path.insert(0, {root!r})
from simplified_tf.repro.experiment import Group, run_group
from simplified_tf.repro.runs import Arm, RunStore

data = (("source", {corpus!r}), ("cache_dir", {cache!r}), ("vocab_size", 300),
        ("val_fraction", 0.2), ("eval_batches", 1))
group = Group("g", (Arm("sas_p", "sas_p", size="tiny"),), steps=8, seeds=(0, 1), eval_every=2,
              data=data, grid_points=3, max_widen=0)
store = RunStore({runs!r})
out = run_group(store, group)
print(json.dumps({{k: o.finals for k, o in out.items()}}))
print("TRAINED", json.dumps(store.trained))
"""


def _script(tmp_path, runs):
    corpus = write_corpus(tmp_path / "corpus", 12, lines=30, words=(2, 8))
    text = SWEEP.format(root=str(ROOT), corpus=str(corpus), cache=str(tmp_path / "cache"),
                        runs=str(runs))  # fmt: skip
    path = tmp_path / f"sweep_{runs.name}.py"
    path.write_text(text)
    return path


def _run(path, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _finished(runs: pathlib.Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/result.json")}


def test_killed_sweep_resumes_without_retraining(tmp_path):
    runs = tmp_path / "runs"
    path = _script(tmp_path, runs)
    proc = _run(path)
    # Kill at a random moment after the first run has finished (and before the sweep ends).
    deadline = time.time() + 300
    while not _finished(runs) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(random.uniform(0.0, 4.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _finished(runs)
    assert before, "no run finished before the kill"

    proc = _run(path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    retrained = json.loads(out.split("TRAINED", 1)[1])
    assert not set(retrained) & set(before)  # finished runs were read, not trained again
    after = _finished(runs)
    assert all(after[k] == v for k, v in before.items())  # and their results never rewritten
    assert len(after) == 3 + 1  # 3 LRs, plus seed 1 at the best one
    finals = json.loads(out.splitlines()[0])["sas_p"]
    assert len(finals) == 2 and all(f == f and f < 10 for f in finals)  # finite losses

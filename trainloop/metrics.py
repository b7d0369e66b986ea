"""Metrics sinks: `WORKDIR/metrics.jsonl` (one JSON object per event) and TensorBoard event files.

Only process 0 writes. On resume from step k, events after k (written after the last checkpoint) are
moved to `metrics.dropped.jsonl` rather than deleted, so the main file never holds a step twice.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import jax
import numpy as np
from absl import logging


def _to_python(v):
    v = np.asarray(v).item() if not isinstance(v, (int, float, str)) else v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Inf
    return v


def read_metrics(path: str) -> list[dict]:
    """All events of a metrics.jsonl file (empty list if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsWriter:
    def __init__(self, workdir: str, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.active and tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

    def truncate_after(self, step: int) -> None:
        """Keeps events with step <= `step`; later ones go to metrics.dropped.jsonl."""
        if not self.active or not os.path.exists(self.path):
            return
        events = read_metrics(self.path)
        keep = [e for e in events if e.get("step", 0) <= step]
        drop = [e for e in events if e.get("step", 0) > step]
        if not drop:
            return
        logging.info("Resuming at step %d: moving %d later metric events aside.", step, len(drop))
        dropped = os.path.join(os.path.dirname(self.path), "metrics.dropped.jsonl")
        with open(dropped, "a") as f:
            f.writelines(json.dumps(e) + "\n" for e in drop)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in keep)
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: Mapping[str, object]) -> None:
        if not self.active:
            return
        event = {"step": int(step), **{k: _to_python(v) for k, v in sorted(metrics.items())}}
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\n")
        if self._tb is not None:
            for k, v in event.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

"""Metrics sinks: `WORKDIR/metrics.jsonl` (one JSON object per event) and TensorBoard event files.

Only process 0 writes. metrics.jsonl never holds a torn line written by this code: each event is
appended with one `write` call, and if that fails (e.g. a full disk) the file is cut back to its
previous length before the error is raised. A torn or undecodable line left by anything else (a
`kill -9` mid-write, an older version) is moved to `metrics.torn.jsonl` with a warning when the run
resumes, and skipped with a warning by `read_metrics`. On resume from step k, events after k
(written after the last checkpoint) are moved to `metrics.dropped.jsonl` rather than deleted, so the
main file never holds a step twice.

TensorBoard scalars are written synchronously with tensorboardX's record format; a write error there
switches TensorBoard output off for the rest of the run with a warning (metrics.jsonl is the record).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping

import jax
import numpy as np
from absl import logging

from trainloop.progress import announce

TORN_FILE = "metrics.torn.jsonl"
DROPPED_FILE = "metrics.dropped.jsonl"


def _to_python(v):
    v = np.asarray(v).item() if not isinstance(v, (int, float, str)) else v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Inf
    return v


def _parse_lines(data: bytes) -> tuple[list[tuple[dict, bytes]], list[tuple[int, bytes]]]:
    """([(event, its line)], [(line number, undecodable line)]) of a metrics.jsonl's bytes."""
    events, bad = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            bad.append((number, line))
            continue
        events.append((event, line))
    return events, bad


def read_metrics(path: str) -> list[dict]:
    """All events of a metrics.jsonl file (empty list if it does not exist); undecodable lines (a
    torn last line after a crash) are skipped with a warning naming them."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        events, bad = _parse_lines(f.read())
    if bad:
        logging.warning(
            "%s: skipped %d undecodable line(s) (line %s).",
            path,
            len(bad),
            ", ".join(str(n) for n, _ in bad),
        )
    return [e for e, _ in events]


def _append(path: str, data: bytes, what: str) -> None:
    """Appends `data` in one write; on failure the file keeps its previous length."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as e:
            os.ftruncate(fd, before)  # frees blocks, so it works on a full disk
            raise OSError(
                e.errno, f"{e.strerror} while {what} {path} (the file was left as it was)"
            ) from e
    finally:
        os.close(fd)


class _EventFile:
    """TensorBoard scalars in one event file, written on the caller's thread (errors surface here)."""

    FLUSH_SECONDS = 30.0

    def __init__(self, logdir: str):
        from tensorboardX.event_file_writer import EventsWriter

        os.makedirs(logdir, exist_ok=True)
        self._writer = EventsWriter(os.path.join(logdir, "events"))
        self._flushed = time.monotonic()

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        self._writer.write_event(
            Event(wall_time=time.time(), step=step, summary=Summary(value=values))
        )
        if time.monotonic() - self._flushed > self.FLUSH_SECONDS:
            self._writer.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self._writer.close()


class MetricsWriter:
    def __init__(self, workdir: str, tensorboard: bool = True):
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.active and tensorboard:
            try:
                self._tb = _EventFile(os.path.join(workdir, "tensorboard"))
            except OSError as e:
                self._tb_failed(e)

    def _tb_failed(self, error: OSError) -> None:
        announce(
            f"WARNING: TensorBoard event file: {error}; TensorBoard output is off for the rest of "
            "this run (metrics.jsonl is unaffected)."
        )
        tb, self._tb = self._tb, None
        if tb is not None:
            try:
                tb.close()  # releases the file; its unwritten buffer is lost either way
            except OSError:
                pass

    def _set_aside(self, name: str, lines: list[bytes], what: str) -> None:
        path = os.path.join(os.path.dirname(self.path), name)
        _append(path, b"".join(line + b"\n" for line in lines), f"moving {what} to")

    def truncate_after(self, step: int) -> None:
        """Keeps events with step <= `step`; later ones go to metrics.dropped.jsonl, and undecodable
        lines (a torn last line) to metrics.torn.jsonl, each with a warning. The main file is
        replaced atomically after the moved lines are in their files (so a failure, e.g. a full
        disk, loses nothing; a retry may then append a moved line twice)."""
        if not self.active or not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            data = f.read()
        events, bad = _parse_lines(data)
        keep = [line for e, line in events if e.get("step", 0) <= step]
        drop = [line for e, line in events if e.get("step", 0) > step]
        if not drop and not bad and (not data or data.endswith(b"\n")):
            return
        if bad:
            self._set_aside(TORN_FILE, [line for _, line in bad], "undecodable lines")
            numbers = ", ".join(str(n) for n, _ in bad)
            announce(
                f"WARNING: {self.path}: moved {len(bad)} undecodable line(s) (line {numbers}; e.g. "
                f"torn by a crash mid-write) to {TORN_FILE}."
            )
        if drop:
            logging.info(
                "Resuming at step %d: moving %d later metric events aside.", step, len(drop)
            )
            self._set_aside(DROPPED_FILE, drop, "events logged after the checkpoint")
        tmp = f"{self.path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(b"".join(line + b"\n" for line in keep))
            os.replace(tmp, self.path)
        except OSError as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise OSError(
                e.errno, f"{e.strerror} while rewriting {self.path} (the file was left as it was)"
            ) from e

    def write(self, step: int, metrics: Mapping[str, object]) -> None:
        if not self.active:
            return
        event = {"step": int(step), **{k: _to_python(v) for k, v in sorted(metrics.items())}}
        line = (json.dumps(event) + "\n").encode()
        _append(self.path, line, f"appending the metrics of step {step} to")
        if self._tb is not None:
            scalars = {
                k: float(v)
                for k, v in event.items()
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            try:
                self._tb.write(step, scalars)
            except OSError as e:
                self._tb_failed(e)

    def close(self) -> None:
        if self._tb is not None:
            tb, self._tb = self._tb, None
            try:
                tb.close()
            except OSError as e:
                self._tb_failed(e)

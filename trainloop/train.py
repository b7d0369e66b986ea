"""`train_and_evaluate`: the one training loop every task of the suite runs through.

The loop owns the mesh, sharded initialisation, the jitted step (donated state, optional gradient
accumulation), evaluation, metrics, checkpoints, resumption and clean interruption. Per-step randomness
is `fold_in(key, step)`, and host batches are pure functions of the step, so a resumed run repeats an
uninterrupted one exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import shutil
import signal
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from trainloop import mesh as mesh_lib
from trainloop import signals
from trainloop import step as step_lib
from trainloop.checkpoint import Checkpoints, complete_steps, structure_signature
from trainloop.config_util import ConfigError
from trainloop.defaults import validate
from trainloop.errors import NonFiniteError
from trainloop.metrics import MetricsWriter
from trainloop.prefetch import Prefetcher
from trainloop.progress import Progress, announce
from trainloop.step import eval_accum_steps, is_log_step, make_eval_step
from trainloop.task import Task

NONFINITE_WHAT = {1: "train/loss", 2: "train/grad_norm"}


@dataclasses.dataclass
class TrainResult:
    step: int
    state: dict  # {"step", "params", "opt_state", ...} on device
    interrupted: bool = False
    signal: int | None = None
    last_train_metrics: dict | None = None
    last_eval_metrics: dict | None = None


def _check_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, f"{e.strerror} in the workdir {workdir!r}") from None
        raise ConfigError(
            f"Workdir {workdir!r} is not writable ({e.strerror}). Pass a --workdir you can write to."
        ) from None


def _write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    """Writes config.json; an existing different one is kept as config.<n>.json, never overwritten.

    The new file is written under a temporary name and renamed into place, so config.json is
    always a complete file (a full disk or a kill leaves the old one)."""
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, "config.json")
    text = config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        if os.path.exists(path):
            n = 1
            while os.path.exists(os.path.join(workdir, f"config.{n}.json")):
                n += 1
            shutil.copyfile(path, os.path.join(workdir, f"config.{n}.json"))
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(e.errno, f"{e.strerror} while writing {path}") from e


def _place_global(batch, mesh):
    """Places a global batch (numpy on every process, or jax arrays) onto the batch sharding."""
    sharding = mesh_lib.batch_sharding(mesh)

    def one(x):
        if isinstance(x, jax.Array):
            return jax.device_put(x, sharding)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(one, batch)


class _StopFlag:
    """Records SIGTERM/SIGINT so the loop can stop at a step boundary and save."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signum = signum
        logging.warning("Received signal %d: stopping after this step and saving.", signum)

    def __exit__(self, *exc):
        for s, h in self._previous.items():
            signal.signal(s, h)

    def should_stop(self, sync: bool = True) -> bool:
        """Whether to stop now. Across processes every one must agree, which needs a blocking
        all-gather; the loop asks for it (`sync`) on log and checkpoint steps only, and on other
        steps a multi-process run carries on until the next one."""
        flag = self.signum is not None
        if jax.process_count() > 1:
            if not sync:
                return False
            from jax.experimental import multihost_utils

            flag = bool(np.any(multihost_utils.process_allgather(np.int32(flag))))
        return flag


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, task: Task, *, devices=None
) -> TrainResult:
    """Trains `task` as configured, writing config.json, metrics and checkpoints into `workdir`.

    Bad config values raise ConfigError before anything is touched (`trainloop.defaults.validate`).
    Inside the loop SIGTERM/SIGINT stop at a step boundary with a checkpoint saved; outside it, in a
    script that installed `trainloop.signals`, they stop at once naming the newest checkpoint.
    """
    validate(config)
    with signals.noting(_stop_note(os.path.join(workdir, "checkpoints"))):
        return _train_and_evaluate(config, workdir, task, devices)


def _stop_note(directory: str):
    """What a signal outside the loop leaves on disk (read when the signal arrives)."""

    def note() -> str:
        steps = complete_steps(directory)
        if not steps:
            return "before the first checkpoint; no checkpoint was written (rerun to start)."
        return (
            f"outside a training step; the newest complete checkpoint is step {steps[-1]} in "
            f"{directory} (rerun the same command to resume from it)."
        )

    return note


def _train_and_evaluate(config, workdir, task, devices) -> TrainResult:
    if task.global_batch_size != config.batch_size:
        raise ConfigError(
            f"Task batch size {task.global_batch_size} differs from batch_size={config.batch_size}."
        )
    programs = step_lib.build_programs(config, task, devices)
    mesh, abstract_state = programs.mesh, programs.abstract_state
    _check_workdir(workdir)
    num_steps = int(config.num_steps)

    ckpts = Checkpoints(workdir, config.checkpoint_every, config.keep_checkpoints)
    writer = None
    try:
        restored = ckpts.restore_latest(abstract_state)  # the newest intact checkpoint
        if restored is not None:
            latest, state, _ = restored
            announce(f"Resuming from {ckpts.directory} at step {latest}.")
        else:
            state = programs.initial_state()
        _write_config(workdir, config)
        writer = MetricsWriter(workdir)
        start = int(jax.device_get(state["step"]))
        writer.truncate_after(start)
        meta = {"structure": structure_signature(abstract_state), "task": task.name}

        eval_step = jax.jit(make_eval_step(task, programs.eval_key, eval_accum_steps(config)))
        result = _run(
            config, task, mesh, state, start, num_steps, programs.train_step, eval_step, ckpts,
            writer, meta,
        )  # fmt: skip
    except BaseException as error:
        _close_after_error(error, ckpts, writer)
        raise
    try:
        ckpts.close()  # raises if the final save failed (e.g. a full disk)
    finally:
        writer.close()
    return result


def _close_after_error(error: BaseException, ckpts, writer) -> None:
    """Closes the sinks without letting their own errors (e.g. the same full disk) hide `error`."""
    for close in [ckpts.close] + ([writer.close] if writer is not None else []):
        try:
            close()
        except Exception as e:
            same = isinstance(error, OSError) and getattr(e, "errno", None) == error.errno
            log = logging.info if same else logging.warning
            log("While stopping after %s: %s", type(error).__name__, e)


def _check_finite(state, ckpts) -> None:
    """Raises NonFiniteError if a step produced a NaN/Inf loss or gradient.

    The step is numbered as in metrics.jsonl (the update that produced state step s + 1 is step
    s + 1). Checkpoints are only saved after this check passes, so the newest one predates it."""
    step, what = (int(v) for v in jax.device_get(state["nonfinite"]))
    if step < 0:
        return
    ckpts.wait()  # the newest save must be complete before it is named
    saved = ckpts.latest_step()
    if saved is None:
        kept = "No checkpoint had been written before it, so there is nothing to resume from."
    else:
        kept = (
            f"The newest checkpoint, step {saved} in {ckpts.directory}, predates it and holds "
            "finite values; a rerun in this workdir resumes from it."
        )
    raise NonFiniteError(
        f"Non-finite {NONFINITE_WHAT[what]} at step {step + 1}; training stopped. {kept} Lower the "
        "learning rate or enable clipping (optimizer.clip_norm), then rerun."
    )


def _evaluate(task, eval_step, params, mesh, cache, accum: int = 1):
    if task.eval_batches is None:
        return {}
    if "batches" not in cache:
        n = mesh_lib.num_batch_shards(mesh)
        for b in task.eval_batches():
            rows = jax.tree_util.tree_leaves(b)[0].shape[0]
            if rows % (accum * n):
                raise ConfigError(
                    f"An eval batch of {rows} rows does not split into eval_accum_steps={accum} "
                    f"microbatches over {n} data-parallel devices; set eval_accum_steps so that "
                    f"{rows} is a multiple of eval_accum_steps x {n}."
                )
        cache["batches"] = [_place_global(b, mesh) for b in task.eval_batches()]
    totals, weight_sum = {}, 0.0
    for batch in cache["batches"]:
        loss, aux = jax.device_get(eval_step(params, batch))
        aux = {k: float(v) for k, v in aux.items()}
        w = aux.get("weight", 1.0)
        weight_sum += w
        for k, v in {"loss": float(loss), **aux}.items():
            if k != "weight":
                totals[k] = totals.get(k, 0.0) + w * v
    means = {k: v / max(weight_sum, 1e-12) for k, v in totals.items()}
    if task.eval_summary is not None:
        means |= task.eval_summary(dict(means))
    return {f"eval/{k}": v for k, v in means.items()}


_MAX_INFLIGHT = 2


def _run(config, task, mesh, state, start, num_steps, train_step, eval_step, ckpts, writer, meta):
    """The step loop. Nothing in it waits for the device except on log, eval and checkpoint steps:
    host batches are prefetched, and a log step's metrics are read after the next step has been
    dispatched (one step late, as in nanodo), so the device never idles while the host logs."""
    result = TrainResult(step=start, state=state)
    eval_cache: dict = {}
    eval_accum = eval_accum_steps(config)
    progress = Progress(num_steps, start, enabled=config.progress_bar)
    if start >= num_steps:
        announce(f"Already at step {start} >= num_steps={num_steps}; nothing to train.")
    log = _TrainLog(config, writer, progress, ckpts, result, start)
    evaluate = lambda params: _evaluate(task, eval_step, params, mesh, eval_cache, eval_accum)
    # A scalar of each recent step: waiting for the one _MAX_INFLIGHT steps back bounds how far
    # dispatch runs ahead of the device (and so the batches queued in device memory) without
    # ever waiting for the step just dispatched.
    inflight = collections.deque()
    make_batch = _batch_maker(task, mesh, config)
    depth = int(config.get("prefetch_batches", 2)) if task.host_batch is not None else 0
    try:
        with _StopFlag() as stop, Prefetcher(make_batch, num_steps, depth) as prefetcher:
            step = start
            while step < num_steps:
                batch = prefetcher.get(step) if task.host_batch is not None else None
                state, metrics = train_step(state, batch)
                log.flush()  # the previous log step's metrics (this step is queued behind it)
                inflight.append(metrics["train/loss"])
                if len(inflight) > _MAX_INFLIGHT:
                    inflight.popleft().block_until_ready()
                step += 1
                progress.update(step)
                if _after_step(config, step, state, metrics, log, evaluate, stop, ckpts, meta):
                    result.interrupted, result.signal = True, stop.signum
                    announce(f"Stopped by signal {stop.signum} at step {step}; checkpoint saved.")
                    break
            log.flush()
    finally:  # an error (e.g. NonFiniteError) ends the bar before its message
        progress.close()
    ckpts.wait()
    result.step, result.state = step, state
    return result


def _batch_maker(task, mesh, config):
    """`step -> global batch` from the task's host batches of this process."""

    def make_batch(step):
        local = task.host_batch(step, jax.process_index(), jax.process_count())
        return mesh_lib.global_batch(local, mesh, config.batch_size)

    return make_batch


def _after_step(config, step, state, metrics, log, evaluate, stop, ckpts, meta) -> bool:
    """The host's work after train step `step`: queues a log step's metrics, evaluates on eval
    steps, saves on checkpoint steps, the last step and after a stop signal; returns whether a
    signal stops the run here (every process agrees)."""
    num_steps = int(config.num_steps)
    is_last = step == num_steps
    log_step = bool(is_log_step(step, config.log_every, num_steps))
    if log_step:
        log.hold(step, metrics)
    evaluate_now = (config.eval_every and step % config.eval_every == 0) or is_last
    periodic = config.checkpoint_every and step % config.checkpoint_every == 0
    if evaluate_now or periodic or is_last:
        log.flush()
    if evaluate_now:
        log.write_eval(step, evaluate(state["params"]))
    interrupted = stop.should_stop(sync=log_step or bool(periodic) or is_last)
    if periodic or is_last or interrupted:
        log.flush()
        _check_finite(state, ckpts)
        ckpts.save(step, state, meta, force=True)
    return interrupted


class _TrainLog:
    """Writes train metrics of log steps, read one step late (`hold`, then `flush` once the next
    step is dispatched), with throughput since the previous log step; and eval metrics. Both go to
    metrics.jsonl, the progress bar and the TrainResult."""

    def __init__(self, config, writer, progress, ckpts, result: TrainResult, start: int):
        self.batch_size = config.batch_size
        self.writer, self.progress, self.ckpts, self.result = writer, progress, ckpts, result
        self.window = {"start": time.perf_counter(), "first": start}
        self.pending = []  # at most one (step, metrics on device) of a log step not yet read

    def hold(self, step: int, metrics) -> None:
        self.pending.append((step, metrics))

    def flush(self) -> None:
        if not self.pending:
            return
        logged_step, metrics = self.pending.pop()
        metrics = jax.device_get(metrics)
        # The step's `nonfinite` record rides along with its metrics.
        _check_finite(metrics, self.ckpts)
        metrics = {k: float(v) for k, v in metrics.items() if k != "nonfinite"}
        now, window = time.perf_counter(), self.window
        steps_per_sec = (logged_step - window["first"]) / max(now - window["start"], 1e-9)
        window.update(start=now, first=logged_step)
        metrics["train/steps_per_sec"] = steps_per_sec
        examples = metrics.get("train/batch_size", self.batch_size)  # ramped, or fixed
        metrics["train/examples_per_sec"] = steps_per_sec * examples
        if "train/num_tokens" in metrics:
            metrics["train/tokens_per_sec"] = steps_per_sec * metrics["train/num_tokens"]
        self.writer.write(logged_step, metrics)
        self.progress.show(metrics)
        self.result.last_train_metrics = metrics

    def write_eval(self, step: int, eval_metrics: dict) -> None:
        if eval_metrics:
            self.writer.write(step, eval_metrics)
            self.progress.show(eval_metrics)
            self.result.last_eval_metrics = eval_metrics

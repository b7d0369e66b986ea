"""One training run of a figure, and the store that trains each run at most once.

A `RunSpec` is everything that defines a run: model kind and size, the block preset with any model
overrides (an `Arm`), the peak learning rate, the seed (model init and data order), the step budget
and the evaluation cadence. Its directory name is readable and ends in a hash of the resolved
training config, so a run is reused exactly when its config is unchanged.

`RunStore.ensure(spec)` returns the run's `result.json`, training it first if needed through the
shared loop (`trainloop.train.train_and_evaluate`): a run with a result is never retrained, and a
run killed half-way resumes from its last checkpoint (bitwise, since batches and per-step randomness
are functions of the step). A run whose loss or gradient turns NaN/Inf is recorded as diverged
(final loss +inf) rather than stopping the sweep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable

import ml_collections

from simplified_tf.recipes import peak_lr, pretrain_config
from trainloop.metrics import read_metrics

RESULT_FILE = "result.json"


@dataclasses.dataclass(frozen=True)
class Arm:
    """One configuration a figure compares: a block preset, optionally with model overrides.

    `model` holds (key, value) pairs applied on top of the preset (see `model_config`) and
    `optimizer` pairs applied to the recipe's `config.optimizer` (e.g. ("b2", 0.95)); `lr` is the
    centre of the tuning grid (0 = the recipe's peak LR for the block).
    """

    name: str
    block: str
    kind: str = "decoder"
    size: str = "quick"
    model: tuple[tuple[str, object], ...] = ()
    lr: float = 0.0
    optimizer: tuple[tuple[str, object], ...] = ()

    @property
    def default_lr(self) -> float:
        return self.lr or peak_lr(self.kind, self.block, self.size)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    arm: Arm
    lr: float
    seed: int
    steps: int
    eval_every: int
    data: tuple[tuple[str, object], ...] = ()  # config.data overrides, e.g. (("eval_batches", 16),)

    def config(self) -> ml_collections.ConfigDict:
        arm = self.arm
        c = pretrain_config(
            arm.kind, arm.block, arm.size, steps=self.steps, lr=self.lr, seed=self.seed,
            model=dict(arm.model),
        )  # fmt: skip
        c.eval_every = self.eval_every
        c.log_every = self.eval_every
        c.checkpoint_every = max(self.eval_every, self.steps // 4)
        c.keep_checkpoints = 1
        c.progress_bar = False
        c.log_scalar_traces = True
        for key, value in self.data:
            c.data[key] = value
        for key, value in arm.optimizer:
            c.optimizer[key] = value
        return c

    @property
    def run_id(self) -> str:
        text = self.config().to_json_best_effort(sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        name = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in self.arm.name)
        return (
            f"{self.arm.kind}-{self.arm.size}-{name}-lr{self.lr:.3g}-s{self.seed}-n{self.steps}"
            f"-{digest}"
        )


def write_atomic(path: str, text: str) -> None:
    """Writes `text` under a temporary name and renames it into place: a reader (or a rerun after a
    kill) sees the old file or the new one, never a torn one. Result, timing, summary files use it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_json(path: str, obj: dict) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def eval_series(workdir: str) -> dict[str, list]:
    """Every eval event of a run: step, loss, accuracy and the scalar-gain traces (by name)."""
    out: dict[str, list] = {"step": [], "loss": [], "accuracy": []}
    traces: dict[str, list] = {}
    for event in read_metrics(os.path.join(workdir, "metrics.jsonl")):
        if "eval/loss" not in event:
            continue
        out["step"].append(int(event["step"]))
        out["loss"].append(float(event["eval/loss"]))
        out["accuracy"].append(float(event.get("eval/accuracy", math.nan)))
        for key, value in event.items():
            if key.startswith("eval/scalars/"):
                traces.setdefault(key.removeprefix("eval/scalars/"), []).append(float(value))
    out["scalars"] = traces
    return out


class RunStore:
    """Runs under `root/<run_id>/`; `ensure` trains a run only if it has no result yet."""

    def __init__(self, root: str, log: Callable[[str], None] | None = None):
        self.root = root
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.trained: list[str] = []  # run ids trained (or resumed) by this store, in order
        self.touched: list[str] = []  # every run id asked for, in order

    def workdir(self, spec: RunSpec) -> str:
        return os.path.join(self.root, spec.run_id)

    def result(self, spec: RunSpec) -> dict | None:
        return self.result_of(spec.run_id)

    def result_of(self, run_id: str) -> dict | None:
        """The result.json of run `run_id`, or None if it has none (not finished yet)."""
        path = os.path.join(self.root, run_id, RESULT_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def train_seconds(self, run_id: str) -> float | None:
        """Seconds the run's training took (None if it has no result or did not record them)."""
        result = self.result_of(run_id)
        seconds = None if result is None else result.get("train_seconds")
        return None if seconds is None else float(seconds)

    def ensure(self, spec: RunSpec) -> dict:
        if spec.run_id not in self.touched:
            self.touched.append(spec.run_id)
        done = self.result(spec)
        if done is not None:
            return done
        return self._train(spec)

    def _train(self, spec: RunSpec) -> dict:
        import jax

        from simplified_tf.tasks import make_task_and_data
        from trainloop.cli import exit_if_interrupted
        from trainloop.train import NonFiniteError, train_and_evaluate

        workdir = self.workdir(spec)
        config = spec.config()
        self.log(f"[run] {spec.run_id}: {spec.steps} steps at lr {spec.lr:.3g}, seed {spec.seed}")
        task = make_task_and_data(config, spec.arm.kind)[0]
        start = time.perf_counter()
        status, message = "finished", ""
        try:
            trained = train_and_evaluate(config, workdir, task)
        except NonFiniteError as e:
            status, message = "diverged", str(e)
            self.log(f"[run] {spec.run_id} diverged: {e}")
        else:  # stopped by a signal: no result is recorded, a rerun resumes from the checkpoint
            exit_if_interrupted(trained, workdir, "Rerun the same command to continue the sweep.")
        seconds = time.perf_counter() - start
        jax.clear_caches()  # every run compiles its own step; keep memory flat over a sweep
        series = eval_series(workdir)
        final = series["loss"][-1] if series["loss"] and status == "finished" else math.inf
        result = dict(
            run_id=spec.run_id,
            arm=spec.arm.name,
            block=spec.arm.block,
            kind=spec.arm.kind,
            size=spec.arm.size,
            lr=spec.lr,
            seed=spec.seed,
            steps=spec.steps,
            status=status,
            message=message,
            final_loss=final if math.isfinite(final) else "inf",
            final_accuracy=series["accuracy"][-1] if series["accuracy"] else math.nan,
            tokens_per_step=int(config.batch_size) * int(config.data.seq_len),
            train_seconds=seconds,
            curve={k: series[k] for k in ("step", "loss", "accuracy")},
            scalars=series["scalars"],
        )
        _write_json(os.path.join(workdir, RESULT_FILE), _jsonable(result))
        self.trained.append(spec.run_id)
        return self.result(spec)


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def final_loss(result: dict) -> float:
    """The run's final eval loss as a float (+inf for a diverged run)."""
    return float(result["final_loss"])

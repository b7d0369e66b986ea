"""Training runs shared by the figures of one invocation: memoised sweeps, bracketed learning
rates, memoised gradient-noise measurements, and `Runs`, one optimiser's per-seed arrays."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from linear_tf import data, model, phenomena, sweep
from linear_tf.figures import tuning
from linear_tf.figures.protocol import Protocol
from linear_tf.hparams import default_clip, default_lr

DENSE_SETTINGS = ("1", "2", "3")


def specs(setting: str, layers: int = 3, attention: str = "linear", d: int = 5, n=None):
    """(ModelSpec, DataSpec) of the paper's sparse model for a setting (nonlinear: full + ψ)."""
    dspec = data.make_data_spec(setting, d=d, n=n)
    if setting == "nonlinear":
        mspec = model.ModelSpec(
            d=d, n=dspec.n, layers=layers, parameterization="full", init_std=0.1, embed=True
        )
    else:
        mspec = model.ModelSpec(d=d, n=dspec.n, layers=layers, attention=attention)
    return mspec, dspec


def reference_lrs(setting: str, optimizers=("sgdm", "adam")) -> dict:
    return {o: [default_lr(setting, o)] for o in optimizers}


@dataclasses.dataclass
class Runs:
    """One optimiser's runs at one learning rate; leading axis = seeds on every array."""

    optimizer: str
    lr: float
    seeds: tuple
    eval_steps: np.ndarray
    eval_loss: np.ndarray  # (S, n_eval) fixed-batch loss
    train_loss: np.ndarray  # (S, steps) minibatch loss
    grad_norm: np.ndarray  # (S, steps) unclipped minibatch gradient norm
    snap_steps: np.ndarray
    snap_params: dict  # leaves (S, n_snap, ...)
    snap_delta: dict  # leaves (S, n_snap, ...)
    dense_params: dict | None  # leaves (S, steps, ...)
    grid: tuning.GridRecord | None = None

    @classmethod
    def of(cls, result: sweep.SweepResult, optimizer: str, index: int = 0, grid=None) -> Runs:
        sel = result.groups[optimizer].at_lr(index)
        return cls(
            optimizer=optimizer,
            lr=sel["lr"],
            seeds=tuple(int(s) for s in result.groups[optimizer].seeds),
            eval_steps=result.eval_steps,
            eval_loss=sel["eval_loss"],
            train_loss=sel["train_loss"],
            grad_norm=sel["grad_norm"],
            snap_steps=result.snap_steps,
            snap_params=sel["snap_params"],
            snap_delta=sel["snap_delta"],
            dense_params=sel["dense_params"],
            grid=grid,
        )

    def seed_params(self, i: int, steps: int | None = None) -> dict:
        """θ_0 .. θ_{steps−1} of seed index i (needs a dense sweep)."""
        return jax.tree_util.tree_map(lambda a: a[i, :steps], self.dense_params)


@dataclasses.dataclass
class Context:
    """What a figure function needs: the protocol, the output directory and the shared caches."""

    protocol: Protocol
    out: str
    log: Callable[[str], None] = print
    sweeps: dict = dataclasses.field(default_factory=dict)
    noises: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)  # derived measurements, by name

    def memo(self, key, compute: Callable):
        """`compute()` once per key (metrics that several figures plot, e.g. R_med of a setting)."""
        if key not in self.metrics:
            self.metrics[key] = compute()
        return self.metrics[key]

    def specs(self, setting: str, layers: int = 3, attention: str = "linear", d: int = 5, n=None):
        """The (ModelSpec, DataSpec) every figure uses (tests override it with smaller models)."""
        return specs(setting, layers, attention, d, n)

    def sweep(
        self,
        setting: str,
        steps: int,
        seeds,
        lrs: dict,
        *,
        layers: int = 3,
        attention: str = "linear",
        d: int = 5,
        n=None,
        batch: int | None = None,
        dense: bool = False,
    ) -> sweep.SweepResult:
        """Memoised `sweep.run_sweep` (figures of one invocation share identical sweeps)."""
        batch = batch or (2000 if setting == "nonlinear" else 1000)
        lrs = {k: tuple(float(x) for x in v) for k, v in lrs.items()}
        key = (setting, steps, tuple(seeds), tuple(lrs.items()), layers, attention, d, n, batch)
        key_dense = key + (True,)
        if key_dense in self.sweeps:
            return self.sweeps[key_dense]
        key = key + (dense,)
        if key not in self.sweeps:
            mspec, dspec = self.specs(setting, layers, attention, d, n)
            cfg = sweep.SweepConfig(
                steps=steps, batch=batch, clip=default_clip(setting), dense=dense
            )
            self.log(
                f"sweep: {setting}, L={layers}, {attention}, d={d}, lrs {dict(lrs)}, "
                f"seeds {list(seeds)}, {steps} steps, B={batch}"
            )
            self.sweeps[key] = sweep.run_sweep(
                mspec, dspec, lrs, seeds, cfg, data.eval_batch(dspec, batch), log=self.log
            )
        return self.sweeps[key]

    def main_runs(self, setting: str) -> dict[str, Runs]:
        """The reference-lr runs of a setting: the one sweep behind D1, D3, D4, (L0, L1) and
        Fig. 7. Settings 1-3 keep every step's parameters (per-step DS, (L0, L1) scatter)."""
        p = self.protocol
        dense = setting in DENSE_SETTINGS
        res = self.sweep(setting, p.main_steps, p.main_seeds, reference_lrs(setting), dense=dense)
        return {k: Runs.of(res, k) for k in res.groups}

    def tune(self, setting: str, grid, seeds, steps: int, optimizers, **kw) -> dict[str, Runs]:
        """Runs at the best learning rate of a grid widened until the best point is interior."""
        records = {o: tuning.GridRecord() for o in optimizers}
        pending = {o: sorted(float(x) for x in grid) for o in optimizers}
        tail = min(100, steps)
        for round_ in range(self.protocol.max_widen + 1):
            todo = {o: v for o, v in pending.items() if v}
            if not todo:
                break
            res = self.sweep(setting, steps, seeds, todo, **kw)
            for o in todo:
                scores = res.groups[o].final_train_loss(tail).mean(-1)
                records[o].add(res.groups[o].lrs, scores, res)
                records[o].widenings += int(round_ > 0)
            pending = {
                o: tuning.widen(*records[o].sorted()[:2])
                if round_ < self.protocol.max_widen
                else []
                for o in optimizers
            }
        out = {}
        for o, rec in records.items():
            lr, (res, i) = rec.best()
            out[o] = Runs.of(res, o, i, grid=rec)
            state = "interior" if rec.interior() else "ON THE EDGE"
            grid = ", ".join(f"{x:.3g}: {sc:.3g}" for x, sc in rec.table())
            self.log(f"  best lr {o}: {lr:.3g} ({state}; lr: score {grid})")
        return out

    def noise(self, setting: str, layers: int = 3, d: int = 5, n=None, **kw) -> dict:
        """Memoised gradient noise at initialisation (seed 1 unless given) with its summary."""
        p = self.protocol
        kw = {"seed": 1, "num_samples": p.noise_samples, "full_batches": p.noise_full_batches, **kw}
        key = (setting, layers, d, n, tuple(sorted(kw.items())))
        if key not in self.noises:
            t0 = time.time()
            mspec, dspec = self.specs(setting, layers, d=d, n=n)
            r = phenomena.gradient_noise(mspec, dspec, **kw)
            r["summary"] = phenomena.noise_summary(r)
            r["seconds"] = time.time() - t0
            self.log(f"  noise {setting}, L={layers}: {r['summary']}")
            self.noises[key] = r
        return self.noises[key]

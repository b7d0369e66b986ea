"""Many training runs (optimisers x learning rates x seeds) in one compiled program.

Runs of one optimiser are a (n_lr, n_seed) grid: `jax.vmap` over seeds (each with its own init and
prompt stream) nested in `jax.vmap` over learning rates (sharing the seed's prompts, so the batch is
generated once per seed and step). All optimisers advance together inside the same `lax.scan`, so a
whole setting is one program; steps run in chunks of `snapshot_stride` (a jitted call each), between
which progress is printed and outputs move to the host, keeping memory bounded.

Learning rate: the optax transformation comes from `trainloop.optim.make_optimizer` built with lr = 1
(constant schedule), and each run multiplies its update by its own lr. For Adam, SGD and SGD with
momentum (no weight decay, constant lr) the update is exactly linear in lr, so this equals building
the transformation with that lr (up to float rounding; tested against single runs).

Recording (entry t = parameters after t updates, i.e. before update t+1):
  eval loss on the fixed batch every `eval_stride` steps and at the end; per-step minibatch training
  loss and unclipped gradient norm; parameters θ_t and the actual update θ_{t+1} − θ_t every
  `snapshot_stride` steps; with `dense=True`, θ_t at every step (for the (L0, L1) scatter).
SGDM and Adam share the initialisation and the prompt stream for a given seed.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from linear_tf import data, model
from linear_tf.hparams import optimizer_config
from trainloop.optim import global_norm, make_optimizer


def keys_for_seed(seed: int) -> tuple[jax.Array, jax.Array]:
    """(init key, data key) of a run; the prompt for step t comes from fold_in(data key, t)."""
    k = jax.random.key(int(seed))
    return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    steps: int
    batch: int = 1000
    clip: float = 1.0
    eval_stride: int = 50
    snapshot_stride: int = 250
    dense: bool = False
    final_tail: int = 100  # steps averaged for the "final training loss" that picks the best lr

    def __post_init__(self):
        if self.snapshot_stride % self.eval_stride:
            raise ValueError("snapshot_stride must be a multiple of eval_stride.")
        if self.steps % self.eval_stride:
            raise ValueError("steps must be a multiple of eval_stride.")


@dataclasses.dataclass
class GroupResult:
    """One optimiser's runs. Leading axes (n_lr, n_seed) on every array."""

    optimizer: str
    lrs: np.ndarray
    seeds: np.ndarray
    eval_loss: np.ndarray  # (n_lr, n_seed, n_eval)
    train_loss: np.ndarray  # (n_lr, n_seed, steps)
    grad_norm: np.ndarray  # (n_lr, n_seed, steps), unclipped minibatch gradient
    snap_params: dict  # leaves (n_lr, n_seed, n_snap, ...): θ_t at snap_steps
    snap_delta: dict  # leaves (n_lr, n_seed, n_snap, ...): θ_{t+1} − θ_t
    final_params: dict  # leaves (n_lr, n_seed, ...)
    dense_params: dict | None  # leaves (n_lr, n_seed, steps, ...) when dense

    def final_train_loss(self, tail: int) -> np.ndarray:
        """(n_lr, n_seed) mean minibatch loss over the last `tail` steps (NaN -> inf)."""
        v = self.train_loss[..., -tail:].mean(-1)
        return np.where(np.isfinite(v), v, np.inf)

    def best_lr_index(self, tail: int) -> int:
        """Learning rate with the lowest seed-averaged final training loss."""
        return int(np.argmin(self.final_train_loss(tail).mean(-1)))

    def at_lr(self, i: int) -> dict:
        """Per-seed arrays of learning rate index i."""
        take = lambda t: None if t is None else jax.tree_util.tree_map(lambda a: a[i], t)
        return {
            "lr": float(self.lrs[i]),
            "eval_loss": self.eval_loss[i],
            "train_loss": self.train_loss[i],
            "grad_norm": self.grad_norm[i],
            "snap_params": take(self.snap_params),
            "snap_delta": take(self.snap_delta),
            "final_params": take(self.final_params),
            "dense_params": take(self.dense_params),
        }


@dataclasses.dataclass
class SweepResult:
    groups: dict[str, GroupResult]
    eval_steps: np.ndarray
    snap_steps: np.ndarray
    config: SweepConfig
    seconds: float

    def best(self, optimizer: str) -> dict:
        g = self.groups[optimizer]
        return g.at_lr(g.best_lr_index(min(self.config.final_tail, self.config.steps)))


def _stack_host(chunks: list, axis: int):
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=axis), *chunks)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything static about a chunk program (hashable): equal plans share one compiled program,
    across `run_sweep` calls and figures of one process. Learning rates, seeds (their keys), the
    starting step and the evaluation batch are runtime arguments, so they never trigger a compile."""

    mspec: model.ModelSpec
    dspec: data.DataSpec
    names: tuple[str, ...]
    sizes: tuple[int, ...]  # number of learning rates per optimiser
    clip: float
    batch: int
    eval_stride: int
    n_blocks: int
    dense: bool

    def txs(self):
        return {k: make_optimizer(optimizer_config(k, 1.0, self.clip), 1)[0] for k in self.names}


def _joined(plan: _Plan, trees):
    """Concatenates the (n_lr, n_seed) grids of all optimisers along the lr axis."""
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *trees)


def _split(plan: _Plan, tree):
    offsets = np.cumsum([0, *plan.sizes])
    return {
        k: jax.tree_util.tree_map(lambda a, i=i: a[offsets[i] : offsets[i + 1]], tree)
        for i, k in enumerate(plan.names)
    }


def _eval_all(plan: _Plan, state, ev_batch):
    """Fixed-batch loss of every run; one forward pass for all optimisers."""
    loss_fn = lambda p, b: model.mse_loss(plan.mspec, p, b)
    losses = jax.vmap(jax.vmap(loss_fn, (0, None)), (0, None))(
        _joined(plan, [state[k][0] for k in plan.names]), ev_batch
    )
    return _split(plan, losses)


@functools.cache
def _init_program(plan: _Plan):
    """init keys (n_seed,) -> state {name: (params, opt state, last update)} with (n_lr, n_seed) grids."""
    txs = plan.txs()

    def init(init_keys):
        params_S = jax.vmap(lambda k: model.init_params(plan.mspec, k))(init_keys)
        state = {}
        for k, n_lr in zip(plan.names, plan.sizes, strict=True):
            p = jax.tree_util.tree_map(lambda a, n_lr=n_lr: jnp.stack([a] * n_lr), params_S)
            opt = jax.vmap(jax.vmap(txs[k].init))(p)
            state[k] = (p, opt, jax.tree_util.tree_map(jnp.zeros_like, p))
        return state

    return jax.jit(init)


@functools.cache
def _chunk_program(plan: _Plan):
    """The compiled program for `plan.n_blocks` x `plan.eval_stride` steps of every run."""
    mspec, dspec, names = plan.mspec, plan.dspec, plan.names
    txs = plan.txs()
    loss_fn = lambda p, b: model.mse_loss(mspec, p, b)
    # One gradient program for the runs of every optimiser (halves the compiled graph).
    value_and_grad_all = jax.vmap(jax.vmap(jax.value_and_grad(loss_fn), (0, 0)), (0, None))

    def apply_update(tx):
        def update(params, opt_state, grads, lr):
            updates, opt_state = tx.update(grads, opt_state, params)
            new = jax.tree_util.tree_map(lambda p, u: p + lr * u, params, updates)
            return new, opt_state, global_norm(grads)

        return jax.vmap(jax.vmap(update, (0, 0, 0, None)), (0, 0, 0, 0))

    updaters = {k: apply_update(txs[k]) for k in names}
    if model.uses_stats(mspec):  # statistics straight from the draws (no token matrix)
        draw = lambda kk: data.sample_stats(dspec, kk, plan.batch)
    else:
        draw = lambda kk: model.prepare_batch(mspec, data.sample(dspec, kk, plan.batch))

    def chunk(state, t0, lr_d, ev_batch, data_keys_S):
        snap = {k: state[k][0] for k in names}

        def block(state, b):
            ev = _eval_all(plan, state, ev_batch)

            def step(state, t):
                keys_S = jax.vmap(jax.random.fold_in, (0, None))(data_keys_S, t)
                # Prompts (statistics) once per seed, shared by every run that sees these prompts.
                batch_S = jax.vmap(draw)(keys_S)
                loss_all, grads_all = value_and_grad_all(
                    _joined(plan, [state[k][0] for k in names]), batch_S
                )
                losses, grads = _split(plan, loss_all), _split(plan, grads_all)
                new_state, outs = {}, {}
                for k in names:
                    p, o, delta = state[k]
                    p2, o2, gn = updaters[k](p, o, grads[k], lr_d[k])
                    delta = jax.tree_util.tree_map(
                        lambda a, b_, dl: jnp.where(t == t0, b_ - a, dl), p, p2, delta
                    )
                    new_state[k] = (p2, o2, delta)
                    outs[k] = (losses[k], gn, p if plan.dense else None)
                return new_state, outs

            ts = t0 + b * plan.eval_stride + jnp.arange(plan.eval_stride)
            state, outs = jax.lax.scan(step, state, ts)
            return state, (ev, outs)

        state, (ev, outs) = jax.lax.scan(block, state, jnp.arange(plan.n_blocks))
        return state, snap, ev, outs, _eval_all(plan, state, ev_batch)

    return jax.jit(chunk, donate_argnums=(0,))


_prepare = jax.jit(model.prepare_batch, static_argnums=0)


def _group(name, lrs, seeds, chunks: dict, ev_last, final_params, dense: bool) -> GroupResult:
    """One optimiser's GroupResult from the per-chunk host outputs of `run_sweep`."""
    # ev chunks: (n_blocks, n_lr, n_seed) -> (n_lr, n_seed, n_eval)
    ev = np.concatenate([c[name] for c in chunks["ev"]] + [ev_last[name][None]], axis=0)
    outs = [c[name] for c in chunks["out"]]
    loss = np.concatenate([o[0].reshape(-1, *o[0].shape[2:]) for o in outs])
    gn = np.concatenate([o[1].reshape(-1, *o[1].shape[2:]) for o in outs])
    dense_params = None
    if dense:
        per_step = lambda a: np.moveaxis(a.reshape(-1, *a.shape[2:]), 0, 2)
        dense_params = _stack_host([jax.tree_util.tree_map(per_step, o[2]) for o in outs], axis=2)
    to_snap = lambda trees: _stack_host(
        [jax.tree_util.tree_map(lambda a: a[:, :, None], t[name]) for t in trees], axis=2
    )
    return GroupResult(
        optimizer=name,
        lrs=np.asarray(lrs, np.float64),
        seeds=np.asarray(seeds),
        eval_loss=np.moveaxis(ev, 0, -1),
        train_loss=np.moveaxis(loss, 0, -1),
        grad_norm=np.moveaxis(gn, 0, -1),
        snap_params=to_snap(chunks["snap"]),
        snap_delta=to_snap(chunks["delta"]),
        final_params=final_params,
        dense_params=dense_params,
    )


def run_sweep(
    mspec: model.ModelSpec,
    dspec: data.DataSpec,
    optimizers: Mapping[str, Sequence[float]],
    seeds: Sequence[int],
    cfg: SweepConfig,
    eval_batch: dict | None = None,
    log: Callable[[str], None] | None = print,
) -> SweepResult:
    """Trains every (optimizer, lr, seed) combination; see the module docstring."""
    start = time.time()
    seeds = tuple(int(s) for s in seeds)
    names = tuple(optimizers)
    lrs = {k: jnp.asarray(np.asarray(optimizers[k], np.float32)) for k in names}
    if eval_batch is None:
        eval_batch = data.eval_batch(dspec, cfg.batch)
    eval_batch = _prepare(mspec, eval_batch)
    keys = [keys_for_seed(s) for s in seeds]
    init_keys = jnp.stack([k[0] for k in keys])
    data_keys_S = jnp.stack([k[1] for k in keys])
    sizes = tuple(len(optimizers[k]) for k in names)

    def plan(n_steps):
        n_blocks = n_steps // cfg.eval_stride
        static = (float(cfg.clip), int(cfg.batch), int(cfg.eval_stride), n_blocks, bool(cfg.dense))
        return _Plan(mspec, dspec, names, sizes, *static)

    state = _init_program(plan(0))(init_keys)
    ev_chunks, out_chunks, snap_chunks, delta_chunks, snap_steps = [], [], [], [], []
    t0 = 0
    while t0 < cfg.steps:
        n_steps = min(cfg.snapshot_stride, cfg.steps - t0)
        state, snap, ev, outs, ev_last = _chunk_program(plan(n_steps))(
            state, jnp.int32(t0), lrs, eval_batch, data_keys_S
        )
        snap_chunks.append(jax.device_get(snap))
        delta_chunks.append(jax.device_get({k: state[k][2] for k in names}))
        ev_chunks.append(jax.device_get(ev))
        out_chunks.append(jax.device_get(outs))
        snap_steps.append(t0)
        t0 += n_steps
        if log is not None:
            best = lambda v: np.min(v, initial=np.inf, where=np.isfinite(v))
            msg = ", ".join(f"{k} eval {best(np.asarray(ev[k][-1]).mean(-1)):.3g}" for k in names)
            log(f"  step {t0}/{cfg.steps} ({time.time() - start:.0f}s): best-lr {msg}")
    ev_last = jax.device_get(ev_last)

    chunks = {"ev": ev_chunks, "out": out_chunks, "snap": snap_chunks, "delta": delta_chunks}
    groups = {
        k: _group(k, optimizers[k], seeds, chunks, ev_last, jax.device_get(state[k][0]), cfg.dense)
        for k in names
    }
    eval_steps = np.arange(0, cfg.steps + 1, cfg.eval_stride)
    return SweepResult(groups, eval_steps, np.asarray(snap_steps), cfg, time.time() - start)

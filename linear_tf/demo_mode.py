"""The demonstration protocol of Ahn et al. (2023) on non-isotropic covariates (the authors'
"rotation demonstration-Adam" notebook in chengxiang/LinearTransformer):

  x = U D z with U from the seed and D = diag(1, 1, 1/2, 1/4, 1); w = U D⁻¹ v, so y = vᵀz;
  3 sparse layers, init std 1e-4; Adam β = (0.99, 0.9), ε = 1e-8, no weight decay;
  learning rate 0.1 halved every 4000 steps; each d×d block of the gradient clipped to norm 0.01
  separately; B = 20,000 prompts, redrawn every 100 steps; 100,000 steps, 3 seeds;
  parameters recorded every 100 steps; test loss on one fixed batch of B prompts.

All seeds run in one compiled program (vmap over seeds, each with its own U as a runtime array).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from linear_tf import data, model, theory
from linear_tf.sweep import keys_for_seed


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    steps: int = 100_000
    batch: int = 20_000
    redraw_every: int = 100
    lr: float = 0.1
    halve_every: int = 4000
    b1: float = 0.99
    b2: float = 0.9
    eps: float = 1e-8
    block_clip: float = 0.01
    init_std: float = 1e-4
    chunk: int = 1000  # steps per compiled call (progress is printed between calls)

    def __post_init__(self):
        if self.chunk % self.redraw_every or self.steps % self.chunk:
            raise ValueError(
                f"steps ({self.steps}) must be a multiple of chunk ({self.chunk}), and chunk of "
                f"redraw_every ({self.redraw_every})."
            )


def clip_blocks(bc_LH2DD: jax.Array, max_norm: float) -> jax.Array:
    """Scales every d×d block whose Frobenius norm exceeds max_norm down to max_norm."""
    norms = jnp.sqrt(jnp.sum(jnp.square(bc_LH2DD), axis=(-1, -2), keepdims=True))
    return bc_LH2DD * jnp.minimum(1.0, max_norm / jnp.maximum(norms, 1e-30))


def learning_rate(cfg: DemoConfig, t) -> jax.Array:
    return cfg.lr * 0.5 ** (t // cfg.halve_every)


def _stats(u, dvec, key, batch, n):
    with jax.threefry_partitionable(False):
        x_BTD, y_BT = data.nonisotropic_draw(u, dvec, key, batch, n)
    labels_TB = y_BT.T.at[-1].set(0.0)
    return {
        "y": y_BT[:, -1],
        "stats": model.stats_from_tokens(jnp.transpose(x_BTD, (2, 1, 0)), labels_TB),
    }


@functools.cache
def _chunk_program(mspec: model.ModelSpec, cfg: DemoConfig):
    """(params_S, opt_S, t0, u_S, dvec, data_keys_S) -> state after cfg.chunk steps, and θ every
    redraw_every steps (entry k = parameters before step t0 + k·redraw_every)."""
    tx = optax.adam(1.0, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    loss = lambda p, b: model.mse_loss(mspec, p, b)

    def one_run(params, opt, t0, u, dvec, key):
        def block(carry, b):
            params, opt = carry
            t_b = t0 + b * cfg.redraw_every
            batch = _stats(
                u, dvec, jax.random.fold_in(key, t_b // cfg.redraw_every), cfg.batch, mspec.n
            )

            def step(carry, t):
                params, opt = carry
                g = jax.grad(loss)(params, batch)
                g = {"attn": {"bc": clip_blocks(g["attn"]["bc"], cfg.block_clip)}}
                upd, opt = tx.update(g, opt, params)
                lr = learning_rate(cfg, t)
                params = jax.tree_util.tree_map(lambda p, u_: p + lr * u_, params, upd)
                return (params, opt), None

            start = params
            (params, opt), _ = jax.lax.scan(step, (params, opt), t_b + jnp.arange(cfg.redraw_every))
            return (params, opt), start

        (params, opt), record = jax.lax.scan(
            block, (params, opt), jnp.arange(cfg.chunk // cfg.redraw_every)
        )
        return params, opt, record

    return jax.jit(jax.vmap(one_run, (0, 0, None, 0, None, 0)), donate_argnums=(0, 1))


def run_demo(seeds, cfg: DemoConfig, log=print) -> dict:
    """Trains every seed; returns recorded parameters, U per seed, test losses and wall time."""
    start = time.time()
    mspec = model.ModelSpec(init_std=cfg.init_std)
    dvec = jnp.asarray(data.NONISO_D, jnp.float32)
    u_S = jnp.stack([jnp.asarray(data.nonisotropic_rotation(s)) for s in seeds])
    keys = [keys_for_seed(s) for s in seeds]
    params = jax.vmap(lambda k: model.init_params(mspec, k))(jnp.stack([k[0] for k in keys]))
    opt = jax.vmap(optax.adam(1.0, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps).init)(params)
    data_keys = jnp.stack([k[1] for k in keys])
    program = _chunk_program(mspec, cfg)
    records = []
    for t0 in range(0, cfg.steps, cfg.chunk):
        params, opt, rec = program(params, opt, jnp.int32(t0), u_S, dvec, data_keys)
        records.append(jax.device_get(rec["attn"]["bc"]))
        if log:
            log(f"  demo step {t0 + cfg.chunk}/{cfg.steps} ({time.time() - start:.0f}s)")
    bc_SR = np.concatenate(records, axis=1)  # (S, n_records, L, H, 2, d, d)
    steps = np.arange(bc_SR.shape[1]) * cfg.redraw_every
    test = test_losses(mspec, bc_SR, u_S, dvec, cfg.batch)
    dists = np.stack(
        [
            np.stack(
                [
                    theory.block_distances(bc, np.asarray(u_S[i]), np.asarray(dvec))
                    for bc in bc_SR[i]
                ]
            )
            for i in range(len(seeds))
        ]
    )  # (S, n_records, L, H, 2)
    return {
        "steps": steps,
        "bc": bc_SR,
        "test_loss": test,
        "distances": dists,
        "final_bc": jax.device_get(params["attn"]["bc"]),
        "seconds": time.time() - start,
    }


def test_losses(mspec, bc_SR, u_S, dvec, batch: int) -> np.ndarray:
    """(S, n_records) loss of every recorded θ on the seed's fixed test batch (key 99, as the
    authors seed their test batch with 99)."""

    @jax.jit
    def one_seed(bc_R, u):
        b = _stats(u, dvec, jax.random.key(data.EVAL_SEED), batch, mspec.n)
        return jax.lax.map(
            lambda bc: model.mse_loss(mspec, {"attn": {"bc": bc}}, b), bc_R, batch_size=10
        )

    return np.stack(
        [np.asarray(one_seed(jnp.asarray(bc_SR[i]), u_S[i])) for i in range(bc_SR.shape[0])]
    )

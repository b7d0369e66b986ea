"""The measurements behind each figure of Ahn et al. (2024), one function each (no plotting here).

All metrics use the fixed evaluation batch and are vectorised over samples/snapshots with
`jax.lax.map(..., batch_size=...)` (vmap in chunks), so memory stays bounded. The compiled metric
programs are cached per model spec (the batch and the parameters are runtime arguments), so figures
of one process that measure the same model share them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from linear_tf import data, model
from linear_tf.sweep import SweepResult, keys_for_seed


def _index(tree, *idx):
    return jax.tree_util.tree_map(lambda a: a[idx], tree)


def _flat_loss(mspec, template, batch):
    _, unravel = ravel_pytree(template)
    return lambda flat: model.mse_loss(mspec, unravel(flat), batch)


def _in_blocks(program, arrays, block: int, *static):
    """Runs `program(*rows, *static)` on fixed-size row blocks of `arrays` (zero-padded at the end), so
    one compiled program serves every number of rows (runs, snapshots, steps)."""
    n = arrays[0].shape[0]
    outs = []
    for i in range(0, n, block):
        rows = [a[i : i + block] for a in arrays]
        pad = block - rows[0].shape[0]
        if pad:
            rows = [jnp.concatenate([r, jnp.zeros((pad, *r.shape[1:]), r.dtype)]) for r in rows]
        outs.append(
            jax.tree_util.tree_map(
                lambda o, k=block - pad: np.asarray(o)[:k], program(*rows, *static)
            )
        )
    return jax.tree_util.tree_map(lambda *o: np.concatenate(o), *outs)


def _template(mspec):
    """Zero parameters of the ModelSpec's structure (for ravel/unravel inside cached programs)."""
    shapes = jax.eval_shape(lambda: model.init_params(mspec, jax.random.key(0)))
    return jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)


# --- (a) loss curves -------------------------------------------------------------------------
def mean_band(values_SX: np.ndarray, band_div: float) -> dict:
    """Mean over seeds and ± (unbiased std)/band_div (0 band for a single seed)."""
    v = np.asarray(values_SX, np.float64)
    std = v.std(0, ddof=1) if v.shape[0] > 1 else np.zeros(v.shape[1:])
    m = v.mean(0)
    return {"mean": m, "lo": m - std / band_div, "hi": m + std / band_div, "std": std}


def loss_curves(result: SweepResult) -> dict:
    """D1: fixed-batch loss every eval_stride steps, best lr per optimiser, mean ± std/4 over seeds."""
    out = {}
    for name in result.groups:
        best = result.best(name)
        curve = mean_band(best["eval_loss"], 4.0)
        out[name] = {
            "lr": best["lr"],
            "steps": result.eval_steps,
            **curve,
            "final_mean": float(curve["mean"][-1]),
            "final_std": float(curve["std"][-1]),
            "lr_grid": [float(x) for x in result.groups[name].lrs],
            "final_train_by_lr": result.groups[name]
            .final_train_loss(min(result.config.final_tail, result.config.steps))
            .mean(-1)
            .tolist(),
        }
    return out


# --- (b) gradient noise at initialisation ----------------------------------------------------
def gradient_noise(
    mspec: model.ModelSpec,
    dspec: data.DataSpec,
    seed: int = 1,
    num_samples: int = 10_000,
    batch: int = 1000,
    full_batches: int = 100,
    chunk: int = 20,
    keep_vectors: bool = True,
) -> dict:
    """‖g_B − g‖₂ for `num_samples` fresh minibatch gradients at init, g from full_batches·batch prompts.

    The full gradient is the mean of `full_batches` equal-size minibatch gradients (= the gradient of
    the mean loss over all those prompts), drawn from keys disjoint from the samples' keys.
    """
    params = model.init_params(mspec, keys_for_seed(seed)[0])
    flat0, unravel = ravel_pytree(params)
    base = jax.random.fold_in(jax.random.key(seed), 1234)
    k_full, k_samp = jax.random.split(base)

    def grad_of(key):
        if model.uses_stats(mspec):
            b = data.sample_stats(dspec, key, batch)
        else:
            b = data.sample(dspec, key, batch)
        return ravel_pytree(jax.grad(lambda p: model.mse_loss(mspec, p, b))(unravel(flat0)))[0]

    keys_full = jax.vmap(lambda i: jax.random.fold_in(k_full, i))(jnp.arange(full_batches))
    keys = jax.vmap(lambda i: jax.random.fold_in(k_samp, i))(jnp.arange(num_samples))

    @jax.jit  # one program for the full gradient and the samples (one compile per case)
    def run(keys_full, keys):
        g_full = jax.lax.map(grad_of, keys_full, batch_size=chunk).mean(0)
        return g_full, jax.lax.map(lambda k: grad_of(k) - g_full, keys, batch_size=chunk)

    g_full, noise = run(keys_full, keys)
    noise = np.asarray(noise, np.float64)
    out = {
        "errors": np.linalg.norm(noise, axis=1),
        "full_grad_norm": float(jnp.linalg.norm(g_full)),
        "num_params": int(flat0.size),
    }
    if keep_vectors:
        out["noise"] = noise
    return out


def hill_tail_index(samples: np.ndarray, frac: float = 0.05) -> float:
    """Hill estimator α̂ on the top `frac` order statistics (smaller α̂ = heavier tail). Beyond the paper."""
    x = np.sort(np.asarray(samples, np.float64))[::-1]
    k = max(int(frac * len(x)), 2)
    with np.errstate(divide="ignore"):  # all top values tied (tiny resamples): α̂ = inf
        return float(1.0 / np.mean(np.log(x[:k] / x[k])))


def gaussian_baseline_errors(noise: np.ndarray, seed: int = 0) -> np.ndarray:
    """Norms of Gaussian vectors with the empirical covariance of the gradient noise (same count)."""
    cov = np.cov(noise, rowvar=False)
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(w, 0, None))
    z = np.random.default_rng(seed).standard_normal((noise.shape[0], noise.shape[1]))
    return np.linalg.norm(z @ root.T, axis=1)


def noise_summary(noise_out: dict, frac: float = 0.05) -> dict:
    """Tail statistics of the errors (beyond the paper, which shows histograms only); with the noise
    vectors, also those of the Gaussian baseline with the same covariance (`gaussian_errors`)."""
    e = noise_out["errors"]
    res = {
        "median": float(np.median(e)),
        "q99_over_median": float(np.quantile(e, 0.99) / np.median(e)),
        "max_over_median": float(e.max() / np.median(e)),
        "hill_alpha": hill_tail_index(e, frac),
        "full_grad_norm": noise_out["full_grad_norm"],
        "num_samples": int(e.size),
    }
    if "noise" in noise_out:
        gb = gaussian_baseline_errors(noise_out["noise"])
        noise_out["gaussian_errors"] = gb
        res["gaussian_hill_alpha"] = hill_tail_index(gb, frac)
        res["gaussian_q99_over_median"] = float(np.quantile(gb, 0.99) / np.median(gb))
    return res


# --- (c) robust condition number -------------------------------------------------------------
def lower_median(v) -> jax.Array:
    """v_sorted[⌊(N−1)/2⌋], the convention of torch.median (not jnp.median's average)."""
    v = jnp.sort(jnp.ravel(v))
    return v[(v.shape[0] - 1) // 2]


def robust_condition_number(hess_diag) -> jax.Array:
    """R_med = max |diag H| / lower-median |diag H| over all trainable entries (dead ones included)."""
    a = jnp.abs(jnp.ravel(hess_diag))
    return jnp.max(a) / lower_median(a)


def hessian_diag(mspec, params, batch, chunk: int = 30) -> jax.Array:
    """Exact diag of the Hessian of the fixed-batch loss w.r.t. the flat parameter vector (autodiff)."""
    flat, _ = ravel_pytree(params)
    f = _flat_loss(mspec, params, batch)
    g = jax.grad(f)

    def entry(i):
        e = jnp.zeros_like(flat).at[i].set(1.0)
        return jax.jvp(g, (flat,), (e,))[1][i]

    return jax.lax.map(entry, jnp.arange(flat.size), batch_size=chunk)


def condition_numbers(mspec, snap_params, batch, chunk: int = 50) -> np.ndarray:
    """R_med for every (seed, snapshot): snap_params leaves (n_seed, n_snap, ...) -> (n_seed, n_snap).

    The exact Hessian diagonal entry H_ii is the second derivative along the basis vector e_i, so it
    runs through the same compiled program as the directional smoothness (one per model spec)."""
    flat_all = jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))(snap_params)
    n_seed, n_snap, size = flat_all.shape
    batch = model.prepare_batch(mspec, batch)
    theta = jnp.repeat(flat_all.reshape(n_seed * n_snap, size), size, axis=0)
    basis = jnp.tile(jnp.eye(size, dtype=flat_all.dtype), (n_seed * n_snap, 1))
    diag = _in_blocks(_smoothness_program(mspec, chunk), [theta, basis], chunk, batch)
    diag = np.asarray(diag, np.float64).reshape(n_seed * n_snap, size)
    r = [float(robust_condition_number(jnp.asarray(row))) for row in diag]
    return np.asarray(r).reshape(n_seed, n_snap)


def ratio_table(r_sgd: np.ndarray, r_adam: np.ndarray, snap_steps, at=(750, 1250)) -> dict:
    """Per-seed R_SGD/R_Adam at the given steps: mean and unbiased std over seeds."""
    out = {}
    steps = list(np.asarray(snap_steps))
    for t in at:
        if t not in steps:
            continue
        ratio = r_sgd[:, steps.index(t)] / r_adam[:, steps.index(t)]
        std = float(ratio.std(ddof=1)) if ratio.size > 1 else float("nan")
        out[int(t)] = {"mean": float(ratio.mean()), "std": std, "per_seed": ratio.tolist()}
    return out


# --- (d) directional smoothness --------------------------------------------------------------
def directional_smoothness_flat(mspec, template, batch):
    """(θ, Δ) -> DS = uᵀ∇²f(θ)u with u = Δ/‖Δ‖, on flat vectors.

    Computed as the second derivative of s ↦ f(θ + s·u) at 0 by forward-over-forward autodiff
    (jvp of jvp): the same exact quantity as uᵀ(jvp of grad), at about half the run time and
    compile time, because no reverse pass is built."""
    f = _flat_loss(mspec, template, batch)

    def ds(flat, delta):
        u = delta / jnp.linalg.norm(delta)
        slope = lambda x: jax.jvp(f, (x,), (u,))[1]
        return jax.jvp(slope, (flat,), (u,))[1]

    return ds


@functools.cache
def _smoothness_program(mspec, chunk: int):
    """(flat θ (X, P), flat Δ (X, P), batch) -> DS (X,), compiled once per spec."""
    template = _template(mspec)

    def run(flat_X, dflat_X, batch):
        ds = directional_smoothness_flat(mspec, template, batch)
        return jax.lax.map(lambda xy: ds(*xy), (flat_X, dflat_X), batch_size=chunk)

    return jax.jit(run)


@functools.cache
def _grad_norm_program(mspec, chunk: int):
    """(flat θ (X, P), batch) -> ‖∇f(θ)‖ (X,) on the fixed batch."""
    template = _template(mspec)

    def run(flat_X, batch):
        g = jax.grad(_flat_loss(mspec, template, batch))
        return jax.lax.map(lambda x: jnp.linalg.norm(g(x)), flat_X, batch_size=chunk)

    return jax.jit(run)


def directional_smoothness(mspec, snap_params, snap_delta, batch, chunk: int = 50) -> np.ndarray:
    """DS along the actual update for every (seed, snapshot) -> (n_seed, n_snap)."""
    flat = jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))(snap_params)
    dflat = jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))(snap_delta)
    n_seed, n_snap = flat.shape[:2]
    batch = model.prepare_batch(mspec, batch)
    out = _in_blocks(
        _smoothness_program(mspec, chunk),
        [flat.reshape(n_seed * n_snap, -1), dflat.reshape(n_seed * n_snap, -1)],
        chunk,
        batch,
    )
    return np.asarray(out, np.float64).reshape(n_seed, n_snap)


def per_step_smoothness(
    mspec, dense_params, batch, chunk: int = 50, stride: int = 1, grad_norm=True
):
    """(DS_t, ‖∇f(θ_t)‖ or None, t) for t = 0, stride, ... < T−1 of one run; dense_params leaves (T, ...)
    hold θ_0..θ_{T−1}, and DS_t uses the actual update θ_{t+1} − θ_t."""
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(dense_params)
    batch = model.prepare_batch(mspec, batch)
    t = np.arange(0, flat.shape[0] - 1, stride)
    theta, delta = flat[t], flat[t + 1] - flat[t]
    dsv = _in_blocks(_smoothness_program(mspec, chunk), [theta, delta], chunk, batch)
    gn = _in_blocks(_grad_norm_program(mspec, chunk), [theta], chunk, batch) if grad_norm else None
    return np.asarray(dsv, np.float64), None if gn is None else np.asarray(gn, np.float64), t


def window_summary(
    ds_sgdm_ST: np.ndarray, ds_adam_ST: np.ndarray, window: int = 250, steps=None
) -> list:
    """Per window of `window` steps: median DS of each optimiser over (seed, step), the fraction of
    (seed, step) pairs with DS_Adam < DS_SGDM, and the mean DS (dominated by rare spikes). `steps`
    gives the step of each column (default 0, 1, ...; a strided subsample otherwise). Beyond the paper."""
    steps = np.arange(ds_sgdm_ST.shape[1]) if steps is None else np.asarray(steps)
    rows = []
    for t0 in range(0, int(steps[-1]) + 1, window):
        m = (steps >= t0) & (steps < t0 + window)
        s, a = ds_sgdm_ST[:, m], ds_adam_ST[:, m]
        rows.append(
            {
                "start": t0,
                "stop": int(min(t0 + window, steps[-1] + 1)),
                "median_sgdm": float(np.median(s)),
                "median_adam": float(np.median(a)),
                "q25_sgdm": float(np.quantile(s, 0.25)),
                "q75_sgdm": float(np.quantile(s, 0.75)),
                "q25_adam": float(np.quantile(a, 0.25)),
                "q75_adam": float(np.quantile(a, 0.75)),
                "mean_sgdm": float(s.mean()),
                "mean_adam": float(a.mean()),
                "frac_adam_below": float(np.mean(a < s)),
            }
        )
    return rows


# --- (e) (L0, L1) scatter --------------------------------------------------------------------
def l0l1_scatter(mspec, dense_params, batch, chunk: int = 50, stride: int = 1) -> dict:
    """x_t = ln‖∇f(θ_t)‖, y_t = ln DS_t for t = 0, stride, ... ≤ T−2 of one run (dense_params (T, ...)).

    Negative DS points are dropped (and counted); reports the OLS slope of y on x and Pearson r.
    """
    dsv, gn, steps = per_step_smoothness(mspec, dense_params, batch, chunk, stride)
    keep = (dsv > 0) & np.isfinite(dsv) & (gn > 0)
    x, y = np.log(gn[keep]), np.log(dsv[keep])
    t = steps[keep]
    slope, intercept = np.polyfit(x, y, 1)
    return {
        "x": x,
        "y": y,
        "t": t,
        "slope": float(slope),
        "intercept": float(intercept),
        "pearson_r": float(np.corrcoef(x, y)[0, 1]),
        "num_negative": int((dsv <= 0).sum()),
        "num_points": int(keep.sum()),
    }

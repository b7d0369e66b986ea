"""Config, Task, sweep runner (vmap correctness, training lowers loss) and the metric conventions."""

import importlib.util
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from linear_tf import data, model, phenomena, sweep
from linear_tf.task import make_task
from trainloop.config_util import ConfigError
from trainloop.optim import make_optimizer

_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "linear_regression.py"
_spec = importlib.util.spec_from_file_location("ltf_config", _CONFIG)
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
get_config = _mod.get_config


def test_config_defaults_and_optimizer_mapping():
    c = get_config("setting=2,optimizer=adam")
    assert (c.data.n, c.optimizer.name, c.optimizer.lr, c.optimizer.clip_norm) == (
        5,
        "adam",
        0.005,
        1.0,
    )
    assert (c.optimizer.b1, c.optimizer.b2, c.optimizer.eps) == (0.9, 0.9, 1e-8)
    c = get_config("setting=sphere,optimizer=sgdm")
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.clip_norm, c.optimizer.momentum) == (
        "sgdm",
        5.0,
        0.1,
        0.9,
    )
    c = get_config("setting=nonlinear")
    assert (c.model.parameterization, c.model.init_std, c.batch_size, c.model.embed) == (
        "full",
        0.1,
        2000,
        True,
    )
    assert get_config("optimizer=sgd,lr=0.3").optimizer.name == "sgd"


@pytest.mark.parametrize(
    "arg,pattern",
    [
        ("setting=7", "setting='7'.*sphere"),
        ("optimizer=rmsprop", "optimizer='rmsprop'.*adam, sgdm, sgd"),
        ("n=0", "n=0"),
        ("d=0", "d=0"),
        ("parameterization=dense", "parameterization='dense'"),
        ("bogus=1", "bogus"),
    ],
)
def test_config_bad_input(arg, pattern):
    with pytest.raises(ConfigError, match=pattern):
        get_config(arg)


def _single_run(task, opt_cfg, seed, steps):
    """A plain Python loop over the Task functions with the real learning rate."""
    init_key, data_key = sweep.keys_for_seed(seed)
    params = task.init(init_key)
    tx, _ = make_optimizer(opt_cfg, steps)
    state = tx.init(params)

    @jax.jit
    def step(params, state, t):
        batch = task.device_batch(jax.random.fold_in(data_key, t))
        (loss, _), g = jax.value_and_grad(task.loss, has_aux=True)(params, batch, None)
        upd, state = tx.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    losses = []
    for t in range(steps):
        params, state, loss = step(params, state, t)
        losses.append(float(loss))
    return params, np.asarray(losses)


def test_sweep_equals_separate_runs_and_training_lowers_loss():
    # Small d and n keep compilation cheap; nothing asserted here depends on the size.
    cfg_s = get_config("setting=1,steps=10,batch=50,d=3,n=8")
    task = make_task(cfg_s)
    mspec = model.ModelSpec(d=3, n=8)
    dspec = data.make_data_spec("1", d=3, n=8)
    lrs = {"adam": [0.02, 0.05], "sgdm": [0.05], "sgd": [0.2]}
    scfg = sweep.SweepConfig(steps=10, batch=50, clip=1.0, eval_stride=5, snapshot_stride=5)
    res = sweep.run_sweep(mspec, dspec, lrs, seeds=(0, 1), cfg=scfg, log=None)
    g = res.groups["adam"]
    assert g.train_loss.shape == (2, 2, 10) and g.eval_loss.shape == (2, 2, 3)
    np.testing.assert_array_equal(res.snap_steps, [0, 5])
    # Two of the vmapped runs against separate single runs with the real learning rate.
    for name, i, seed in (("adam", 1, 1), ("sgdm", 0, 0)):
        cfg_s.optimizer.name, cfg_s.optimizer.lr = name, lrs[name][i]
        params, losses = _single_run(task, cfg_s.optimizer, seed, 10)
        grp = res.groups[name]
        np.testing.assert_allclose(grp.train_loss[i, seed], losses, rtol=2e-4)
        chex.assert_trees_all_close(
            jax.tree_util.tree_map(lambda a, i=i, seed=seed: a[i, seed], grp.final_params),
            params,
            rtol=1e-3,
            atol=1e-6,
        )
    for grp in res.groups.values():  # training lowers the loss for each optimiser
        assert np.all(grp.eval_loss[..., -1] < 0.5 * grp.eval_loss[..., 0])
    # SGDM and Adam share the initialisation.
    np.testing.assert_array_equal(
        res.groups["adam"].snap_params["attn"]["bc"][0, :, 0],
        res.groups["sgdm"].snap_params["attn"]["bc"][0, :, 0],
    )
    # The recorded update θ_1 − θ_0 is non-zero outside the dead block.
    assert np.all(np.abs(g.snap_delta["attn"]["bc"][:, :, 0, :-1, :, 0]).sum((-1, -2)) > 0)


def test_robust_condition_number_uses_lower_median():
    diag = jnp.array([0.0, -100.0, 3.0, 1.0, 0.0, 2.0])  # |.| sorted: 0 0 1 2 3 100
    assert float(phenomena.lower_median(jnp.abs(diag))) == 1.0  # jnp.median would give 1.5
    assert float(phenomena.robust_condition_number(diag)) == pytest.approx(100.0)
    assert float(jnp.median(jnp.abs(diag))) == 1.5


def test_hessian_diag_and_directional_smoothness_against_finite_differences():
    with jax.enable_x64(True):
        # d=3, n=8 keep the second-order compilation small; the identities do not depend on size.
        spec = model.ModelSpec(d=3, n=8, layers=2, init_std=0.2)
        ds = data.make_data_spec("1", d=3, n=8)
        batch = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64), data.sample(ds, jax.random.key(0), 32)
        )
        p = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64), model.init_params(spec, jax.random.key(1))
        )
        diag = phenomena.hessian_diag(spec, p, batch, chunk=25)
        flat = p["attn"]["bc"].ravel()
        n = flat.shape[0]
        grad = jax.jit(
            jax.grad(
                lambda v: model.mse_loss(spec, {"attn": {"bc": v.reshape(2, 1, 2, 3, 3)}}, batch)
            )
        )
        for i in (0, 7, 13, 29, 35):  # central differences of the gradient
            e = jnp.zeros(n, jnp.float64).at[i].set(1e-5)
            fd = (grad(flat + e)[i] - grad(flat - e)[i]) / 2e-5
            assert float(diag[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
        assert np.all(np.asarray(diag[18:27]) == 0.0)  # dead B_{L-1} block (layer 1, index 0)
        assert np.all(np.asarray(diag[27:]) != 0.0)
        # R_med through the production path (second derivatives along basis vectors, forward mode).
        r = phenomena.condition_numbers(
            spec, jax.tree_util.tree_map(lambda a: a[None, None], p), batch
        )
        assert float(r[0, 0]) == pytest.approx(
            float(phenomena.robust_condition_number(diag)), rel=1e-6
        )
        delta = jax.random.normal(jax.random.key(2), (n,), jnp.float64)
        ds_fn = phenomena.directional_smoothness_flat(spec, p, batch)
        got = ds_fn(flat, delta)
        u = delta / jnp.linalg.norm(delta)
        f = lambda s: model.mse_loss(
            spec, {"attn": {"bc": (flat + s * u).reshape(2, 1, 2, 3, 3)}}, batch
        )
        h = 1e-4
        fd = (f(h) - 2 * f(0.0) + f(-h)) / h**2
        assert float(got) == pytest.approx(float(fd), rel=1e-5)


def test_hill_estimator_orders_tails():
    rng = np.random.default_rng(0)
    pareto = rng.pareto(1.5, 20_000) + 1
    gauss = np.abs(rng.standard_normal(20_000))
    assert phenomena.hill_tail_index(pareto, 0.05) == pytest.approx(1.5, rel=0.15)
    assert phenomena.hill_tail_index(gauss, 0.05) > 3


def test_window_summary_uses_medians_and_pairwise_fraction():
    s = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    a = np.array([[0.5, 0.5, 100.0, 5.0], [0.5, 0.5, 0.5, 5.0]])  # one spike dominates the mean
    (w0, w1) = phenomena.window_summary(s, a, window=2)
    assert (w0["start"], w0["stop"], w1["start"], w1["stop"]) == (0, 2, 2, 4)
    assert w0["median_adam"] == 0.5 and w0["median_sgdm"] == 1.5 and w0["frac_adam_below"] == 1.0
    assert w1["frac_adam_below"] == 0.25  # 0.5 < 3 only
    assert w1["mean_adam"] > w1["mean_sgdm"] and w1["median_adam"] > w1["median_sgdm"]

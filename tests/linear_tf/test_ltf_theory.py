"""Closed forms (one-layer optimum, preconditioned GD, GD++) against the model (float64 where identities are exact)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linear_tf import data, model, theory


def _one_layer_params(c_DD, d=5):
    bc = jnp.zeros((1, 1, 2, d, d), jnp.float32).at[0, 0, 1].set(c_DD)
    return {"attn": {"bc": bc}}


def _mc_loss(setting, c_DD, n_prompts=20_000, seed=3):
    ds = data.make_data_spec(setting)
    ms = model.ModelSpec(n=ds.n, layers=1)
    batch = data.sample(ds, jax.random.key(seed), n_prompts)
    return float(model.mse_loss(ms, _one_layer_params(c_DD), batch))


def test_isotropic_optimum_by_monte_carlo():
    d, n = 5, 20
    a_star = theory.isotropic_a_star(d, n)
    f_star = theory.isotropic_f_star(d, n)
    assert f_star == pytest.approx(30 / 26)
    opt = theory.one_layer_optimum(jnp.eye(d), n)
    chex.assert_trees_all_close(opt["c0"], -a_star * jnp.eye(d), atol=1e-6)
    assert float(opt["f_star"]) == pytest.approx(f_star, rel=1e-6)
    mc = _mc_loss("1", opt["c0"])
    assert mc == pytest.approx(f_star, rel=0.04)
    for scale in (0.6, 1.4):  # moving away from a* increases the loss, as f(a) predicts
        mc_a = _mc_loss("1", -scale * a_star * jnp.eye(d))
        f_a = theory.isotropic_f(scale * a_star, d, n)
        assert mc_a == pytest.approx(f_a, rel=0.04)
        assert mc_a > mc * 1.03


def test_setting2_and_nonisotropic_values():
    assert theory.isotropic_f_star(5, 5) == pytest.approx(30 / 11)
    sigma = jnp.diag(jnp.array([1.0, 1.0, 0.25, 1 / 16, 1.0]))
    assert float(theory.one_layer_optimum(sigma, 20)["f_star"]) == pytest.approx(0.6818, abs=1e-4)
    # Γ⁻¹ minimises f(A): perturbing it in any direction increases the loss.
    a = theory.one_layer_optimum(sigma, 20)["a"]
    f0 = theory.one_layer_loss(a, sigma, 20)
    pert = 0.05 * jax.random.normal(jax.random.key(0), (5, 5))
    assert float(theory.one_layer_loss(a + pert, sigma, 20)) > float(f0)


def test_rotation_invariant_sphere_by_monte_carlo():
    s, m4 = theory.setting_moments("sphere")
    res = theory.rotation_invariant(s, m4, 5, 20)
    assert res["f_star"] == pytest.approx(1 / 6, rel=1e-6)
    assert theory.rotation_invariant(*theory.setting_moments("3"), 5, 20)[
        "f_star"
    ] == pytest.approx(0.7297, abs=1e-4)
    # Gaussian moments recover 5.3.
    g = theory.rotation_invariant(*theory.setting_moments("1"), 5, 20)
    assert g["f_star"] == pytest.approx(30 / 26)
    mc = _mc_loss("sphere", -res["a_star"] * jnp.eye(5))
    assert mc == pytest.approx(1 / 6, rel=0.04)


def _pgd_setup(divisor_model=None):
    d, n, L = 5, 20, 4
    ks = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(ks[0], (3, n + 1, d), jnp.float64)
    w = jax.random.normal(ks[1], (3, d), jnp.float64)
    y = jnp.einsum("btd,bd->bt", x, w)
    z = jnp.concatenate([x, y.at[:, -1].set(0.0)[..., None]], -1)
    c = 0.3 * jax.random.normal(ks[2], (L, d, d), jnp.float64)
    bc = jnp.zeros((L, 1, 2, d, d), jnp.float64).at[:, 0, 1].set(c)
    return x, y, z, c, bc


def test_b_zero_model_is_preconditioned_gd_float64():
    with jax.enable_x64(True):
        x, y, z, c, bc = _pgd_setup()
        n, L = 20, 4
        for layers in range(1, L + 1):
            spec = model.ModelSpec(n=n, layers=layers)
            params = {"attn": {"bc": bc[:layers]}}
            z_out = model.forward(spec, params, z)
            y_hat = model.predict(spec, params, z)  # sparse fast path
            for b in range(z.shape[0]):
                pred, res, qs = theory.preconditioned_gd(x[b, :n], y[b, :n], x[b, n], c[:layers])
                np.testing.assert_allclose(y_hat[b], pred, rtol=1e-10)
                np.testing.assert_allclose(z_out[b, :n, -1], res[-1], rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(z_out[b, n, -1], qs[-1], rtol=1e-10)


def test_divisor_n_plus_one_breaks_the_identity():
    with jax.enable_x64(True):
        x, y, z, c, bc = _pgd_setup()
        n = 20
        spec = model.ModelSpec(n=n, layers=4)
        params = {"attn": {"bc": bc}}
        pred_n = theory.preconditioned_gd(x[0, :n], y[0, :n], x[0, n], c)[0]
        pred_n1 = theory.preconditioned_gd(x[0, :n], y[0, :n], x[0, n], c, divisor=n + 1)[0]
        y_n1 = model.predict(spec, params, z, divisor=n + 1)[0]
        np.testing.assert_allclose(y_n1, pred_n1, rtol=1e-10)  # the helper honours its divisor
        assert abs(float(y_n1 - pred_n)) > 1e-4 * (1 + abs(float(pred_n)))


def test_gd_plus_plus_covariate_update():
    with jax.enable_x64(True):
        d, n = 5, 20
        ks = jax.random.split(jax.random.key(1), 3)
        z = jax.random.normal(ks[0], (2, n + 1, d + 1), jnp.float64).at[:, -1, -1].set(0.0)
        bc = 0.3 * jax.random.normal(ks[1], (1, 1, 2, d, d), jnp.float64)
        out = model.forward(model.ModelSpec(n=n, layers=1), {"attn": {"bc": bc}}, z)
        for b in range(2):
            want = theory.gd_plus_plus_covariates(z[b, :, :d], bc[0, 0, 0], bc[0, 0, 1], n)
            np.testing.assert_allclose(out[b, :, :d], want, rtol=1e-10, atol=1e-12)
        # B = bI, C = −aI is von Oswald's GD++: x ← (I − abS)x.
        a, bb = 0.7, 0.4
        x = z[0, :, :d]
        s = x[:n].T @ x[:n] / n
        got = theory.gd_plus_plus_covariates(x, bb * jnp.eye(d), -a * jnp.eye(d), n)
        np.testing.assert_allclose(got, x @ (jnp.eye(d) - a * bb * s).T, rtol=1e-10)


def test_distance_to_identity():
    assert float(theory.distance_to_identity(3.0 * jnp.eye(5))) < 1e-7
    ds = data.make_data_spec("nonisotropic", seed=2)
    sigma_inv = ds.u @ np.diag(1 / ds.dvec**2) @ ds.u.T
    whitened = theory.whiten_c(-0.8 * sigma_inv, ds.u, ds.dvec)
    assert float(theory.distance_to_identity(whitened)) < 1e-5
    assert float(theory.distance_to_identity(jnp.asarray(sigma_inv))) > 0.1

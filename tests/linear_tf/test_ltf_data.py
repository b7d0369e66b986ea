"""Prompt generators: layout, moments, Setting-3 gamma convention, nonlinearity, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from linear_tf import data, model
from trainloop.config_util import ConfigError


@pytest.mark.parametrize("setting", data.SETTINGS)
def test_shapes_and_query_label_zeroed(setting):
    ds = data.make_data_spec(setting)
    b = data.sample(ds, jax.random.key(0), 7)
    assert b["z"].shape == (7, data.DEFAULT_N[setting] + 1, 6)
    assert b["y"].shape == (7,)
    assert np.all(np.asarray(b["z"][:, -1, -1]) == 0.0)
    assert np.all(np.isfinite(np.asarray(b["z"])))


def _second_moment(setting, count=20_000):
    ds = data.make_data_spec(setting, seed=1)
    x = data.sample_covariates(ds, jax.random.key(1), (count,))
    return ds, np.asarray(x.T @ x / count)


def test_covariate_second_moments():
    _, m1 = _second_moment("1")
    np.testing.assert_allclose(m1, np.eye(5), atol=0.05)
    _, ms = _second_moment("sphere")
    np.testing.assert_allclose(ms, np.eye(5) / 5, atol=0.01)
    _, m3 = _second_moment("3", 200_000)
    np.testing.assert_allclose(m3, np.eye(5) / 5, atol=0.03)
    ds, mn = _second_moment("nonisotropic")
    sigma = ds.u @ np.diag(ds.dvec**2) @ ds.u.T
    np.testing.assert_allclose(mn, sigma, atol=0.05)


def test_setting3_gamma_moments():
    ds = data.make_data_spec("3")
    assert ds.gamma_theta == pytest.approx(10.0)
    log_g = data.gamma_log(jax.random.key(2), ds.gamma_k, (1_000_000,))
    g = np.exp(np.asarray(log_g, np.float64)) * ds.gamma_theta
    assert g.mean() == pytest.approx(1.0, rel=0.03)
    assert g.var() == pytest.approx(10.0, rel=0.1)
    # The vectorised Marsaglia-Tsang sampler is the Gamma law itself (boosted k < 1 and plain k >= 1).
    assert scipy.stats.kstest(g / ds.gamma_theta, scipy.stats.gamma(ds.gamma_k).cdf).pvalue > 1e-3
    g2 = np.exp(np.asarray(data.gamma_log(jax.random.key(4), 2.5, (100_000,)), np.float64))
    assert scipy.stats.kstest(g2, scipy.stats.gamma(2.5).cdf).pvalue > 1e-3
    # ‖x‖² = g exactly (x = sqrt(g) u with u on the sphere).
    x = data.sample_covariates(ds, jax.random.key(3), (200_000,))
    assert float(jnp.mean(jnp.sum(x**2, -1))) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("setting,ey2", [("1", 5.0), ("2", 5.0), ("3", 1.0), ("sphere", 1.0)])
def test_initial_loss_is_about_e_y2(setting, ey2):
    ds = data.make_data_spec(setting)
    spec = model.ModelSpec(n=ds.n)
    p = model.init_params(spec, jax.random.key(0))
    loss = float(model.mse_loss(spec, p, data.sample(ds, jax.random.key(9), 20_000)))
    assert loss == pytest.approx(ey2, rel=0.25)  # init std 0.05 moves ŷ a little off 0
    zero = jax.tree_util.tree_map(jnp.zeros_like, p)
    assert float(
        model.mse_loss(spec, zero, data.sample(ds, jax.random.key(9), 20_000))
    ) == pytest.approx(ey2, rel=0.05)


def test_nonlinear_targets_are_nonlinear():
    ds = data.make_data_spec("nonlinear")
    x = np.asarray(data.sample_covariates(ds, jax.random.key(4), (5000,)), np.float64)
    phi = np.asarray(data.apply_phi(ds.phi, jnp.asarray(x, jnp.float32)), np.float64)
    feats = np.c_[x, np.ones(len(x))]
    resid = phi - feats @ np.linalg.lstsq(feats, phi, rcond=None)[0]
    assert np.linalg.norm(resid) / np.linalg.norm(phi - phi.mean(0)) > 0.1
    # φ is built once from seed 7, whatever the run seed.
    other = data.make_data_spec("nonlinear", seed=3)
    np.testing.assert_array_equal(np.asarray(other.phi["w1"]), np.asarray(ds.phi["w1"]))
    # Labels use φ(x) while the tokens hold the raw x.
    b = data.sample(ds, jax.random.key(5), 3)
    assert not np.allclose(b["z"][:, :-1, -1], 0)


def test_sample_stats_are_the_statistics_of_sample():
    for setting in ("1", "3"):
        ds = data.make_data_spec(setting)
        full, stats = (
            data.sample(ds, jax.random.key(6), 9),
            data.sample_stats(ds, jax.random.key(6), 9),
        )
        np.testing.assert_array_equal(np.asarray(stats["y"]), np.asarray(full["y"]))
        ref = model.prompt_stats(full["z"])
        for k in ref:
            np.testing.assert_allclose(stats["stats"][k], ref[k], rtol=1e-6, atol=1e-6)


def test_eval_batch_is_fixed():
    ds = data.make_data_spec("3")
    a, b = data.eval_batch(ds, 10), data.eval_batch(ds, 10)
    np.testing.assert_array_equal(np.asarray(a["z"]), np.asarray(b["z"]))


def test_bad_settings_raise():
    with pytest.raises(ConfigError, match="setting='4'.*sphere"):
        data.make_data_spec("4")
    with pytest.raises(ConfigError, match="n=0"):
        data.make_data_spec("1", n=0)
    with pytest.raises(ConfigError, match="d=0"):
        data.make_data_spec("1", d=0)

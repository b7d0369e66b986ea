"""Model structure: parameterisations, dead block, p0, heads, softmax variants, invariances."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from linear_tf import data, model
from linear_tf.hparams import optimizer_config
from trainloop.config_util import ConfigError
from trainloop.optim import make_optimizer


@pytest.fixture(scope="module")
def batch():
    return data.sample(data.make_data_spec("1"), jax.random.key(0), 64)


def test_param_counts():
    p = model.init_params(model.ModelSpec(layers=3, heads=1), jax.random.key(0))
    assert model.num_params(p) == 150
    chex.assert_shape(p["attn"]["bc"], (3, 1, 2, 5, 5))
    assert model.num_params(model.init_params(model.ModelSpec(heads=2), jax.random.key(0))) == 300
    nl = model.ModelSpec(parameterization="full", embed=True, init_std=0.1)
    assert model.num_params(model.init_params(nl, jax.random.key(0))) == 551
    std = float(jnp.std(model.init_params(model.ModelSpec(d=20), jax.random.key(1))["attn"]["bc"]))
    assert std == pytest.approx(0.05, rel=0.05)


def test_sparse_fast_path_equals_generic_forward(batch):
    spec = model.ModelSpec(layers=3, heads=2, init_std=0.3)
    p = model.init_params(spec, jax.random.key(2))
    fast = model.predict(spec, p, batch["z"])
    generic = -model.forward(spec, p, batch["z"])[:, -1, -1]
    chex.assert_trees_all_close(fast, generic, rtol=2e-4, atol=1e-5)
    # The array formulation (default for d > LIST_MAX_D) computes the same prediction; the choice
    # is a field of the ModelSpec, so programs cached per ModelSpec never mix the two graphs.
    arrays_spec = model.ModelSpec(layers=3, heads=2, init_std=0.3, stats_form="arrays")
    assert arrays_spec != spec and hash(arrays_spec) != hash(spec)
    arrays = model.predict(arrays_spec, p, batch["z"])
    chex.assert_trees_all_close(arrays, generic, rtol=2e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="stats_form='fast'.*auto, lists, arrays"):
        model.ModelSpec(stats_form="fast")


def test_sparse_equals_full_restricted_to_pattern(batch):
    spec = model.ModelSpec(layers=3, init_std=0.3)
    full_spec = model.ModelSpec(layers=3, parameterization="full")
    p = model.init_params(spec, jax.random.key(3))
    pq = model.sparse_to_full(p["attn"]["bc"])
    pf = {"attn": {"p": pq[0], "q": pq[1]}}
    chex.assert_trees_all_close(
        model.predict(spec, p, batch["z"]),
        model.predict(full_spec, pf, batch["z"]),
        rtol=2e-4,
        atol=1e-5,
    )
    g_sparse = jax.grad(lambda q: model.mse_loss(spec, q, batch))(p)["attn"]["bc"]
    g_full = jax.grad(lambda q: model.mse_loss(full_spec, q, batch))(pf)["attn"]
    chex.assert_trees_all_close(g_sparse[:, :, 0], g_full["p"][:, :, :5, :5], rtol=2e-3, atol=1e-6)
    chex.assert_trees_all_close(g_sparse[:, :, 1], g_full["q"][:, :, :5, :5], rtol=2e-3, atol=1e-6)


def test_dead_last_layer_b_block_has_exactly_zero_gradient(batch):
    for spec in (model.ModelSpec(layers=3), model.ModelSpec(layers=2, heads=2)):
        p = model.init_params(spec, jax.random.key(4))
        g = jax.grad(lambda q, s=spec: model.mse_loss(s, q, batch))(p)["attn"]["bc"]
        assert np.all(np.asarray(g[-1, :, 0]) == 0.0)
        assert np.all(np.abs(np.asarray(g[:-1, :, 0])) > 0)
        # Also through the generic (full-matrix) forward.
        gg = jax.grad(
            lambda q, s=spec: jnp.mean(
                (-model.forward(s, q, batch["z"])[:, -1, -1] - batch["y"]) ** 2
            )
        )(p)["attn"]["bc"]
        assert np.all(np.asarray(gg[-1, :, 0]) == 0.0)


def test_p0_never_updates_b(batch):
    spec = model.ModelSpec(parameterization="p0")
    p = model.init_params(spec, jax.random.key(5))
    assert np.all(np.asarray(p["attn"]["bc"][:, :, 0]) == 0.0)
    for name in ("adam", "sgdm"):
        tx, _ = make_optimizer(optimizer_config(name, 0.05, 1.0), 10)
        q, state = p, tx.init(p)
        for _ in range(3):
            g = jax.grad(lambda r: model.mse_loss(spec, r, batch))(q)
            upd, state = tx.update(g, state, q)
            q = optax.apply_updates(q, upd)
        assert np.all(np.asarray(q["attn"]["bc"][:, :, 0]) == 0.0)
        assert not np.allclose(q["attn"]["bc"][:, :, 1], p["attn"]["bc"][:, :, 1])


def test_prediction_invariant_to_context_permutation(batch):
    for attention in ("linear", "softmax", "softmax_clean"):
        spec = model.ModelSpec(attention=attention, init_std=0.3)
        p = model.init_params(spec, jax.random.key(6))
        perm = np.r_[np.random.default_rng(0).permutation(20), 20]
        chex.assert_trees_all_close(
            model.predict(spec, p, batch["z"]),
            model.predict(spec, p, batch["z"][:, perm]),
            rtol=1e-4,
            atol=1e-6,
        )


def test_softmax_variants_with_zero_scores():
    """Q̃ = 0: reference variant averages over all n+1 keys then masks and divides by n; clean over n."""
    n, d = 4, 2
    z = jax.random.normal(jax.random.key(7), (1, n + 1, d + 1))
    p_hee = jax.random.normal(jax.random.key(8), (1, d + 1, d + 1))
    q_hee = jnp.zeros((1, d + 1, d + 1))
    v_sum = (z[0, :n] @ p_hee[0].T).sum(0)
    ref = model.layer_update(z, p_hee, q_hee, "softmax", float(n))
    clean = model.layer_update(z, p_hee, q_hee, "softmax_clean", float(n))
    chex.assert_trees_all_close(
        ref[0] - z[0], jnp.broadcast_to(v_sum / (n + 1) / n, z[0].shape), rtol=1e-5
    )
    chex.assert_trees_all_close(clean[0] - z[0], jnp.broadcast_to(v_sum / n, z[0].shape), rtol=1e-5)


def test_bad_model_spec_raises():
    with pytest.raises(ConfigError, match="parameterization='dense'.*sparse, full, p0"):
        model.ModelSpec(parameterization="dense")
    with pytest.raises(ConfigError, match="attention='relu'"):
        model.ModelSpec(attention="relu")
    with pytest.raises(ConfigError, match="layers=0"):
        model.ModelSpec(layers=0)

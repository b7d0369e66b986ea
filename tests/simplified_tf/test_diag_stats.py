"""Signal-propagation statistics on hand-made inputs (simplified_tf.diagnostics)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simplified_tf import diagnostics as D
from simplified_tf.attention import attention_probs, centring_matrix


def test_cosine_identical_tokens_is_one():
    v_D = jax.random.normal(jax.random.key(0), (16,))
    x_BTD = jnp.broadcast_to(v_D, (3, 5, 16)) * jnp.arange(1.0, 6.0)[None, :, None]  # scales too
    np.testing.assert_allclose(D.token_cosine(x_BTD), 1.0, atol=1e-6)


def test_cosine_orthogonal_tokens_is_zero():
    x_BTD = jnp.eye(6)[None, :, :] * 3.0  # 6 tokens along 6 different axes
    np.testing.assert_allclose(D.token_cosine(x_BTD), 0.0, atol=1e-7)


def test_cosine_is_within_sequence_and_matches_numpy():
    x_BTD = np.array(jax.random.normal(jax.random.key(1), (3, 7, 8)))
    # Sequence 0 is all one vector: within-sequence cosine 1; others random.
    x_BTD[0] = x_BTD[0, :1]
    u = x_BTD / np.linalg.norm(x_BTD, axis=-1, keepdims=True)
    g = np.einsum("btd,bsd->bts", u, u)
    off = ~np.eye(7, dtype=bool)
    expected = np.mean([g[b][off].mean() for b in range(3)])
    np.testing.assert_allclose(D.token_cosine(jnp.asarray(x_BTD)), expected, rtol=1e-5)
    assert expected < 0.6  # not trivially one


def test_token_rms():
    x_BTD = jnp.stack([jnp.full((4,), 2.0), jnp.array([3.0, -3.0, 3.0, -3.0])])[None]
    np.testing.assert_allclose(D.token_rms(x_BTD), 2.5, rtol=1e-6)


def _two_tokens():
    # Both rows already sum to 0, so centring over the width leaves them unchanged.
    return jnp.array([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, -2.0]]])


def test_outlier_stats_hand_computed():
    # Global RMS^2 = 10/8; feature Gram / 2 has diagonal [.4, .4, 1.6, 1.6] (mean 1) and
    # off-diagonal entries -0.4, -1.6 (each twice), zeros elsewhere.
    out = D.outlier_stats(_two_tokens())
    np.testing.assert_allclose(out["kurtosis"], 4 * 0.6**2 / 3, rtol=1e-5)
    np.testing.assert_allclose(out["feat_corr_rms"], np.sqrt(2 * (0.4**2 + 1.6**2) / 12), rtol=1e-5)
    # |x| rows [1,1,0,0] and [2,2,0,0]: max/median = 1/0.5 and 2/1.
    np.testing.assert_allclose(out["max_median_ratio"], 2.0, rtol=1e-6)


def test_kurtosis_zero_without_outlier_features_and_large_with_one():
    key = jax.random.key(2)
    x_BTD = jnp.sign(jax.random.normal(key, (4, 64, 32)))  # +-1 everywhere: equal feature scales
    flat = D.outlier_stats(x_BTD)["kurtosis"]
    spiky = D.outlier_stats(x_BTD.at[..., 5].multiply(20.0))["kurtosis"]
    assert float(flat) < 0.05
    assert float(spiky) > 10.0


def test_batch_stats_centres_and_normalises():
    t = _two_tokens()
    out = D.batch_stats(t)  # two orthogonal tokens
    np.testing.assert_allclose(out["batch_corr_mean"], 0.0, atol=1e-7)
    np.testing.assert_allclose(out["batch_corr_rms"], 0.0, atol=1e-7)
    # Tokens t and -t (plus a per-token offset removed by centring), across two sequences:
    # Gram/d off-diagonal = -1 (pair) -> mean -1, rms 1.
    v = jnp.array([1.0, -2.0, 3.0, -2.0])
    x_BTD = jnp.stack([v + 5.0, -v - 1.0])[:, None, :]
    out = D.batch_stats(x_BTD)
    np.testing.assert_allclose(out["batch_corr_mean"], -1.0, rtol=1e-5)
    np.testing.assert_allclose(out["batch_corr_rms"], 1.0, rtol=1e-5)


def test_batch_stats_match_direct_numpy():
    x = np.asarray(jax.random.normal(jax.random.key(3), (2, 5, 6))) + 0.5
    xc = x - x.mean(-1, keepdims=True)
    flat = (xc / (np.sqrt((xc**2).mean()) + 1e-8)).reshape(10, 6)
    g = flat @ flat.T / 6
    off = g[~np.eye(10, dtype=bool)]
    out = D.batch_stats(jnp.asarray(x))
    np.testing.assert_allclose(out["batch_corr_mean"], off.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["batch_corr_rms"], np.sqrt((off**2).mean()), rtol=1e-5)


@pytest.mark.parametrize("T", [1, 7, 32])
def test_entropy_of_uniform_causal_attention(T):
    probs_BHTT = jnp.broadcast_to(centring_matrix(T, causal=True)[:, None], (2, 3, T, T))
    expected = np.mean(np.log(np.arange(1, T + 1)))
    np.testing.assert_allclose(D.attention_entropy(probs_BHTT), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(D.uniform_causal_entropy(T), expected, rtol=1e-12)


def test_entropy_one_hot_is_zero_and_respects_mask():
    # Very peaked logits: (near) one-hot rows have entropy ~0; the causal mask's zeros add nothing.
    q = jnp.ones((1, 4, 1, 2)) * 100.0
    k = jnp.stack([jnp.array([1.0, 1.0]) * i for i in range(4)])[None, :, None, :]
    probs = attention_probs(q, k, causal=True)
    chex.assert_shape(probs, (1, 1, 4, 4))
    assert float(D.attention_entropy(probs)) < 1e-3


def test_all_hidden_stats_present_and_finite():
    x = jax.random.normal(jax.random.key(4), (2, 8, 16))
    out = D.hidden_stats(x)
    assert set(out) == set(D.HIDDEN_STATS)
    assert all(np.isfinite(float(v)) for v in out.values())

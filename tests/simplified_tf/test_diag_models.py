"""Diagnostics on tiny models at init: the rank-collapse picture, attention entropy, scalar traces."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from simplified_tf import diagnostics as D
from trainloop.config_util import ConfigError

LAYERS, T = 8, 32
BETA_FF = 0.3  # non-default, so the traces must read the configured value


@pytest.fixture(scope="module")
def tokens():
    return jax.random.randint(jax.random.key(1), (4, T), 0, 256)


@pytest.fixture(scope="module")
def sas_p():
    cfg = D.diag_model_config("sas_p", "tiny", num_layers=LAYERS, beta_ff=BETA_FF)
    return D.init_model(cfg)


@pytest.fixture(scope="module")
def naive():
    return D.init_model(D.diag_model_config("naive_skipless", "tiny", num_layers=LAYERS))


def _params(model):
    return nnx.to_pure_dict(nnx.state(model))


def test_naive_variant_is_plain_softmax_sas():
    cfg = D.diag_model_config("naive_skipless", "tiny")
    assert (cfg.block, cfg.attention, cfg.zero_init_query, cfg.attn_skip) == (
        "sas",
        "softmax",
        False,
        False,
    )
    with pytest.raises(ConfigError, match="naive_skipless"):
        D.diag_model_config("naive", "tiny")


def test_shaped_attention_keeps_cosine_while_naive_collapses(sas_p, naive, tokens):
    p_sas = D.signal_profile(sas_p, tokens, causal=True)
    p_naive = D.signal_profile(naive, tokens, causal=True)
    for p in (p_sas, p_naive):
        assert p["cosine"].shape == (LAYERS + 1,)
    emb = p_sas["cosine"][0]
    np.testing.assert_allclose(p_naive["cosine"][0], emb, atol=1e-6)  # same embeddings
    assert abs(emb) < 0.1  # random tokens: nearly orthogonal
    np.testing.assert_array_less(np.abs(p_sas["cosine"] - emb), 0.05)
    assert p_naive["cosine"][1] > emb + 0.2  # already after one block
    assert p_naive["cosine"][-1] > 0.95
    assert p_naive["cosine"][-1] > p_naive["cosine"][LAYERS // 2] > p_naive["cosine"][1]
    # The reference's batch correlation sees the same collapse (pairs across sequences included).
    assert p_naive["batch_corr_mean"][-1] > 0.5 > abs(p_sas["batch_corr_mean"][-1])


def test_entropy_at_init_is_uniform_causal_for_shaped(sas_p, tokens):
    # Zero query weights and bias: every logit is 0, so A_h is uniform over the causal keys.
    ent = D.signal_profile(sas_p, tokens, causal=True)["entropy"]
    assert np.isnan(ent[0])  # no attention before the first block
    np.testing.assert_allclose(ent[1:], D.uniform_causal_entropy(T), rtol=1e-5)


def test_scalar_traces_at_init(sas_p):
    traces = D.scalar_traces(_params(sas_p))
    for layer in range(LAYERS):
        tag = f"scalars/layer{layer:02d}"
        for g in ("alpha_h", "beta_h", "gamma_h"):
            assert traces[f"{tag}/{g}_mean"] == 1.0
            assert traces[f"{tag}/{g}_std"] == 0.0
        np.testing.assert_allclose(traces[f"{tag}/beta_ff"], BETA_FF, rtol=1e-6)
        assert traces[f"{tag}/beta_sa"] == 1.0
        assert f"{tag}/alpha_ff" not in traces  # sas_p has no MLP skip
    # W_V_0 = alpha_V I + beta_V dW exists only in layer 0.
    assert traces["scalars/layer00/alpha_v"] == traces["scalars/layer00/beta_v"] == 1.0
    assert not any(k.endswith("_v") for k in traces if not k.startswith("scalars/layer00"))
    rows = D.scalar_table(_params(sas_p))
    assert [r["layer"] for r in rows] == list(range(LAYERS))


def test_scalar_traces_follow_the_stacked_layer_axis(sas_p, naive):
    params = _params(sas_p)
    beta = np.array(params["blocks"]["rest"]["attn"]["beta"])
    beta[2] = [0.5, 1.5]  # stacked index 2 = layer 3
    params["blocks"]["rest"]["attn"]["beta"] = beta
    traces = D.scalar_traces({"bert": params})  # any prefix before blocks/ is fine
    assert traces["scalars/layer03/beta_h_mean"] == 1.0
    assert traces["scalars/layer03/beta_h_std"] == 0.5
    assert traces["scalars/layer02/beta_h_std"] == 0.0
    # Plain-softmax sas: no shaped gains, but alpha_FF (sequential block with MLP skip).
    naive_traces = D.scalar_traces(_params(naive))
    assert naive_traces["scalars/layer05/alpha_ff"] == 1.0
    assert not any("_h_" in k for k in naive_traces)


def test_profile_from_params_and_bidirectional_entropy(sas_p, tokens):
    cfg = D.diag_model_config("sas_p", "tiny", num_layers=LAYERS, beta_ff=BETA_FF)
    params = _params(sas_p)
    w_qk = params["blocks"]["first"]["attn"]["w_qk"]
    params["blocks"]["first"]["attn"]["w_qk"] = w_qk + jax.random.normal(
        jax.random.key(0), w_qk.shape
    )
    model = D.model_from_params(cfg, params)
    np.testing.assert_array_equal(
        np.asarray(model.blocks.first.attn.w_qk[...]), params["blocks"]["first"]["attn"]["w_qk"]
    )
    ent = D.signal_profile(model, tokens, causal=False)["entropy"]
    # Layers >= 1 still have zero queries: uniform over all T keys (no causal mask); layer 0 now
    # has non-zero queries, so its attention is no longer uniform.
    np.testing.assert_allclose(ent[2:], np.log(T), rtol=1e-5)
    assert ent[1] < np.log(T) - 1e-3

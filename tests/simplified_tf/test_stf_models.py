"""Decoder/BERT models: causality, KV-cache decoding, scan vs unrolled, remat, bf16, padding."""

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from stf_helpers import padded_valid, tiny, tokens

from simplified_tf.model_config import BLOCKS


def _jitted(model, method="__call__", **kw):
    gd, state = nnx.split(model)

    @jax.jit
    def f(state, *args):
        return getattr(nnx.merge(gd, state), method)(*args, **kw)

    return lambda *args: f(state, *args)


@pytest.mark.parametrize("block", BLOCKS)
def test_decoder_is_causal(block):
    """d logits_t / d embedding_t' == 0 for t' > t, and != 0 for t' <= t (t = 4 of 8)."""
    model = tiny(block)
    gd, state = nnx.split(model)
    T, t = 8, 4
    x = jax.random.normal(jax.random.key(3), (2, T, 64))
    proj = jax.random.normal(jax.random.key(4), (model.embed.tokens.shape[0],))

    def output_t(x, state):
        m = nnx.merge(gd, state)
        h, _ = m.blocks(x, causal=True)
        return (m.embed.attend(m.final_norm(h))[:, t] @ proj).sum()

    influence = jnp.abs(jax.jit(jax.grad(output_t))(x, state)).sum((0, 2))  # (T,)
    chex.assert_trees_all_close(influence[t + 1 :], jnp.zeros(T - t - 1))
    assert float(influence[: t + 1].min()) > 0.0


@pytest.mark.parametrize("block", BLOCKS)
def test_kv_cache_decoding_matches_forward(block):
    model = tiny(block, num_layers=3)  # layer 0 plus a scan over two stacked layers
    toks = tokens(2, 12)
    full = _jitted(model)(toks)
    gd, state = nnx.split(model)

    @jax.jit
    def run(state, toks):
        m = nnx.merge(gd, state)

        def step(cache, inp):
            tok, pos = inp
            logits, cache = m.decode(tok[:, None], cache, pos)
            return cache, logits[:, 0]

        _, out = jax.lax.scan(step, m.init_cache(2, 16), (toks.T, jnp.arange(toks.shape[1])))
        return out.transpose(1, 0, 2)

    chex.assert_trees_all_close(run(state, toks), full, atol=1e-4, rtol=1e-4)


def test_scan_and_unrolled_layers_agree():
    scanned = tiny("sas", num_layers=3)
    unrolled = tiny("sas", num_layers=3, scan_layers=False)
    nnx.update(unrolled, nnx.state(scanned))
    toks = tokens(2, 10)
    chex.assert_trees_all_close(_jitted(unrolled)(toks), _jitted(scanned)(toks), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("block", ["sas", "pre_ln", "sas_p_nonorm"])
def test_remat_unrolled_gradients_agree(block):
    scanned = tiny(block, num_layers=3)
    unrolled = tiny(block, num_layers=3, scan_layers=False, remat=True)
    nnx.update(unrolled, nnx.state(scanned))
    toks = tokens(2, 10)

    def grads(model):
        gd, params, rest = nnx.split(model, nnx.Param, ...)
        return jax.jit(jax.grad(lambda p, r: nnx.merge(gd, p, r)(toks).mean()))(params, rest)

    chex.assert_trees_all_close(grads(unrolled), grads(scanned), atol=1e-6)


def test_bfloat16_compute_is_close():
    f32 = tiny("sas_p", num_layers=3)
    bf16 = tiny("sas_p", num_layers=3, dtype="bfloat16")
    nnx.update(bf16, nnx.state(f32))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(bf16, nnx.Param)))
    toks = tokens(2, 16)
    a, b = _jitted(f32)(toks), _jitted(bf16)(toks)
    assert b.dtype == jnp.float32 and bool(jnp.isfinite(b).all())
    rel = jnp.linalg.norm(a - b) / jnp.linalg.norm(a)
    assert float(rel) < 0.05, float(rel)


@pytest.mark.parametrize("block", ["sas_p", pytest.param("pre_ln", marks=pytest.mark.slow)])
def test_bert_padding_is_ignored(block):
    """Changing padded tokens changes nothing at valid positions (softmax, I and C terms)."""
    model = tiny(block, kind="bert")
    toks = tokens(2, 12)
    valid = padded_valid(2, 12, [12, 7])
    other = jnp.where(valid, toks, (toks + 17) % 256)
    f = _jitted(model)
    a, b = f(toks, valid), f(other, valid)
    chex.assert_trees_all_close(a[1, :7], b[1, :7], atol=1e-5)
    chex.assert_trees_all_close(a[0], b[0])
    assert float(jnp.abs(f(toks, None)[1, :7] - a[1, :7]).max()) > 1e-3  # the mask matters


def test_bert_reference_attention_impl_matches():
    eff = tiny("sas", kind="bert")
    ref = tiny("sas", kind="bert", attn_impl="reference")
    nnx.update(ref, nnx.state(eff))
    toks, valid = tokens(2, 12), padded_valid(2, 12, [12, 5])
    a, b = _jitted(eff)(toks, valid), _jitted(ref)(toks, valid)
    chex.assert_trees_all_close(a * valid[..., None], b * valid[..., None], atol=1e-4)


def test_intermediates_for_diagnostics():
    model = tiny("sas", num_layers=3)
    toks = tokens(2, 8)
    logits, aux = _jitted(model, return_hidden=True, return_probs=True)(toks)
    chex.assert_shape(aux["hidden"], (4, 2, 8, 64))
    chex.assert_shape(aux["probs"], (3, 2, 2, 8, 8))
    chex.assert_trees_all_close(aux["probs"].sum(-1), jnp.ones((3, 2, 2, 8)), atol=1e-5)
    assert float(jnp.triu(aux["probs"], k=1).max()) == 0.0  # causal
    chex.assert_trees_all_close(aux["hidden"][0], model.embed(toks))
    again = model.embed.attend(model.final_norm(aux["hidden"][-1]))
    chex.assert_trees_all_close(again, logits, atol=1e-5)


def test_dropout_only_with_rng():
    model = tiny("sas", dropout=0.5)
    toks = tokens(2, 8)
    f = _jitted(model)
    chex.assert_trees_all_close(f(toks), f(toks))
    gd, state = nnx.split(model)
    noisy = jax.jit(lambda s, r: nnx.merge(gd, s)(toks, rng=r))(state, jax.random.key(0))
    assert float(jnp.abs(noisy - f(toks)).max()) > 1e-3


def test_classifier_head():
    from simplified_tf.model_config import model_config
    from simplified_tf.models import build_classifier

    clf = build_classifier(model_config("sas_p", "tiny", "bert"), 3, rngs=nnx.Rngs(0))
    out = clf(tokens(2, 8), padded_valid(2, 8, [8, 4]))
    chex.assert_shape(out, (2, 3))

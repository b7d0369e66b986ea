"""The parallel block's fused input matmul (h [W_qk | W_1]) changes speed, not values or gradients."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from simplified_tf import blocks
from tests.simplified_tf.stf_helpers import tiny, tokens


def _loss_and_grads(model, toks):
    """(loss, logits, grads, jaxpr text) of `model` on `toks`."""
    graphdef, state = nnx.split(model)

    def loss(st):
        logits = nnx.merge(graphdef, st)(toks)
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1)), logits

    fn = jax.value_and_grad(loss, has_aux=True)
    jaxpr = str(jax.make_jaxpr(fn)(state))
    (val, logits), grads = jax.jit(fn)(state)
    return val, logits, nnx.to_pure_dict(grads), jaxpr


@pytest.mark.parametrize("block", ["parallel", "sas_p"])
def test_fused_parallel_inputs_match_separate_matmuls(block, monkeypatch):
    monkeypatch.setattr(blocks, "FUSE_MIN_TOKENS_PER_WIDTH", 0)
    toks = tokens(2, 16)
    v0, l0, g0, jaxpr0 = _loss_and_grads(tiny(block, fuse_parallel_inputs=False), toks)
    v1, l1, g1, jaxpr1 = _loss_and_grads(tiny(block), toks)  # the default: fused
    # the fused program really differs: one concatenated weight per block
    assert jaxpr1.count("concatenate") > jaxpr0.count("concatenate")
    chex.assert_trees_all_close(l1, l0, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(v1, v0, atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(g1, g0, atol=1e-5, rtol=1e-4)

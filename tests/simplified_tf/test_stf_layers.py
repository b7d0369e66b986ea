"""RMSNorm: the hand-written backward pass against autodiff of the formula; the A/B switch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simplified_tf.layers import rms_norm


def _formula(x, scale, eps, outside):
    ms = jnp.mean(x * x, axis=-1, keepdims=True)
    return (x / (jnp.sqrt(ms) + eps) if outside else x * jax.lax.rsqrt(ms + eps)) * scale


@pytest.mark.parametrize("outside", [True, False])
def test_rms_norm_value_and_gradients_match_autodiff(outside):
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(k[0], (3, 5, 16), jnp.float64)
        scale = jax.random.normal(k[1], (16,), jnp.float64)
        w = jax.random.normal(k[2], (3, 5, 16), jnp.float64)

        def grads(fn):
            loss = lambda x, s: jnp.sum(jnp.sin(fn(x, s, 1e-5, outside)) * w)
            return jax.grad(loss, argnums=(0, 1))(x, scale)

        np.testing.assert_allclose(
            rms_norm(x, scale, 1e-5, outside), _formula(x, scale, 1e-5, outside), rtol=1e-13
        )
        for got, want in zip(grads(rms_norm), grads(_formula), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
        # An all-zero row (autodiff of sqrt at 0 gives NaN there) gets a finite gradient.
        g0 = jax.grad(lambda x: jnp.sum(rms_norm(x, scale, 1e-5, outside) * w))(x.at[0, 0].set(0))
        assert bool(jnp.all(jnp.isfinite(g0)))


@pytest.mark.parametrize("placement", ["outside", "inside"])
def test_norm_autodiff_backward_changes_no_value_or_gradient(placement):
    """benchmarks/ab.py times model.rmsnorm_grad=autodiff as the 'before' of the custom backward."""
    from flax import nnx

    from simplified_tf import layers

    x = jax.random.normal(jax.random.key(2), (2, 3, 16))
    scale = jax.random.normal(jax.random.key(1), (16,))

    def value_grads_and_jaxpr(grad):
        norm = layers.Norm("rmsnorm", 16, 1e-5, placement, grad)
        norm.scale[...] = scale
        graphdef, state = nnx.split(norm)
        loss = lambda s, x: jnp.sum(jnp.cos(nnx.merge(graphdef, s)(x)))
        jaxpr = str(jax.make_jaxpr(lambda x: nnx.merge(graphdef, state)(x))(x))
        return jax.value_and_grad(loss, argnums=(0, 1))(state, x), jaxpr

    custom, custom_jaxpr = value_grads_and_jaxpr("custom")
    autodiff, autodiff_jaxpr = value_grads_and_jaxpr("autodiff")
    assert "custom_vjp" in custom_jaxpr and "custom_vjp" not in autodiff_jaxpr
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), custom, autodiff
    )

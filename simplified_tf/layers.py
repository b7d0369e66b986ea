"""Small building blocks: fixed variables, gains, norms, dense/identity/reparameterised maps, MLP.

Conventions (docs/simplified_tf.md section 1): linear maps act on the right (x @ W,
W in R^{in x out}); params are float32
and are cast to the activation dtype at use; norms compute in float32. Nothing here has a bias except
LayerNorm (the MLP and W_V/W_P are bias-free).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

F32 = jnp.float32


class Fixed(nnx.Variable):
    """A non-trainable array that is *not* a parameter (not in the params dict, no optimiser state).

    Used for the fixed W_init of reparameterised W_V/W_P and for fixed per-layer reparam gains. Its
    value is a deterministic function of the model config (`reparam_seed`), so it is regenerated
    when the model is rebuilt and never needs checkpointing (docs/simplified_tf.md section 4).
    """


def normal(rngs: nnx.Rngs, shape, std: float) -> jax.Array:
    return std * jax.random.normal(rngs.params(), shape, F32)


def _haar_orthogonal(z: np.ndarray) -> np.ndarray:
    """Q of the QR of Gaussian matrices, signs fixed by diag(R): Haar-distributed orthogonal."""
    q, r = np.linalg.qr(np.asarray(z, np.float64))
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    return (q * signs[..., None, :]).astype(np.float32)


def orthogonal(key: jax.Array, n: int) -> jax.Array:
    """A random n x n orthogonal matrix (gain 1).

    The QR runs on the host (numpy) through a callback instead of jaxlib's LAPACK custom call: with
    jaxlib 0.10.2 on CPU, two batched QRs in one jitted program (W_V and W_P of stacked layers, as in
    v_skipinit's init under `jit`) deadlock inside LAPACK. The distribution is the same.
    """
    z = jax.random.normal(key, (n, n), F32)
    out = jax.ShapeDtypeStruct((n, n), F32)
    return jax.pure_callback(_haar_orthogonal, out, z, vmap_method="expand_dims")


def gain(init, trainable: bool, shape=()):
    """A trainable scalar/vector gain (nnx.Param) or a fixed Python float (creates nothing)."""
    if trainable:
        return nnx.Param(jnp.full(shape, init, F32))
    return float(init)


def read(g, dtype) -> jax.Array | float:
    """The value of a gain made by `gain` (or a Fixed variable), cast to `dtype`."""
    if isinstance(g, nnx.Variable):
        return g[...].astype(dtype)
    return g


class Norm(nnx.Module):
    """RMSNorm or LayerNorm over the last axis, computed in float32.

    RMSNorm(x) = g * x / (sqrt(mean x^2) + eps) with eps `outside` the root (reference code), or
    g * x / sqrt(mean x^2 + eps) with eps `inside`. LayerNorm has scale and bias (init 1 / 0).
    """

    def __init__(
        self, kind: str, width: int, eps: float, placement: str = "outside", grad: str = "custom"
    ):
        self.kind = kind
        self.grad = grad  # RMSNorm backward: "custom" (rms_norm's VJP) or "autodiff"
        self.eps = float(eps)
        self.placement = placement
        self.scale = nnx.Param(jnp.ones((width,), F32))
        if kind == "layernorm":
            self.bias = nnx.Param(jnp.zeros((width,), F32))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(F32)
        if self.kind == "rmsnorm":
            norm = rms_norm if self.grad == "custom" else _rms_norm_autodiff
            y = norm(x32, self.scale[...], self.eps, self.placement == "outside")
        else:
            mu = jnp.mean(x32, axis=-1, keepdims=True)
            var = jnp.mean(jnp.square(x32 - mu), axis=-1, keepdims=True)
            y = (x32 - mu) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)


def _rms_norm_autodiff(x, scale, eps, outside):
    return _rms_norm_fwd(x, scale, eps, outside)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def rms_norm(x: jax.Array, scale: jax.Array, eps: float, outside: bool) -> jax.Array:
    """scale * x / (sqrt(mean x^2) + eps) (`outside`) or scale * x / sqrt(mean x^2 + eps), over the
    last axis, with a hand-written backward pass.

    Autodiff of the formula keeps several per-row intermediates and runs a chain of elementwise and
    reduction ops over the activations; the backward here is one row reduction and one elementwise
    pass: with r = 1 / rms, dx = r (g*dy) - x r^2 sum(g*dy*x) / (D rms) (outside; inside the last
    factor is r^3 / D), dscale = sum over tokens of dy * x * r. About 5% of a decoder train step on
    a 2-core CPU (benchmarks/ab.py).
    """
    return _rms_norm_fwd(x, scale, eps, outside)[0]


def _rms_norm_fwd(x, scale, eps, outside):
    ms = jnp.mean(x * x, axis=-1, keepdims=True)
    if outside:
        rms = jnp.sqrt(ms)
        inv = 1.0 / (rms + eps)
    else:
        rms = None
        inv = jax.lax.rsqrt(ms + eps)
    return x * inv * scale, (x, inv, rms, scale)


def _rms_norm_bwd(eps, outside, res, dy):
    x, inv, rms, scale = res
    gs = dy * scale
    dot = jnp.sum(gs * x, axis=-1, keepdims=True)
    if outside:  # d inv / d x_j = -inv^2 x_j / (D rms); an all-zero row has no such term
        coef = jnp.where(rms > 0, dot * inv * inv / (x.shape[-1] * rms), 0.0)
    else:  # d inv / d x_j = -inv^3 x_j / D
        coef = dot * inv * inv * inv / x.shape[-1]
    dx = gs * inv - x * coef
    dscale = jnp.sum((dy * x * inv).reshape(-1, x.shape[-1]), axis=0)
    return dx, dscale.astype(scale.dtype)


rms_norm.defvjp(_rms_norm_fwd, _rms_norm_bwd)


def make_norm(
    kind: str, width: int, eps: float, placement: str = "outside", grad: str = "custom"
) -> Norm | None:
    """A Norm, or None for kind 'none'/'' (no parameters, identity map)."""
    if kind in ("none", ""):
        return None
    return Norm(kind, width, eps, placement, grad)


def apply_norm(norm: Norm | None, x: jax.Array) -> jax.Array:
    return x if norm is None else norm(x)


class Dense(nnx.Module):
    """Bias-free d x d map with N(0, std^2) or orthogonal (gain 1) init."""

    def __init__(self, width: int, init: str, std: float, *, rngs: nnx.Rngs):
        if init == "orth":
            w = orthogonal(rngs.params(), width)
        else:
            w = normal(rngs, (width, width), std)
        self.w = nnx.Param(w)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.w[...].astype(x.dtype)


class Reparam(nnx.Module):
    """W = alpha * W_init + beta * dW (paper Eq. 6): dW trainable (init 0, decayed), W_init fixed.

    alpha and beta are per-layer scalars, trainable Params `alpha`/`beta` (no decay) or `Fixed`
    variables `alpha_fixed`/`beta_fixed`. An
    identity W_init is never materialised: x @ W = alpha * x + beta * (x @ dW). Orthogonal and
    Gaussian (N(0, 1/d)) W_init are regenerated from `key` (derived from `reparam_seed`).
    """

    def __init__(self, width: int, w_init: str, alpha, beta, trainable: bool, key: jax.Array):
        self.w_init_kind = w_init
        self.delta = nnx.Param(jnp.zeros((width, width), F32))
        if trainable:
            self.alpha = nnx.Param(jnp.asarray(alpha, F32))
            self.beta = nnx.Param(jnp.asarray(beta, F32))
        else:  # distinct names, so path rules (optimizer.frozen) can tell them from params
            self.alpha_fixed = Fixed(jnp.asarray(alpha, F32))
            self.beta_fixed = Fixed(jnp.asarray(beta, F32))
        if w_init == "orth":
            self.w_init = Fixed(orthogonal(key, width))
        elif w_init == "normal":
            self.w_init = Fixed(jax.random.normal(key, (width, width), F32) / jnp.sqrt(width))

    def _gains(self):
        if hasattr(self, "alpha"):
            return self.alpha[...], self.beta[...]
        return self.alpha_fixed[...], self.beta_fixed[...]

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        alpha, beta = self._gains()
        if self.w_init_kind == "identity":
            return alpha.astype(dt) * x + beta.astype(dt) * (x @ self.delta[...].astype(dt))
        w = alpha * self.w_init[...] + beta * self.delta[...]
        return x @ w.astype(dt)


class MLP(nnx.Module):
    """act(x W_1) W_2, bias-free. relu = leaky relu (slope `relu_slope`, default 0); gelu; glu_gelu
    splits x W_1 (d_ff wide) into halves (x_a, x_g) and uses x_a * gelu(x_g) (Cramming's GLU), so
    W_2 maps d_ff/2 -> d."""

    def __init__(
        self,
        width: int,
        d_ff: int,
        activation: str,
        relu_slope: float,
        std: float,
        *,
        rngs: nnx.Rngs,
    ):
        self.activation = activation
        self.relu_slope = float(relu_slope)
        hidden = d_ff // 2 if activation == "glu_gelu" else d_ff
        self.w_1 = nnx.Param(normal(rngs, (width, d_ff), std))
        self.w_2 = nnx.Param(normal(rngs, (hidden, width), std))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.from_hidden(x @ self.w_1[...].astype(x.dtype))

    def from_hidden(self, h: jax.Array) -> jax.Array:
        """act(h) W_2 for a precomputed h = x W_1 (the parallel block fuses x W_1 with x W_qk)."""
        if self.activation == "relu":
            h = jnp.where(h >= 0, h, self.relu_slope * h)
        elif self.activation == "gelu":
            h = jax.nn.gelu(h)
        else:
            h_a, h_g = jnp.split(h, 2, axis=-1)
            h = h_a * jax.nn.gelu(h_g)
        return h @ self.w_2[...].astype(h.dtype)


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
    """Inverted dropout; identity when rate is 0 or no rng is given (evaluation)."""
    if rng is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)

"""Multi-head attention: standard softmax and shaped attention (paper Sec. 4.1, Eq. 5;
docs/simplified_tf.md section 3).

Shaped attention, per head h:   out_h = Ã_h V_h,   Ã_h = α_h I + β_h A_h − γ_h C,
where A_h = softmax(Q_h K_hᵀ/sqrt(d_h) + M) and C = softmax(M) (the attention matrix with all logits
zero: causal rows 1/i over j <= i, bidirectional rows 1/T, uniform over *valid* keys under padding).
Ã_h multiplies the values V_h; with W_V = I (sas, layers >= 1) V_h is slice h of the normalised
block input, and with W_P = I the heads are concatenated without a projection.

The default ("efficient") path never builds T x T copies of I or C:
    out_h = β_h (A_h V_h) + α_h V_h − γ_h (C V_h)
with A_h V_h from `jax.nn.dot_product_attention` (softmax in fp32) and C V_h a running mean (fp32
cumsum / count of valid keys). The "reference" path materialises the matrices and is for tests.
Padded query rows (valid=False) output 0. With zero query weights and bias, A_h = C exactly, so at
init Ã_h = α_h I = I.

KV-cache decoding: a query at 0-indexed position p attends keys 0..p; the identity term is V_p and
the centring term is (running sum of V_0..V_p) / (p + 1), so the cache holds k, v and v_sum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from simplified_tf import layers
from simplified_tf.model_config import implementation

F32 = jnp.float32


def token_cumsum(x: jax.Array, impl: str = "blocked") -> jax.Array:
    """Cumulative sum over axis 1 (tokens); `impl` "blocked" (below) or "xla" (jnp.cumsum).

    XLA CPU lowers `jnp.cumsum` over T tokens to a reduce_window of width T: T²/2 adds per channel,
    forward and backward. Split into blocks of about sqrt(T) tokens: a cumsum inside each block and
    one over the block totals, about 2·T^1.5 adds; same sums, another summation order.
    """
    T = x.shape[1]
    blk = next((b for b in range(int(T**0.5), 1, -1) if T % b == 0), 1)
    if impl == "xla" or blk == 1:
        return jnp.cumsum(x, axis=1)
    xb = x.reshape(x.shape[0], T // blk, blk, *x.shape[2:])
    within = jnp.cumsum(xb, axis=2)
    totals = within[:, :, -1:]
    return (within + (jnp.cumsum(totals, axis=1) - totals)).reshape(x.shape)


# ----------------------------------------------------------------------------- pure functions


def key_mask(T: int, *, causal: bool, valid_BT: jax.Array | None) -> jax.Array | None:
    """Boolean mask (B or 1, 1, T, T): query i may attend key j. None = everything allowed."""
    mask = None
    if causal:
        mask = jnp.tril(jnp.ones((T, T), bool))[None, None]
    if valid_BT is not None:
        vm = valid_BT[:, None, None, :].astype(bool)
        mask = vm if mask is None else (mask & vm)
    return mask


def softmax_av(q_BTHK, k_BSHK, v_BSHK, mask) -> jax.Array:
    """A V with A = softmax(q kᵀ / sqrt(K) + M) (fp32 softmax inside dot_product_attention)."""
    return jax.nn.dot_product_attention(q_BTHK, k_BSHK, v_BSHK, mask=mask)


def attention_probs(q_BTHK, k_BTHK, *, causal: bool, valid_BT=None) -> jax.Array:
    """The (unshaped) softmax attention matrix A, shape (B, H, T, T), float32."""
    K = q_BTHK.shape[-1]
    logits = jnp.einsum("bthk,bshk->bhts", q_BTHK.astype(F32), k_BTHK.astype(F32)) / jnp.sqrt(K)
    mask = key_mask(q_BTHK.shape[1], causal=causal, valid_BT=valid_BT)
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1)
    return jnp.nan_to_num(probs)  # fully masked (padded) rows -> 0


def centring_mean(
    v_BTHK: jax.Array, *, causal: bool, valid_BT=None, cumsum_impl: str = "blocked"
) -> jax.Array:
    """C V without building C: causal running mean or (masked) sequence mean, in float32."""
    v = v_BTHK.astype(F32)
    T = v.shape[1]
    if valid_BT is None:
        w_BT = jnp.ones((1, T), F32)
    else:
        w_BT = valid_BT.astype(F32)
        v = v * w_BT[:, :, None, None]
    if causal:
        num = token_cumsum(v, cumsum_impl)
        den = token_cumsum(w_BT, cumsum_impl)
    else:
        num = jnp.sum(v, axis=1, keepdims=True)
        den = jnp.sum(w_BT, axis=1, keepdims=True)
    return (num / jnp.maximum(den, 1.0)[:, :, None, None]).astype(v_BTHK.dtype)


def centring_matrix(T: int, *, causal: bool, valid_BT=None) -> jax.Array:
    """C = softmax(M) row-wise as an explicit (B or 1, T, T) matrix (reference path only)."""
    mask = key_mask(T, causal=causal, valid_BT=valid_BT)
    if mask is None:
        return jnp.full((1, T, T), 1.0 / T, F32)
    m = mask[:, 0].astype(F32)
    return m / jnp.maximum(m.sum(-1, keepdims=True), 1.0)


def _head_gain(g, dtype):
    """Gain broadcast over (B, T, H, K): (H,) -> (H, 1); scalars unchanged."""
    g = layers.read(g, dtype)
    return g[:, None] if getattr(g, "ndim", 0) == 1 else g


def shaped_efficient(
    q, k, v, *, alpha, beta, gamma, causal: bool, valid_BT=None, cumsum_impl: str = "blocked"
) -> jax.Array:
    """β (A v) + α v − γ (C v); a gain of None drops its term. Shapes (B, T, H, K)."""
    mask = key_mask(q.shape[1], causal=causal, valid_BT=valid_BT)
    if causal and valid_BT is None:
        out = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    else:
        out = softmax_av(q, k, v, mask)
    out = _head_gain(beta, v.dtype) * out
    if alpha is not None:
        out = out + _head_gain(alpha, v.dtype) * v
    if gamma is not None:
        centred = centring_mean(v, causal=causal, valid_BT=valid_BT, cumsum_impl=cumsum_impl)
        out = out - _head_gain(gamma, v.dtype) * centred
    return out


def shaped_reference(q, k, v, *, alpha, beta, gamma, causal: bool, valid_BT=None) -> jax.Array:
    """(α I + β A − γ C) v with explicit T x T matrices, float32. For tests only."""
    B, T, H, _ = q.shape
    A = attention_probs(q, k, causal=causal, valid_BT=valid_BT)  # (B, H, T, T)

    def per_head(g):
        g = jnp.asarray(layers.read(g, F32), F32)
        return jnp.broadcast_to(g, (H,))[None, :, None, None]

    mat = per_head(beta) * A
    if alpha is not None:
        mat = mat + per_head(alpha) * jnp.eye(T, dtype=F32)[None, None]
    if gamma is not None:
        C = centring_matrix(T, causal=causal, valid_BT=valid_BT)[:, None]
        mat = mat - per_head(gamma) * C
    return jnp.einsum("bhts,bshk->bthk", mat, v.astype(F32)).astype(v.dtype)


# ----------------------------------------------------------------------------- module


def _vp_map(kind: str, cfg, *, alpha, beta, key, rngs):
    if kind == "identity":
        return None
    if kind == "dense":
        return layers.Dense(cfg.width, cfg.vp_init, cfg.init_std, rngs=rngs)
    return layers.Reparam(cfg.width, cfg.reparam_init, alpha, beta, cfg.reparam_train, key)


class Attention(nnx.Module):
    """Fused-QK multi-head attention (softmax or shaped) with optional W_V / W_P.

    Params: `w_qk` (d, 2d; columns [0, d) queries, [d, 2d) keys), `b_qk` (2d, zero init), `value` and
    `proj` (Dense `w`, Reparam `delta/alpha/beta`, or absent for identity), and for shaped attention
    the gains `alpha` (if the identity term is on), `beta`, `gamma` (if the centring term is on).

    `layer` is this block's index (an int, or a traced int inside the stacked-layer vmap); it picks
    the layer-0 value kind (static `is_first`), the last-layer β_P override and the W_init seed.
    """

    def __init__(self, cfg: ml_collections.ConfigDict, *, layer, is_first: bool, rngs: nnx.Rngs):
        d, H = cfg.width, cfg.num_heads
        self.num_heads = H
        self.head_dim = d // H
        self.shaped = cfg.attention == "shaped"
        self.impl = cfg.attn_impl
        self.cumsum_impl = implementation(cfg, "cumsum_impl")
        std = cfg.init_std
        w_q = jnp.zeros((d, d), F32) if cfg.zero_init_query else layers.normal(rngs, (d, d), std)
        w_k = layers.normal(rngs, (d, d), std)
        self.w_qk = nnx.Param(jnp.concatenate([w_q, w_k], axis=1))
        self.b_qk = nnx.Param(jnp.zeros((2 * d,), F32)) if cfg.qk_bias else None

        seed_key = jax.random.fold_in(jax.random.key(cfg.reparam_seed), layer)
        value_kind = (cfg.value_layer0 or cfg.value) if is_first else cfg.value
        beta_v = (
            cfg.reparam_beta_v0 if (is_first and cfg.reparam_beta_v0 >= 0) else cfg.reparam_beta
        )
        self.value = _vp_map(
            value_kind,
            cfg,
            alpha=cfg.reparam_alpha,
            beta=beta_v,
            key=jax.random.fold_in(seed_key, 0),
            rngs=rngs,
        )
        beta_p = cfg.reparam_beta
        if cfg.reparam_beta_p_last >= 0:
            beta_p = jnp.where(layer == cfg.num_layers - 1, cfg.reparam_beta_p_last, beta_p)
        self.proj = _vp_map(
            cfg.proj,
            cfg,
            alpha=cfg.reparam_alpha,
            beta=beta_p,
            key=jax.random.fold_in(seed_key, 1),
            rngs=rngs,
        )

        alpha = beta = gamma = None
        if self.shaped:
            shape = (H,) if cfg.attn_gains == "per_head" else ()
            train = cfg.train_attn_gains
            vskip = cfg.attn_matrix == "vskipinit"
            beta = layers.gain(0.0 if vskip else cfg.attn_beta_init, train, shape)
            if cfg.attn_identity:
                alpha = layers.gain(cfg.attn_alpha_init, train, shape)
            if cfg.attn_centre and not vskip:
                gamma = layers.gain(cfg.attn_gamma_init, train, shape)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    # -- projections
    def _qkv(self, x_BTD, qk=None):
        """q, k, v (B, T, H, K); `qk` = x W_qk when the caller already computed it (bias not added)."""
        B, T, D = x_BTD.shape
        H, dt = self.num_heads, x_BTD.dtype
        if qk is None:
            qk = x_BTD @ self.w_qk[...].astype(dt)
        if self.b_qk is not None:
            qk = qk + self.b_qk[...].astype(dt)
        q, k = jnp.split(qk, 2, axis=-1)
        v = x_BTD if self.value is None else self.value(x_BTD)
        shape = (B, T, H, D // H)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _out(self, o_BTHK):
        B, T = o_BTHK.shape[:2]
        o = o_BTHK.reshape(B, T, -1)
        return o if self.proj is None else self.proj(o)

    def __call__(
        self, x_BTD, *, causal: bool, valid_BT=None, return_probs: bool = False, qk_BTE=None
    ):
        """Returns (out_BTD, probs_BHTT or None). Padded query rows give 0.

        `qk_BTE` (E = 2d): x W_qk computed by the caller (the parallel block fuses it with the MLP's
        input matmul); None computes it here.
        """
        q, k, v = self._qkv(x_BTD, qk_BTE)
        gains = dict(alpha=self.alpha, beta=self.beta, gamma=self.gamma)
        if not self.shaped:
            if causal and valid_BT is None:
                o = jax.nn.dot_product_attention(q, k, v, is_causal=True)
            else:
                o = softmax_av(q, k, v, key_mask(q.shape[1], causal=causal, valid_BT=valid_BT))
        elif self.impl == "reference":
            o = shaped_reference(q, k, v, causal=causal, valid_BT=valid_BT, **gains)
        else:
            o = shaped_efficient(
                q, k, v, causal=causal, valid_BT=valid_BT, cumsum_impl=self.cumsum_impl, **gains
            )
        if valid_BT is not None:
            o = o * valid_BT[:, :, None, None].astype(o.dtype)
        probs = attention_probs(q, k, causal=causal, valid_BT=valid_BT) if return_probs else None
        return self._out(o), probs

    # -- incremental decoding
    def init_cache(self, batch: int, max_len: int, dtype) -> dict:
        K = self.head_dim
        shape = (batch, max_len, self.num_heads, K)
        cache = dict(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))
        if self.gamma is not None:
            cache["v_sum"] = jnp.zeros((batch, 1, self.num_heads, K), F32)
        return cache

    def decode(self, x_B1D, cache: dict, pos):
        """One causal step for the token at 0-indexed position `pos` (same for the whole batch)."""
        q, k, v = self._qkv(x_B1D)
        S = cache["k"].shape[1]
        k_c = jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (0, pos, 0, 0))
        v_c = jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (0, pos, 0, 0))
        new = dict(k=k_c, v=v_c)
        mask = (jnp.arange(S) <= pos)[None, None, None, :]
        o = softmax_av(q, k_c.astype(q.dtype), v_c.astype(q.dtype), mask)
        if self.shaped:
            o = _head_gain(self.beta, v.dtype) * o
            if self.alpha is not None:
                o = o + _head_gain(self.alpha, v.dtype) * v
            if self.gamma is not None:
                v_sum = cache["v_sum"] + v.astype(F32)
                new["v_sum"] = v_sum
                mean = v_sum / (jnp.asarray(pos, F32) + 1.0)
                o = o - _head_gain(self.gamma, v.dtype) * mean.astype(v.dtype)
        return self._out(o), new

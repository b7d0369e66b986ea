"""Transformer blocks (paper Eqs. 1 and 7; docs/simplified_tf.md section 2). One `Block` class
covers every preset through the config.

Forward formulas (N1/N2 = norm1/norm2, absent norms are the identity, absent gains drop the term):
  sequential:  X̂ = α_SA·X + β_SA·MHA(N1(X));        X_out = α_FF·X̂ + β_FF·MLP(N2(X̂))
  parallel:    X_out = α_comb·X + β_SA·MHA(N1(X)) + β_FF·MLP(N1(X))          (no N2)
  post_ln:     X' = N1(X); X̂ = N2(β_SA·MHA(X') + α_SA·X');  X_out = α_FF·X̂ + β_FF·MLP(X̂)
α_SA / α_comb is 1 when `attn_skip` is on, absent otherwise; α_FF exists only with `mlp_skip`
(trainable with `train_alpha_ff`); β_SA and β_FF are trainable scalars (`train_beta_sa`,
`train_beta_ff`, init 1 and `beta_ff`) or fixed constants. Fixed gains are Python floats, so they
create no parameter (docs/simplified_tf.md section 5, "Dead parameters").

Layer 0 (`is_first`) may differ: its value map is `value_layer0` (sas: W_V_0 = α_V·I + β_V·ΔW) and,
with `norm='none'`, its N1 is `first_norm` (sas_p_nonorm: a LayerNorm on the embeddings).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from simplified_tf import layers
from simplified_tf.attention import Attention
from simplified_tf.model_config import implementation

# Parallel blocks compute h W_qk and h W_1 as one matmul in the full-sequence forward (see
# `Block._forward`) when a step has at least FUSE_MIN_TOKENS_PER_WIDTH x d tokens, unless the model
# config sets the implementation choice fuse_parallel_inputs=False (it changes speed, not the
# model). The concatenated weight (and splitting its gradient) costs a copy per step, the wider GEMM
# saves time per token. A/B on a 2-core CPU (paired rounds, noise ~5%; before the concatenation was
# rematerialised): sas_p step time -9% at 512 tokens x d=256, +7% at 256 tokens x d=512.
FUSE_MIN_TOKENS_PER_WIDTH = 2


@jax.checkpoint
def _fused_matmul(h, w_a, w_b):
    """h [w_a | w_b]. Rematerialised, so autodiff (inside a scan over layers) keeps h, w_a and w_b
    as residuals, not a stacked copy of the concatenated weight; the backward pass redoes the
    concatenation and the product, which is cheaper than zero-filling and writing that copy."""
    return h @ jnp.concatenate([w_a, w_b], axis=1).astype(h.dtype)


class Block(nnx.Module):
    def __init__(self, cfg: ml_collections.ConfigDict, *, layer, is_first: bool, rngs: nnx.Rngs):
        d = cfg.width
        self.structure = cfg.structure
        self.fuse_inputs = bool(implementation(cfg, "fuse_parallel_inputs"))
        self.attn_skip = bool(cfg.attn_skip)
        self.dropout_rate = float(cfg.dropout)
        self.attn = Attention(cfg, layer=layer, is_first=is_first, rngs=rngs)
        self.mlp = layers.MLP(d, cfg.d_ff, cfg.activation, cfg.relu_slope, cfg.init_std, rngs=rngs)
        kind1 = cfg.norm
        eps1 = cfg.norm_eps
        if cfg.norm == "none" and is_first and cfg.first_norm:
            kind1, eps1 = cfg.first_norm, cfg.first_norm_eps
        grad = implementation(cfg, "rmsnorm_grad")
        self.norm1 = layers.make_norm(kind1, d, eps1, cfg.rms_eps_placement, grad)
        self.norm2 = (
            layers.make_norm(cfg.norm, d, cfg.norm_eps, cfg.rms_eps_placement, grad)
            if cfg.structure != "parallel"
            else None
        )
        self.beta_sa = layers.gain(1.0, cfg.train_beta_sa)
        self.beta_ff = layers.gain(cfg.beta_ff, cfg.train_beta_ff)
        has_alpha_ff = cfg.structure != "parallel" and cfg.mlp_skip
        self.alpha_ff = layers.gain(1.0, cfg.train_alpha_ff) if has_alpha_ff else None

    def _forward(self, x, attn_fn, rngs, fuse_inputs: bool = False):
        """Shared skeleton; `attn_fn(h, qk) -> (out, extra)` is the (full or cached) attention.

        With `fuse_inputs` (parallel structure only, enough tokens; see FUSE_MIN_TOKENS_PER_WIDTH)
        both branches' input matmuls run as one: h [W_qk | W_1], split into the attention's qk and
        the MLP's hidden pre-activation. One wider GEMM (and one for each gradient) instead of two:
        same values, better GEMM efficiency at the small token counts of CPU training.
        """
        dt = x.dtype
        r_attn, r_mlp = rngs
        beta_sa = layers.read(self.beta_sa, dt)
        beta_ff = layers.read(self.beta_ff, dt)

        def attn_branch(h, qk=None):
            a, extra = attn_fn(h, qk)
            return beta_sa * layers.dropout(a, self.dropout_rate, r_attn), extra

        def mlp_branch(h, hidden=None):
            m = self.mlp(h) if hidden is None else self.mlp.from_hidden(hidden)
            return beta_ff * layers.dropout(m, self.dropout_rate, r_mlp)

        def mlp_skip(xh, m):
            if self.alpha_ff is None:
                return m
            return layers.read(self.alpha_ff, dt) * xh + m

        h = layers.apply_norm(self.norm1, x)
        if self.structure == "parallel":
            qk = hidden = None
            tokens = h.size // h.shape[-1]
            if fuse_inputs and tokens >= FUSE_MIN_TOKENS_PER_WIDTH * h.shape[-1]:
                w_qk = self.attn.w_qk[...]
                qk, hidden = jnp.split(
                    _fused_matmul(h, w_qk, self.mlp.w_1[...]), [w_qk.shape[1]], axis=-1
                )
            a, extra = attn_branch(h, qk)
            out = a + mlp_branch(h, hidden)
            return (x + out if self.attn_skip else out), extra
        a, extra = attn_branch(h)
        if self.structure == "sequential":
            xh = x + a if self.attn_skip else a
            return mlp_skip(xh, mlp_branch(layers.apply_norm(self.norm2, xh))), extra
        # post_ln (reference form): the skip carries the normalised input X'.
        xh = layers.apply_norm(self.norm2, h + a if self.attn_skip else a)
        return mlp_skip(xh, mlp_branch(xh)), extra

    def __call__(
        self,
        x_BTD,
        *,
        causal: bool,
        valid_BT=None,
        rng: jax.Array | None = None,
        return_probs: bool = False,
    ):
        """Returns (x_out_BTD, attention probs (B, H, T, T) or None)."""
        rngs = (None, None) if rng is None else tuple(jax.random.split(rng))

        def attn_fn(h, qk):
            return self.attn(
                h, causal=causal, valid_BT=valid_BT, return_probs=return_probs, qk_BTE=qk
            )

        return self._forward(x_BTD, attn_fn, rngs, fuse_inputs=self.fuse_inputs)

    def decode(self, x_B1D, cache: dict, pos):
        """One causal decoding step; returns (x_out_B1D, new cache)."""
        return self._forward(x_B1D, lambda h, qk: self.attn.decode(h, cache, pos), (None, None))

    def init_cache(self, batch: int, max_len: int, dtype) -> dict:
        return self.attn.init_cache(batch, max_len, dtype)

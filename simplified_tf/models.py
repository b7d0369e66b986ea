"""Decoder LM and BERT encoder built from `Block`s (docs/simplified_tf.md section 5), plus
`build_model`.

Layers: layer 0 is its own `Block` (`blocks/first`; in SAS variants it owns W_V_0 and, in
sas_p_nonorm, the LayerNorm on the embeddings); layers 1..L-1 are one stacked `Block` created with
`nnx.vmap` (`blocks/rest`, every param with a leading L-1 axis) and run with `lax.scan`, so compile
time does not grow with depth. `scan_layers=False` runs the same stacked params in a Python loop
(identical param tree, so checkpoints are interchangeable); `remat=True` rematerialises each block.

Diagnostics: `model(tokens, return_hidden=True, return_probs=True)` returns `(logits, aux)` with
  aux["hidden"]: (L+1, B, T, D) — index 0 is layer 0's input (embeddings), index l+1 block l's output;
  aux["probs"]:  (L, B, H, T, T) — the unshaped softmax A_h of every layer (float32), or None.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from simplified_tf import layers
from simplified_tf.blocks import Block
from simplified_tf.model_config import implementation, validate

F32 = jnp.float32


def sinusoidal(positions: jax.Array, width: int) -> jax.Array:
    """Transformer sinusoidal encodings (sin on even, cos on odd channels), float32."""
    half = width // 2
    freq = jnp.exp(-jnp.log(10_000.0) * jnp.arange(half, dtype=F32) / half)
    ang = positions.astype(F32)[..., None] * freq
    out = jnp.stack([jnp.sin(ang), jnp.cos(ang)], axis=-1).reshape(*ang.shape[:-1], 2 * half)
    if width % 2:
        out = jnp.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, 1)])
    return out


class Embed(nnx.Module):
    """Token table (tied with the head) plus learned or sinusoidal absolute positions."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        self.width = cfg.width
        self.dtype = jnp.dtype(cfg.dtype)
        self.tokens = nnx.Param(layers.normal(rngs, (cfg.vocab_size, cfg.width), cfg.init_std))
        learned = cfg.pos_emb == "learned"
        self.positions = (
            nnx.Param(layers.normal(rngs, (cfg.max_len, cfg.width), cfg.init_std))
            if learned
            else None
        )

    def __call__(self, tokens_BT: jax.Array, offset=0) -> jax.Array:
        T = tokens_BT.shape[1]
        x = jnp.take(self.tokens[...], tokens_BT, axis=0)
        if self.positions is None:
            pos = sinusoidal(offset + jnp.arange(T), self.width)
        else:
            pos = jax.lax.dynamic_slice_in_dim(self.positions[...], offset, T, axis=0)
        return (x + pos[None]).astype(self.dtype)

    def attend(self, h_BTD: jax.Array) -> jax.Array:
        """Tied head: logits = h Eᵀ (no bias), returned in float32."""
        return (h_BTD @ self.tokens[...].astype(h_BTD.dtype).T).astype(F32)


def _stacked_blocks(cfg: ml_collections.ConfigDict, n: int, rngs: nnx.Rngs) -> Block:
    @nnx.split_rngs(splits=n)
    @nnx.vmap(in_axes=(0, 0), out_axes=0)
    def create(layer, rngs):
        return Block(cfg, layer=layer, is_first=False, rngs=rngs)

    return create(jnp.arange(1, n + 1), rngs)


class Stack(nnx.Module):
    """Layer 0 plus the stacked layers 1..L-1 (see module docstring)."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        self.num_layers = cfg.num_layers
        self.scan_layers = bool(cfg.scan_layers)
        self.remat = bool(cfg.remat)
        self.first = Block(cfg, layer=0, is_first=True, rngs=rngs)
        self.rest = _stacked_blocks(cfg, cfg.num_layers - 1, rngs) if cfg.num_layers > 1 else None

    def _run(self, fn, x, module, xs, stacked: bool):
        """Applies `fn(block, x, xs_i) -> (x, out_i)` to one block or over the stacked blocks."""
        gd, st = nnx.split(module)

        def body(x, inp):
            st_i, xs_i = inp
            return fn(nnx.merge(gd, st_i), x, xs_i)

        if self.remat:
            body = jax.checkpoint(body, prevent_cse=not stacked)
        if not stacked:
            return body(x, (st, xs))
        if self.scan_layers:
            return jax.lax.scan(body, x, (st, xs))
        outs = []
        for i in range(self.num_layers - 1):
            x, out = body(x, jax.tree.map(lambda a, i=i: a[i], (st, xs)))
            outs.append(out)
        return x, jax.tree.map(lambda *a: jnp.stack(a), *outs)

    def __call__(
        self,
        x_BTD,
        *,
        causal: bool,
        valid_BT=None,
        rng=None,
        return_hidden=False,
        return_probs=False,
    ):
        L = self.num_layers
        keys = None if rng is None else jax.random.split(rng, L)

        def fn(block, x, key):
            y, probs = block(
                x, causal=causal, valid_BT=valid_BT, rng=key, return_probs=return_probs
            )
            return y, (y if return_hidden else None, probs)

        x0 = x_BTD
        x, (h0, p0) = self._run(fn, x_BTD, self.first, None if keys is None else keys[0], False)
        hidden, probs = [x0[None]], []
        if return_hidden:
            hidden.append(h0[None])
        if return_probs:
            probs.append(p0[None])
        if self.rest is not None:
            x, (h, p) = self._run(fn, x, self.rest, None if keys is None else keys[1:], True)
            if return_hidden:
                hidden.append(h)
            if return_probs:
                probs.append(p)
        aux = dict(
            hidden=jnp.concatenate(hidden) if return_hidden else None,
            probs=jnp.concatenate(probs) if return_probs else None,
        )
        return x, aux

    def init_cache(self, batch: int, max_len: int, dtype) -> dict:
        cache = dict(first=self.first.init_cache(batch, max_len, dtype), rest=None)
        if self.rest is not None:
            one = self.rest.attn.init_cache(batch, max_len, dtype)
            cache["rest"] = jax.tree.map(
                lambda a: jnp.zeros((self.num_layers - 1,) + a.shape, a.dtype), one
            )
        return cache

    def decode(self, x_B1D, cache: dict, pos):
        def fn(block, x, c):
            return block.decode(x, c, pos)

        x, c0 = self._run(fn, x_B1D, self.first, cache["first"], False)
        new = dict(first=c0, rest=None)
        if self.rest is not None:
            x, new["rest"] = self._run(fn, x, self.rest, cache["rest"], True)
        return x, new


class _Model(nnx.Module):
    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        validate(cfg)
        self.max_len = cfg.max_len
        self.dropout_rate = float(cfg.dropout)
        self.dtype = jnp.dtype(cfg.dtype)
        self.embed = Embed(cfg, rngs=rngs)
        self.blocks = Stack(cfg, rngs=rngs)
        self.final_norm = layers.make_norm(
            cfg.final_norm,
            cfg.width,
            cfg.final_norm_eps,
            cfg.rms_eps_placement,
            implementation(cfg, "rmsnorm_grad"),
        )

    def _hidden(self, tokens_BT, *, causal, valid_BT, rng, return_hidden, return_probs):
        r_emb, r_blocks = (None, None) if rng is None else tuple(jax.random.split(rng))
        x = layers.dropout(self.embed(tokens_BT), self.dropout_rate, r_emb)
        x, aux = self.blocks(
            x,
            causal=causal,
            valid_BT=valid_BT,
            rng=r_blocks,
            return_hidden=return_hidden,
            return_probs=return_probs,
        )
        return layers.apply_norm(self.final_norm, x), aux


class DecoderLM(_Model):
    """Causal LM: `model(tokens_BT) -> logits_BTV` (float32); KV-cache `init_cache` / `decode`."""

    def __call__(self, tokens_BT, *, rng=None, return_hidden=False, return_probs=False):
        h, aux = self._hidden(
            tokens_BT,
            causal=True,
            valid_BT=None,
            rng=rng,
            return_hidden=return_hidden,
            return_probs=return_probs,
        )
        logits = self.embed.attend(h)
        return (logits, aux) if (return_hidden or return_probs) else logits

    def init_cache(self, batch: int, max_len: int | None = None) -> dict:
        return self.blocks.init_cache(batch, max_len or self.max_len, self.dtype)

    def decode(self, tokens_B1, cache: dict, pos):
        """Logits (B, 1, V) for the token at 0-indexed position `pos`, and the updated cache."""
        x = self.embed(tokens_B1, offset=pos)
        x, cache = self.blocks.decode(x, cache, pos)
        return self.embed.attend(layers.apply_norm(self.final_norm, x)), cache


class BertMLM(_Model):
    """Bidirectional encoder with a tied MLM head: `model(tokens_BT, valid_BT) -> logits_BTV`.

    `valid_BT` (bool, True = real token) masks padding in the softmax *and* in the identity and
    centring terms of shaped attention; padded positions output 0 from attention.
    """

    def encode(
        self, tokens_BT, valid_BT=None, *, rng=None, return_hidden=False, return_probs=False
    ):
        """Final-normed hidden states (B, T, D) and the diagnostics aux dict."""
        return self._hidden(
            tokens_BT,
            causal=False,
            valid_BT=valid_BT,
            rng=rng,
            return_hidden=return_hidden,
            return_probs=return_probs,
        )

    def __call__(
        self, tokens_BT, valid_BT=None, *, rng=None, return_hidden=False, return_probs=False
    ):
        h, aux = self.encode(
            tokens_BT, valid_BT, rng=rng, return_hidden=return_hidden, return_probs=return_probs
        )
        logits = self.embed.attend(h)
        return (logits, aux) if (return_hidden or return_probs) else logits


class BertClassifier(nnx.Module):
    """BERT encoder + pooled head for fine-tuning: tanh(W h_[CLS] + b) -> dropout -> classes."""

    def __init__(
        self,
        cfg: ml_collections.ConfigDict,
        num_classes: int,
        *,
        rngs: nnx.Rngs,
        head_dropout: float = 0.1,
    ):
        d = cfg.width
        init = jax.nn.initializers.normal(cfg.init_std)
        self.bert = BertMLM(cfg, rngs=rngs)
        self.pooler = nnx.Linear(d, d, kernel_init=init, rngs=rngs)
        self.classifier = nnx.Linear(d, num_classes, kernel_init=init, rngs=rngs)
        self.head_dropout = float(head_dropout)

    def __call__(self, tokens_BT, valid_BT=None, *, rng=None):
        r_enc, r_head = (None, None) if rng is None else tuple(jax.random.split(rng))
        h, _ = self.bert.encode(tokens_BT, valid_BT, rng=r_enc)
        pooled = jnp.tanh(self.pooler(h[:, 0]))
        pooled = layers.dropout(pooled, self.head_dropout, r_head)
        return self.classifier(pooled).astype(F32)


def build_model(model_config: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> nnx.Module:
    """DecoderLM for kind='decoder', BertMLM for kind='bert'."""
    validate(model_config)
    if model_config.kind == "decoder":
        return DecoderLM(model_config, rngs=rngs)
    return BertMLM(model_config, rngs=rngs)


def build_classifier(
    model_config: ml_collections.ConfigDict, num_classes: int, *, rngs: nnx.Rngs
) -> BertClassifier:
    validate(model_config)
    return BertClassifier(model_config, num_classes, rngs=rngs)

"""The linear-attention Transformer of Ahn et al. (2024), as pure functions over a params dict.

Row form (spec §1.1): a prompt is `z_BTE` with T = n+1 tokens as rows and E = d+1 features; row n is
the query and its label slot z[:, n, d] is zero. The paper's column form is the transpose, with
P = P̃ and Q = Q̃ᵀ. Per layer (spec §1.2), with M = diag(1,…,1,0) removing the query from keys/values:

    z ← z + (1/n) Σ_h (z Q̃_h zᵀ) M (z P̃_hᵀ)

and the prediction is ŷ = −z_L[:, n, d] (note the minus sign); the loss is plain MSE (no ½).

Parameter layouts (all leaves float32, "/"-joined paths for the optimiser):
  sparse (default), p0:  {"attn": {"bc": (L, H, 2, d, d)}}  index 0 = B (P block), 1 = C (Q block);
                         P̃ = [[B, 0], [0, 1]], Q̃ = [[C, 0], [0, 0]].
  full:                  {"attn": {"p": (L, H, d+1, d+1), "q": (L, H, d+1, d+1)}}.
  embed=True adds        {"embed": {"w1": (d, F), "b1": (F,), "w2": (F, d), "b2": (d,)}}, the learned
                         ReLU MLP ψ applied to the covariates of every token (nonlinear setting).
For `p0`, B is zero at init and multiplied by 0 in the forward pass, so its gradient is exactly zero
and no optimiser (SGD, momentum, Adam) ever moves it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from trainloop.config_util import ConfigError, check_choice

PARAMETERIZATIONS = ("sparse", "full", "p0")
ATTENTIONS = ("linear", "softmax", "softmax_clean")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Static description of the model (hashable, so it can close over jitted functions).

    attention: "linear"; "softmax" = reference-compatible variant (softmax of the scores over all
    n+1 keys, query key included, then the key mask, then 1/n); "softmax_clean" = softmax over the n
    context keys only and no 1/n.
    """

    d: int = 5
    n: int = 20
    layers: int = 3
    heads: int = 1
    parameterization: str = "sparse"
    attention: str = "linear"
    init_std: float = 0.05
    embed: bool = False
    embed_hidden: int = 30

    def __post_init__(self):
        check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        check_choice("attention", self.attention, ATTENTIONS)
        for name in ("d", "n", "layers", "heads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(
                    f"Invalid {name}={getattr(self, name)!r}: must be an integer >= 1."
                )


def _torch_linear(key, fan_in: int, fan_out: int):
    """PyTorch's default nn.Linear init: weight and bias ~ U(±1/sqrt(fan_in))."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / jnp.sqrt(fan_in)
    w = jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound)
    b = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
    return w, b


def init_params(spec: ModelSpec, rng: jax.Array) -> dict:
    """Every trainable entry i.i.d. N(0, init_std²) (dead blocks included); p0 starts with B = 0."""
    k_attn, k_embed = jax.random.split(rng)
    L, H, d = spec.layers, spec.heads, spec.d
    if spec.parameterization == "full":
        kp, kq = jax.random.split(k_attn)
        shape = (L, H, d + 1, d + 1)
        attn = {
            "p": spec.init_std * jax.random.normal(kp, shape, jnp.float32),
            "q": spec.init_std * jax.random.normal(kq, shape, jnp.float32),
        }
    else:
        bc = spec.init_std * jax.random.normal(k_attn, (L, H, 2, d, d), jnp.float32)
        if spec.parameterization == "p0":
            bc = bc.at[:, :, 0].set(0.0)
        attn = {"bc": bc}
    params = {"attn": attn}
    if spec.embed:
        k1, k2 = jax.random.split(k_embed)
        w1, b1 = _torch_linear(k1, d, spec.embed_hidden)
        w2, b2 = _torch_linear(k2, spec.embed_hidden, d)
        params["embed"] = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
    return params


def num_params(params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


def sparse_to_full(bc_LH2DD: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Embeds the B, C blocks into (P̃, Q̃) of shape (L, H, d+1, d+1) each (row form)."""
    L, H, _, d, _ = bc_LH2DD.shape
    p = jnp.zeros((L, H, d + 1, d + 1), bc_LH2DD.dtype)
    p = p.at[:, :, :d, :d].set(bc_LH2DD[:, :, 0]).at[:, :, d, d].set(1.0)
    q = jnp.zeros((L, H, d + 1, d + 1), bc_LH2DD.dtype).at[:, :, :d, :d].set(bc_LH2DD[:, :, 1])
    return p, q


def attention_matrices(spec: ModelSpec, params: dict) -> tuple[jax.Array, jax.Array]:
    """(P̃_LHEE, Q̃_LHEE) in row form for any parameterisation."""
    attn = params["attn"]
    if spec.parameterization == "full":
        return attn["p"], attn["q"]
    bc = attn["bc"]
    if spec.parameterization == "p0":
        bc = bc * jnp.array([0.0, 1.0], bc.dtype)[:, None, None]
    return sparse_to_full(bc)


def embed_covariates(params: dict, z_BTE: jax.Array) -> jax.Array:
    """Applies the learned MLP ψ to the covariate columns of every token; labels untouched."""
    e = params["embed"]
    x = z_BTE[..., :-1]
    h = jax.nn.relu(x @ e["w1"] + e["b1"])
    x = h @ e["w2"] + e["b2"]
    return jnp.concatenate([x, z_BTE[..., -1:]], axis=-1)


def layer_update(
    z_BTE: jax.Array, p_HEE: jax.Array, q_HEE: jax.Array, attention: str, divisor: float
) -> jax.Array:
    """One residual attention layer; the context is the first T-1 tokens (the query is last)."""
    n = z_BTE.shape[1] - 1
    ctx_BNE = z_BTE[:, :n]
    if attention == "linear":
        # Associativity: (z Q̃ zᵀ) M (z P̃ᵀ) = z Q̃ (z_ctxᵀ z_ctx) P̃ᵀ — an E×E product per prompt.
        k_BEE = jnp.einsum("bne,bnf->bef", ctx_BNE, ctx_BNE)
        w_BEE = jnp.einsum("hef,bfg,hkg->bek", q_HEE, k_BEE, p_HEE)
        return z_BTE + jnp.einsum("bte,bek->btk", z_BTE, w_BEE) / divisor
    out_BTE = jnp.zeros_like(z_BTE)
    for h in range(q_HEE.shape[0]):
        s_BTT = jnp.einsum("bte,ef,bsf->bts", z_BTE, q_HEE[h], z_BTE)
        v_BNE = jnp.einsum("bne,ke->bnk", ctx_BNE, p_HEE[h])
        if attention == "softmax":
            a_BTN = jax.nn.softmax(s_BTT, axis=-1)[:, :, :n] / divisor
        else:  # softmax_clean
            a_BTN = jax.nn.softmax(s_BTT[:, :, :n], axis=-1)
        out_BTE = out_BTE + jnp.einsum("btn,bnk->btk", a_BTN, v_BNE)
    return z_BTE + out_BTE


def forward(spec: ModelSpec, params: dict, z_BTE: jax.Array, divisor: float | None = None):
    """Final token matrix z_L. `divisor` defaults to n (exposed only for the n vs n+1 regression test)."""
    divisor = float(spec.n if divisor is None else divisor)
    if spec.embed:
        z_BTE = embed_covariates(params, z_BTE)
    p_LHEE, q_LHEE = attention_matrices(spec, params)
    for layer in range(spec.layers):
        z_BTE = layer_update(z_BTE, p_LHEE[layer], q_LHEE[layer], spec.attention, divisor)
    return z_BTE


def _sparse_linear_prediction(bc_LH2DD: jax.Array, z_BTE: jax.Array, divisor: float) -> jax.Array:
    """Fast path for linear attention with the sparse pattern, on covariates x and labels r separately.

    Per layer, with K = x_ctxᵀ x_ctx and k = x_ctxᵀ r_ctx: r ← r + x Σ_h C_h k / n and
    x ← x + x Σ_h C_h K B_hᵀ / n. The last layer only updates the query's label slot (its covariate
    update, driven by the dead block B_{L-1}, is never read). Equals `forward` (tested).
    """
    n = z_BTE.shape[1] - 1
    x_BTD, r_BT = z_BTE[..., :-1], z_BTE[..., -1]
    num_layers = bc_LH2DD.shape[0]
    for layer in range(num_layers):
        b_HDD, c_HDD = bc_LH2DD[layer, :, 0], bc_LH2DD[layer, :, 1]
        xc_BND, rc_BN = x_BTD[:, :n], r_BT[:, :n]
        k_BD = jnp.einsum("bnd,bn->bd", xc_BND, rc_BN)
        ck_BD = k_BD @ jnp.sum(c_HDD, axis=0).T
        if layer == num_layers - 1:
            return -(r_BT[:, -1] + jnp.einsum("bd,bd->b", x_BTD[:, -1], ck_BD) / divisor)
        kxx_BDD = jnp.einsum("bnd,bne->bde", xc_BND, xc_BND)
        m_BDD = jnp.einsum("hde,bef,hgf->bdg", c_HDD, kxx_BDD, b_HDD)
        r_BT = r_BT + jnp.einsum("btd,bd->bt", x_BTD, ck_BD) / divisor
        x_BTD = x_BTD + jnp.einsum("btd,bdg->btg", x_BTD, m_BDD) / divisor
    raise AssertionError("unreachable")


def predict(spec: ModelSpec, params: dict, z_BTE: jax.Array, divisor: float | None = None):
    """ŷ = −z_L[:, n, d] (the query's label slot, negated)."""
    if spec.attention == "linear" and spec.parameterization != "full" and not spec.embed:
        bc = params["attn"]["bc"]
        if spec.parameterization == "p0":
            bc = bc * jnp.array([0.0, 1.0], bc.dtype)[:, None, None]
        return _sparse_linear_prediction(bc, z_BTE, float(spec.n if divisor is None else divisor))
    return -forward(spec, params, z_BTE, divisor)[:, -1, -1]


def mse_loss(spec: ModelSpec, params: dict, batch: dict) -> jax.Array:
    """Plain mean squared error over prompts, no ½ factor."""
    return jnp.mean(jnp.square(predict(spec, params, batch["z"]) - batch["y"]))

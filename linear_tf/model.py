"""The linear-attention Transformer of Ahn et al. (2024), as pure functions over a params dict.

Row form (the authors' code; the paper, Section 2, uses the column form): a prompt is `z_BTE` with T = n+1 tokens as rows and E = d+1 features; row n is
the query and its label slot z[:, n, d] is zero. The paper's column form is the transpose, with
P = P̃ and Q = Q̃ᵀ. Per layer (the paper, Eq. (2)), with M = diag(1,…,1,0) removing the query from keys/values:

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
import functools

import jax
import jax.numpy as jnp
from jax import lax

from trainloop.config_util import ConfigError, check_choice

PARAMETERIZATIONS = ("sparse", "full", "p0")
ATTENTIONS = ("linear", "softmax", "softmax_clean")
STATS_FORMS = ("auto", "lists", "arrays")
LIST_MAX_D = 8  # above this width the per-entry formulation's graph (O(d³) ops) compiles too slowly


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Static description of the model (hashable, so it can close over jitted functions).

    attention: "linear"; "softmax" = reference-compatible variant (softmax of the scores over all
    n+1 keys, query key included, then the key mask, then 1/n); "softmax_clean" = softmax over the n
    context keys only and no 1/n.
    stats_form: how the sparse linear model computes its prediction from the prompt statistics
    (same values, different compiled graphs): "lists" = per-entry arithmetic on (B,) arrays (fastest
    to run at d = 5, compile time grows as d³), "arrays" = batched (B, d, d) matmuls (compiles in
    seconds for any d), "auto" = lists for d <= LIST_MAX_D. A field of the ModelSpec, so every
    compiled program keyed on the ModelSpec is keyed on this choice too.
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
    stats_form: str = "auto"

    def __post_init__(self):
        check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        check_choice("attention", self.attention, ATTENTIONS)
        check_choice("stats_form", self.stats_form, STATS_FORMS)
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
    """Every trainable entry i.i.d. N(0, init_std²) (dead blocks included); p0 starts with B = 0.

    Drawn with the non-partitionable threefry, like the prompts (see `linear_tf.data`)."""
    with jax.threefry_partitionable(False):
        return _init_params(spec, rng)


def _init_params(spec: ModelSpec, rng: jax.Array) -> dict:
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
        attn = {"bc": _without_b(bc) if spec.parameterization == "p0" else bc}
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


def _without_b(bc_LH2DD: jax.Array) -> jax.Array:
    """The B/C blocks with B set to 0 (the `p0` parameterisation); its gradient is 0 there."""
    return bc_LH2DD.at[:, :, 0].set(0.0)


def masked_bc(spec: ModelSpec, params: dict) -> jax.Array:
    """The (L, H, 2, d, d) B/C blocks as the forward pass sees them: for `p0`, B zeroed (so its
    gradient is exactly 0 and no optimiser moves it)."""
    bc = params["attn"]["bc"]
    return _without_b(bc) if spec.parameterization == "p0" else bc


def attention_matrices(spec: ModelSpec, params: dict) -> tuple[jax.Array, jax.Array]:
    """(P̃_LHEE, Q̃_LHEE) in row form for any parameterisation."""
    if spec.parameterization == "full":
        return params["attn"]["p"], params["attn"]["q"]
    return sparse_to_full(masked_bc(spec, params))


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


def prompt_stats(z_BTE: jax.Array) -> dict:
    """Sufficient statistics of a prompt batch for the sparse linear-attention model.

    {"kxx": Σ_ctx x xᵀ (D, D, B), "kxr": Σ_ctx x r (D, B), "xq": query covariates (D, B), "rq": query
    label slot (B,)}; batch is the minor axis so the per-prompt 5×5 algebra below vectorises over it.
    They do not depend on the parameters, so a training step computes them once per batch (outside
    the gradient) and runs of a sweep that share prompts share them.
    """
    z_ETB = jnp.transpose(z_BTE, (2, 1, 0))
    return stats_from_tokens(z_ETB[:-1], z_ETB[-1])


def stats_from_tokens(x_DTB: jax.Array, r_TB: jax.Array) -> dict:
    """`prompt_stats` from covariates x_DTB and label slots r_TB (token T-1 is the query).

    The context sums are accumulated token by token (T-1 fused multiply-adds on (D, D, B) arrays):
    on XLA:CPU about 3x faster than one broadcast-and-reduce over the token axis.
    """
    n = x_DTB.shape[1] - 1
    kxx = kxr = None
    for t in range(n):
        x_DB = x_DTB[:, t]
        outer, xr = x_DB[:, None] * x_DB[None, :], x_DB * r_TB[t]
        kxx, kxr = (outer, xr) if kxx is None else (kxx + outer, kxr + xr)
    return {"kxx": kxx, "kxr": kxr, "xq": x_DTB[:, n], "rq": r_TB[n]}


# Per-prompt D×D matrices as nested lists of (B,) arrays: every product is then plain elementwise
# arithmetic that XLA fuses into a few loops (batched tiny dot_generals are slow on XLA:CPU). The
# helpers call lax directly: jnp operators would each trace a nested jit (slow for ~10^3 ops).
def _sum(terms):
    out = terms[0]
    for t in terms[1:]:
        out = lax.add(out, t)
    return out


def _dot(u, v):
    return _sum([lax.mul(a, b) for a, b in zip(u, v, strict=True)])


def _mm(a, b):
    cols = list(zip(*b, strict=True))
    return [[_dot(row, col) for col in cols] for row in a]


def _mv(a, v):
    return [_dot(row, v) for row in a]


def _vm(v, a):
    return [_dot(v, col) for col in zip(*a, strict=True)]


def _axpy(x, y, scale):
    """x + y / scale, entrywise over (nested) lists."""
    if isinstance(x, list):
        return [_axpy(a, b, scale) for a, b in zip(x, y, strict=True)]
    return lax.add(x, lax.div(y, scale))


def _shared_matmul(w_IJ: jax.Array, v: list) -> list:
    """A parameter matrix times a list of J per-prompt arrays (one GEMM over the batch)."""
    out = w_IJ @ jnp.stack(v)
    return [out[i] for i in range(out.shape[0])]


def _congruence(kxx, p_mat):
    """K_l = Pᵀ K_0 P on nested lists (symmetric, so only the upper triangle is computed)."""
    d = len(kxx)
    kp = _mm(kxx, p_mat)
    p_cols = list(zip(*p_mat, strict=True))
    k_l = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i, d):
            k_l[i][j] = k_l[j][i] = _dot(p_cols[i], [kp[m][j] for m in range(d)])
    return k_l


def _list_layer(k0, kxx, inv, p_mat, q_vec, b_HDD, c_HDD):
    """One layer of `_sparse_linear_prediction`: (P, q) -> (P', q') and c·k of this layer;
    P = None / q = None stand for I / 0, b_HDD = None for the last layer (only c·k is needed)."""
    d = len(k0)
    u = k0 if q_vec is None else [lax.add(a, b) for a, b in zip(k0, _mv(kxx, q_vec), strict=True)]
    k = u if p_mat is None else _vm(u, p_mat)
    ck = _shared_matmul(jnp.sum(c_HDD, axis=0), k)
    if b_HDD is None:
        return p_mat, q_vec, ck
    k_l = kxx if p_mat is None else _congruence(kxx, p_mat)
    w = jnp.einsum("hde,hgf->dgef", c_HDD, b_HDD).reshape(d * d, d * d)
    m_flat = _shared_matmul(w, [k_l[e][f] for e in range(d) for f in range(d)])
    m_mat = [[m_flat[i * d + j] for j in range(d)] for i in range(d)]
    pck = ck if p_mat is None else _mv(p_mat, ck)
    q_new = [lax.div(t, inv) for t in pck] if q_vec is None else _axpy(q_vec, pck, inv)
    if p_mat is None:
        p_new = [[lax.div(m_mat[i][j], inv) + float(i == j) for j in range(d)] for i in range(d)]
    else:
        p_new = _axpy(p_mat, _mm(p_mat, m_mat), inv)
    return p_new, q_new, ck


def _sparse_linear_prediction(bc_LH2DD: jax.Array, stats: dict, divisor: float) -> jax.Array:
    """Fast path for linear attention with the sparse pattern, from `prompt_stats` only.

    Per layer the covariates of every token move by a right-multiplication, x ← x (I + M/n) with
    M = Σ_h C_h K B_hᵀ, K = x_ctxᵀ x_ctx, and the labels by r ← r + x Σ_h C_h k / n, k = x_ctxᵀ r_ctx.
    Hence after l layers x_l = x_0 P_l and r_l = r_0 + x_0 q_l for a per-prompt matrix P_l and vector
    q_l, and K_l = P_lᵀ K_0 P_l, k_l = P_lᵀ (k_0 + K_0 q_l): the whole forward pass is 5×5 algebra on
    the statistics of the input prompt (exact by associativity). The last layer only updates the
    query's label slot (its covariate update, driven by the dead block B_{L-1}, is never read).
    Equals `forward` (tested).
    """
    num_layers, _, _, d, _ = bc_LH2DD.shape
    kxx_DDB = stats["kxx"]
    inv = jnp.asarray(divisor, kxx_DDB.dtype)
    k0 = [stats["kxr"][i] for i in range(d)]
    kxx = [[kxx_DDB[i, j] for j in range(d)] for i in range(d)]
    layer = functools.partial(_list_layer, k0, kxx, inv)

    p_mat = q_vec = None
    if num_layers > 1:
        p_mat, q_vec, _ = layer(None, None, bc_LH2DD[0, :, 0], bc_LH2DD[0, :, 1])
    middle = bc_LH2DD[1:-1]
    if middle.shape[0] == 1:
        p_mat, q_vec, _ = layer(p_mat, q_vec, middle[0, :, 0], middle[0, :, 1])
    elif middle.shape[0] > 1:  # one traced layer whatever the depth (compile time)

        def body(carry, bc_H2DD):
            p_new, q_new, _ = layer(*carry, bc_H2DD[:, 0], bc_H2DD[:, 1])
            return (p_new, q_new), None

        (p_mat, q_vec), _ = lax.scan(body, (p_mat, q_vec), middle)
    _, _, ck = layer(p_mat, q_vec, None, bc_LH2DD[-1, :, 1])
    xq = [stats["xq"][i] for i in range(d)]
    xq_l = xq if p_mat is None else _vm(xq, p_mat)
    r_q = stats["rq"] if q_vec is None else lax.add(stats["rq"], _dot(xq, q_vec))
    return -_axpy(r_q, _dot(xq_l, ck), inv)


def _sparse_linear_prediction_arrays(bc_LH2DD: jax.Array, stats: dict, divisor: float):
    """The algebra of `_sparse_linear_prediction` on batch-major (B, d, d) arrays.

    Its graph has O(1) ops per product instead of O(d³), so it compiles in seconds for any d; every
    product is a batched d×d matmul or a GEMM with a shared d×d block (M = Σ_h C_h K Bᵀ_h as two
    products, 2d³ per prompt). On XLA:CPU it is ~10x slower than the per-entry lists at d = 5, and
    ~12x faster than a batch-minor broadcast-and-reduce formulation at d = 20 (the model of Fig. 5).
    """
    d = bc_LH2DD.shape[-1]
    kxx = jnp.transpose(stats["kxx"], (2, 0, 1))
    k0 = stats["kxr"].T
    inv = 1.0 / jnp.asarray(divisor, kxx.dtype)

    def layer(p_mat, q_vec, b_HDD, c_HDD):
        u = k0 + jnp.einsum("bij,bj->bi", kxx, q_vec)
        ck = jnp.einsum("bij,bi->bj", p_mat, u) @ jnp.sum(c_HDD, axis=0).T
        if b_HDD is None:
            return p_mat, q_vec, ck
        k_l = jnp.matmul(jnp.swapaxes(p_mat, 1, 2), jnp.matmul(kxx, p_mat))
        m_mat = 0.0
        for h in range(c_HDD.shape[0]):
            m_mat = m_mat + jnp.einsum("ij,bjk->bik", c_HDD[h], k_l) @ b_HDD[h].T
        pck = jnp.einsum("bij,bj->bi", p_mat, ck)
        return p_mat + jnp.matmul(p_mat, m_mat) * inv, q_vec + pck * inv, ck

    def body(carry, bc_H2DD):
        p_new, q_new, _ = layer(*carry, bc_H2DD[:, 0], bc_H2DD[:, 1])
        return (p_new, q_new), None

    p_mat = jnp.broadcast_to(jnp.eye(d, dtype=kxx.dtype), (k0.shape[0], d, d))
    (p_mat, q_vec), _ = lax.scan(body, (p_mat, jnp.zeros_like(k0)), bc_LH2DD[:-1])
    _, _, ck = layer(p_mat, q_vec, None, bc_LH2DD[-1, :, 1])
    xq = stats["xq"].T
    xq_l = jnp.einsum("bi,bij->bj", xq, p_mat)
    r_q = stats["rq"] + jnp.sum(xq * q_vec, axis=-1)
    return -(r_q + jnp.sum(xq_l * ck, axis=-1) * inv)


def _stats_prediction(spec: ModelSpec, bc_LH2DD: jax.Array, stats: dict, divisor: float):
    lists = spec.stats_form == "lists" or (spec.stats_form == "auto" and spec.d <= LIST_MAX_D)
    fn = _sparse_linear_prediction if lists else _sparse_linear_prediction_arrays
    return fn(bc_LH2DD, stats, divisor)


def uses_stats(spec: ModelSpec) -> bool:
    """Whether the model reads prompts only through `prompt_stats` (sparse/p0 linear, no embedding)."""
    return spec.attention == "linear" and spec.parameterization != "full" and not spec.embed


def prepare_batch(spec: ModelSpec, batch: dict) -> dict:
    """Adds "stats" (see `prompt_stats`) when the model can use them; `mse_loss` then skips z."""
    if uses_stats(spec) and "stats" not in batch:
        return {**batch, "stats": prompt_stats(batch["z"])}
    return batch


def predict(spec: ModelSpec, params: dict, z_BTE: jax.Array, divisor: float | None = None):
    """ŷ = −z_L[:, n, d] (the query's label slot, negated)."""
    divisor = float(spec.n if divisor is None else divisor)
    if uses_stats(spec):
        return _stats_prediction(spec, masked_bc(spec, params), prompt_stats(z_BTE), divisor)
    return -forward(spec, params, z_BTE, divisor)[:, -1, -1]


def mse_loss(spec: ModelSpec, params: dict, batch: dict) -> jax.Array:
    """Plain mean squared error over prompts, no ½ factor."""
    if "stats" in batch and uses_stats(spec):
        pred = _stats_prediction(spec, masked_bc(spec, params), batch["stats"], float(spec.n))
    else:
        pred = predict(spec, params, batch["z"])
    return jnp.mean(jnp.square(pred - batch["y"]))

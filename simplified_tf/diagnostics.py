"""Signal-propagation diagnostics (motivated by paper Sec. 4.1, which plots none of them):
per-layer statistics of the hidden states, attention entropy, and traces of the trainable scalar
gains.

Layers: "emb" (index -1) is the embedding output, i.e. layer 0's input; layer l (0-indexed) is the
output of block l *before* the final norm. Statistics, for one hidden state x_BTD:

- `cosine`: mean off-diagonal cosine similarity between the token vectors of one sequence, averaged
  over the batch (rank collapse: -> 1 when all tokens point the same way). `rms`: the per-token RMS
  norm sqrt(mean_d x^2), averaged over tokens.
- `batch_corr_mean` / `batch_corr_rms` (the reference code's statistics): centre every token over
  the width, divide by the global RMS of the centred tensor (+1e-8), flatten to N = B·T rows and form
  the N x N Gram matrix / d; the mean and RMS of its off-diagonal entries (pairs within *and* across
  sequences).
- `kurtosis`: the variance (ddof=1, as torch's `var`) of the diagonal of the d x d feature Gram matrix
  / N of the same normalised tensor; `feat_corr_rms`: the RMS of its off-diagonal entries;
  `max_median_ratio`: the mean over tokens of max|x| / median|x| over the width, on the centred x.
  Unlike the reference (torch's lower median) the median of an even count is the midpoint average.
- `entropy`: -sum_j A_ij log A_ij per row of the *unshaped* softmax A_h (masked entries are exact
  zeros and contribute 0), averaged over batch, heads and rows; NaN for "emb". Uniform causal
  attention gives mean_i log(i).

Scalar traces (`scalar_traces`, `scalar_table`) read the params dict (every trainable or fixed gain
that is stored as an array): α_h, β_h, γ_h as mean and std over heads; β_SA, β_FF, α_FF; the
reparameterised W_V / W_P gains α_V, β_V, α_P, β_P. Fixed gains that are Python constants (e.g. the
1s of pre_ln) are not in the params and are not reported.

Comparison model (`VARIANTS`): "naive_skipless" is the sas preset with *plain* softmax attention —
`attention='softmax'` (no identity term, no centring, no α/β/γ) and the standard N(0, 0.02^2) query
init (`zero_init_query=False`) — built through the existing config switches, so it keeps sas's
identity W_V/W_P (W_V_0 = I at init), its MLP skip and β_FF. "naive_skipless_p" does the same to
sas_p (no skip at all). Both are what "just remove the attention skip" gives; at init their attention
is close to uniform causal averaging, which collapses the tokens with depth.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from simplified_tf.model_config import BLOCKS, model_config
from simplified_tf.models import build_model
from simplified_tf.params import abstract_model, model_fns
from trainloop.config_util import ConfigError

F32 = jnp.float32
HIDDEN_STATS = (
    "cosine",
    "rms",
    "batch_corr_mean",
    "batch_corr_rms",
    "kurtosis",
    "feat_corr_rms",
    "max_median_ratio",
)
STATS = HIDDEN_STATS + ("entropy",)

# Comparison variants built from a preset plus config overrides (see module docstring).
VARIANTS = {
    "naive_skipless": ("sas", dict(attention="softmax", zero_init_query=False)),
    "naive_skipless_p": ("sas_p", dict(attention="softmax", zero_init_query=False)),
}
MODEL_NAMES = BLOCKS + tuple(VARIANTS)


# ----------------------------------------------------------------------------- model configs


def diag_model_config(
    name: str, size: str = "tiny", kind: str = "decoder", **overrides
) -> ml_collections.ConfigDict:
    """`model_config` for a block preset or a comparison variant of `VARIANTS`."""
    if name not in MODEL_NAMES:
        raise ConfigError(f"Unknown block {name!r}. Valid choices: {', '.join(MODEL_NAMES)}.")
    block, extra = VARIANTS.get(name, (name, {}))
    return model_config(block, size, kind, **{**extra, **overrides})


def init_model(cfg: ml_collections.ConfigDict, seed: int = 0) -> nnx.Module:
    """The model at init, created in one compiled program (eager init of deep models is slow)."""

    def make():
        return build_model(cfg, rngs=nnx.Rngs(seed))

    graphdef = nnx.graphdef(abstract_model(cfg))
    state = jax.jit(lambda: nnx.state(make()))()
    return nnx.merge(graphdef, state)


def model_from_params(cfg: ml_collections.ConfigDict, params: Mapping) -> nnx.Module:
    """The model with `params` (a pure dict as the tasks store it: `nnx.to_pure_dict` of the full
    state). Keys missing from `params` (e.g. a fixed W_init) fall back to a fresh init of `cfg`."""
    fns = model_fns(cfg)
    state = fns.state_of(jax.tree.map(jnp.asarray, dict(params)))
    if any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(state)):
        fresh = nnx.state(init_model(cfg))
        state = jax.tree.map(
            lambda x, f: f if isinstance(x, jax.ShapeDtypeStruct) else x, state, fresh
        )
    return nnx.merge(fns.graphdef, state)


# ----------------------------------------------------------------------------- statistics


def _offdiag_mean_rms(g_NN: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and RMS of the off-diagonal entries of a square matrix (without materialising them)."""
    n = g_NN.shape[-1]
    diag_N = jnp.diagonal(g_NN, axis1=-2, axis2=-1)
    count = n * (n - 1)
    mean = (jnp.sum(g_NN, axis=(-2, -1)) - jnp.sum(diag_N, axis=-1)) / count
    ms = (jnp.sum(g_NN**2, axis=(-2, -1)) - jnp.sum(diag_N**2, axis=-1)) / count
    return mean, jnp.sqrt(ms)


@jax.jit
def token_cosine(x_BTD: jax.Array) -> jax.Array:
    """Mean off-diagonal cosine similarity between tokens within each sequence, averaged over B.
    A zero token vector counts as orthogonal to everything."""
    x = x_BTD.astype(F32)
    norm_BT1 = jnp.linalg.norm(x, axis=-1, keepdims=True)
    u = x / jnp.where(norm_BT1 > 0, norm_BT1, 1.0)
    g_BTT = jnp.einsum("btd,bsd->bts", u, u)
    mean_B, _ = _offdiag_mean_rms(g_BTT)
    return jnp.mean(mean_B)


@jax.jit
def token_rms(x_BTD: jax.Array) -> jax.Array:
    """Per-token RMS norm sqrt(mean_d x^2), averaged over tokens."""
    x = x_BTD.astype(F32)
    return jnp.mean(jnp.sqrt(jnp.mean(x**2, axis=-1)))


def _normalised_flat(x_BTD: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(centred x_BTD, centred x / (global RMS + 1e-8) flattened to (B·T, D))."""
    x = x_BTD.astype(F32)
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    rms = jnp.sqrt(jnp.mean(xc**2)) + 1e-8
    return xc, (xc / rms).reshape(-1, x.shape[-1])


@jax.jit
def batch_stats(x_BTD: jax.Array) -> dict[str, jax.Array]:
    """`batch_corr_mean`, `batch_corr_rms` of the (B·T) x (B·T) Gram matrix / d (reference stats)."""
    _, flat_ND = _normalised_flat(x_BTD)
    g_NN = flat_ND @ flat_ND.T / flat_ND.shape[1]
    mean, rms = _offdiag_mean_rms(g_NN)
    return {"batch_corr_mean": mean, "batch_corr_rms": rms}


@jax.jit
def outlier_stats(x_BTD: jax.Array) -> dict[str, jax.Array]:
    """`kurtosis`, `feat_corr_rms` (from the D x D feature Gram / (B·T)) and `max_median_ratio`."""
    xc_BTD, flat_ND = _normalised_flat(x_BTD)
    n, d = flat_ND.shape
    f_DD = flat_ND.T @ flat_ND / n
    diag_D = jnp.diagonal(f_DD)
    kurtosis = jnp.sum((diag_D - jnp.mean(diag_D)) ** 2) / (d - 1)
    _, feat_corr_rms = _offdiag_mean_rms(f_DD)
    a_BTD = jnp.abs(xc_BTD)
    ratio_BT = jnp.max(a_BTD, axis=-1) / jnp.median(a_BTD, axis=-1)
    return {
        "kurtosis": kurtosis,
        "feat_corr_rms": feat_corr_rms,
        "max_median_ratio": jnp.mean(ratio_BT),
    }


@jax.jit
def hidden_stats(x_BTD: jax.Array) -> dict[str, jax.Array]:
    """Every hidden-state statistic of `HIDDEN_STATS` for one layer."""
    return {
        "cosine": token_cosine(x_BTD),
        "rms": token_rms(x_BTD),
        **batch_stats(x_BTD),
        **outlier_stats(x_BTD),
    }


@jax.jit
def attention_entropy(probs_BHTT: jax.Array) -> jax.Array:
    """Mean over (batch, head, query row) of -sum_j A_ij log A_ij; zero entries contribute 0."""
    a = probs_BHTT.astype(F32)
    ent = -jnp.sum(jnp.where(a > 0, a * jnp.log(jnp.where(a > 0, a, 1.0)), 0.0), axis=-1)
    return jnp.mean(ent)


def uniform_causal_entropy(T: int) -> float:
    """Entropy of uniform causal attention averaged over rows: mean_{i=1..T} log(i)."""
    return float(np.mean(np.log(np.arange(1, T + 1))))


# ----------------------------------------------------------------------------- model profile


def _encoder(model: nnx.Module) -> nnx.Module:
    return getattr(model, "bert", model)  # BertClassifier wraps a BertMLM


@functools.lru_cache(maxsize=16)
def _profile_fn(graphdef, causal: bool):
    """The jitted profile of one model structure (cached: graphdefs are hashable)."""

    @jax.jit
    def run(state, tokens_BT):
        model = nnx.merge(graphdef, state)
        x_BTD = model.embed(tokens_BT)
        _, aux = model.blocks(x_BTD, causal=causal, return_hidden=True, return_probs=True)
        # lax.map keeps one layer's Gram matrices alive at a time.
        stats = jax.lax.map(hidden_stats, aux["hidden"])  # each (L+1,)
        ent_L = jax.lax.map(attention_entropy, aux["probs"])
        stats["entropy"] = jnp.concatenate([jnp.full((1,), jnp.nan, F32), ent_L])
        return stats

    return run


def signal_profile(
    model: nnx.Module, tokens_BT: jax.Array, *, causal: bool
) -> dict[str, np.ndarray]:
    """Per-layer statistics `STATS` (each an array of L+1 values: "emb", then blocks 0..L-1) from one
    jitted forward pass of `tokens_BT` (no padding; decoder: causal=True, BERT: causal=False)."""
    enc = _encoder(model)
    graphdef, state = nnx.split(enc)
    stats = _profile_fn(graphdef, causal)(state, jnp.asarray(tokens_BT))
    return {k: np.asarray(v, np.float64) for k, v in jax.device_get(stats).items()}


def layer_labels(num_layers: int) -> list[str]:
    return ["emb"] + [str(i) for i in range(num_layers)]


def profile_rows(profile: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per layer: {"layer": "emb" | "0".., "index": -1.., <stat>: float}."""
    n = len(next(iter(profile.values())))
    rows = []
    for i, label in enumerate(layer_labels(n - 1)):
        rows.append({"layer": label, "index": i - 1} | {k: float(profile[k][i]) for k in profile})
    return rows


def flat_signal_metrics(profile: Mapping[str, np.ndarray], prefix: str = "signal") -> dict:
    """Flat names `signal/emb/cosine`, `signal/layer03/cosine`, ... (NaN entries dropped)."""
    out = {}
    for row in profile_rows(profile):
        tag = "emb" if row["index"] < 0 else f"layer{row['index']:02d}"
        for k in profile:
            if not math.isnan(row[k]):
                out[f"{prefix}/{tag}/{k}"] = row[k]
    return out


# ----------------------------------------------------------------------------- scalar traces

# Relative path inside a block -> trace name. Per-head gains become <name>_mean / <name>_std.
_HEAD_GAINS = {"attn/alpha": "alpha_h", "attn/beta": "beta_h", "attn/gamma": "gamma_h"}
_BLOCK_GAINS = {
    "beta_sa": "beta_sa",
    "beta_ff": "beta_ff",
    "alpha_ff": "alpha_ff",
    "attn/value/alpha": "alpha_v",
    "attn/value/beta": "beta_v",
    "attn/proj/alpha": "alpha_p",
    "attn/proj/beta": "beta_p",
}


def _flat(tree, prefix=()) -> dict[str, object]:
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out |= _flat(v, prefix + (str(k),))
        return out
    return {"/".join(prefix): tree}


def _per_layer_gains(params: Mapping) -> dict[int, dict[str, jax.Array]]:
    """{layer: {rel_path: value}} for every gain found under .../blocks/{first,rest}/..."""
    layers: dict[int, dict[str, jax.Array]] = {}
    for path, leaf in _flat(params).items():
        parts = path.split("/")
        if "blocks" not in parts:
            continue
        i = parts.index("blocks")
        if i + 1 >= len(parts) or parts[i + 1] not in ("first", "rest"):
            continue
        rel = "/".join(parts[i + 2 :])
        if rel not in _HEAD_GAINS and rel not in _BLOCK_GAINS:
            continue
        leaf = jnp.asarray(leaf)
        if parts[i + 1] == "first":
            layers.setdefault(0, {})[rel] = leaf
        else:
            for j in range(leaf.shape[0]):
                layers.setdefault(j + 1, {})[rel] = leaf[j]
    return layers


def scalar_traces_arrays(params: Mapping, prefix: str = "scalars") -> dict[str, jax.Array]:
    """Like `scalar_traces` but returns scalar jnp arrays, so it can run inside a jitted eval step
    (e.g. added to a task's eval metrics; the values are the same for every batch)."""
    out = {}
    for layer, gains in sorted(_per_layer_gains(params).items()):
        tag = f"{prefix}/layer{layer:02d}"
        for rel, v in gains.items():
            v = v.astype(F32)
            if rel in _HEAD_GAINS:
                name = _HEAD_GAINS[rel]
                out[f"{tag}/{name}_mean"] = jnp.mean(v)
                out[f"{tag}/{name}_std"] = jnp.std(v)
            else:
                out[f"{tag}/{_BLOCK_GAINS[rel]}"] = jnp.mean(v)
    return out


def scalar_traces(params: Mapping, prefix: str = "scalars") -> dict[str, float]:
    """Flat metrics `scalars/layer03/beta_ff`, `scalars/layer00/alpha_h_mean`, ... of every gain in
    `params` (a pure params dict; a BERT classifier's `bert/...` prefix is fine)."""
    return {k: float(v) for k, v in jax.device_get(scalar_traces_arrays(params, prefix)).items()}


def scalar_table(params: Mapping) -> list[dict]:
    """One row per layer: {"layer": l, "<trace>": float}; traces absent in a layer are omitted."""
    rows: dict[int, dict] = {}
    for key, val in scalar_traces(params, prefix="").items():
        _, tag, name = key.split("/")
        layer = int(tag.removeprefix("layer"))
        rows.setdefault(layer, {"layer": layer})[name] = val
    return [rows[k] for k in sorted(rows)]


# ----------------------------------------------------------------------------- formatting


def markdown_table(rows: list[dict], columns: list[str], fmt: str = "{:.4g}") -> str:
    """A GitHub markdown table of `rows` restricted to `columns` (missing cells empty)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(fmt.format(v) if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""Model configuration: block presets, size presets and every ablation switch of the paper.

`model_config(block, size, kind, **overrides)` returns a validated `ml_collections.ConfigDict`. The
block preset fills the structural switches (docs/simplified_tf.md section 2); the size preset fills
the shapes and the β_FF init (docs/simplified_tf.md section 5); `overrides` may change any key
afterwards. `validate(cfg)` checks a config that was edited by hand (e.g. through
`--config.model.x=...`).

Gain convention: a skip that is switched off (`attn_skip`/`mlp_skip` False) has gain 0 and creates
nothing. A present gain is either a trainable scalar (init given) or the fixed constant 1 (no
parameter). See `simplified_tf/blocks.py` for the forward formulas.
"""

from __future__ import annotations

import ml_collections

from trainloop.config_util import ConfigError, check_choice

KINDS = ("decoder", "bert")
BLOCKS = ("pre_ln", "post_ln", "parallel", "v_skipinit", "sas", "sas_p", "sas_p_nonorm")
SKIPLESS_BLOCKS = ("v_skipinit", "sas", "sas_p", "sas_p_nonorm")
SIZES = ("tiny", "quick", "small", "medium", "paper", "deep18", "deep")

STRUCTURES = ("sequential", "parallel", "post_ln")
ATTENTIONS = ("softmax", "shaped")
ATTN_MATRICES = ("shaped", "vskipinit")
ATTN_GAINS = ("per_head", "scalar")
ATTN_IMPLS = ("efficient", "reference")
VP_KINDS = ("dense", "identity", "reparam")
VP_INITS = ("normal", "orth")
REPARAM_INITS = ("identity", "orth", "normal")
NORMS = ("rmsnorm", "layernorm", "none")
FIRST_NORMS = ("", "rmsnorm", "layernorm")
FINAL_NORMS = ("layernorm", "rmsnorm", "none")
EPS_PLACEMENTS = ("outside", "inside")
ACTIVATIONS = ("relu", "gelu", "glu_gelu")
POS_EMBS = ("learned", "sinusoidal")
DTYPES = ("float32", "bfloat16")

# Shapes per size: one row each. `seq_len` is the training length, `max_len` the position table /
# cache length. "tiny" keeps vocab_size >= 257 (a byte-level tokenizer needs 256 bytes + EOS);
# "quick" is the reproduction's quick protocol (scripts/reproduce_simplified_tf.py --quick): small
# enough that every figure's LR-tuned, multi-seed run set fits in under 40 minutes on 2 CPU cores
# (its depth figure uses 2 and 8 layers of this width).
_SHAPE_FIELDS = ("num_layers", "width", "num_heads", "d_ff", "vocab_size", "seq_len", "max_len")
_SIZE_FIELDS = _SHAPE_FIELDS + ("beta_ff",)
# fmt: off
_SIZE_ROWS = {
    #          layers width heads  d_ff   vocab  seq   max   beta_ff
    "tiny":    (2,    64,   2,    256,   512,    32,   32,   0.1),
    "quick":   (4,    128,  2,    512,   2048,   128,  128,  0.1),
    "small":   (6,    256,  4,    1024,  8192,   128,  128,  0.1),
    "medium":  (12,   512,  8,    2048,  8192,   256,  256,  0.1),
    "paper":   (18,   768,  12,   3072,  50_000, 128,  1024, 0.1),
    "deep18":  (18,   768,  12,   1536,  50_000, 128,  1024, 0.2),
    "deep":    (72,   768,  12,   1536,  50_000, 128,  1024, 0.1),
    # Crammed-BERT shapes (paper App. D.2) replace the decoder ones at size=paper.
    "bert_paper": (16, 768, 12,   3072,  32_768, 128,  128,  0.05),
}
# fmt: on
_SIZES = {name: dict(zip(_SIZE_FIELDS, row, strict=True)) for name, row in _SIZE_ROWS.items()}
_BERT_PAPER = _SIZES.pop("bert_paper")

# Block presets (paper Sec. 4; docs/simplified_tf.md section 2). Keys not listed keep the
# standard-block defaults of `_defaults`.
_SHAPED = dict(
    attention="shaped",
    zero_init_query=True,
    attn_skip=False,
    train_beta_sa=True,
    train_beta_ff=True,
)
# SAS and SAS-P (paper Sec. 4.2): no value or projection matrices, except the first layer's value,
# reparameterised as alpha I + beta W (paper Sec. 4.1) with trainable gains at 1 and W at identity.
_NO_VALUE_PROJ = dict(
    value="identity",
    proj="identity",
    value_layer0="reparam",
    reparam_init="identity",
    reparam_alpha=1.0,
    reparam_beta=1.0,
    reparam_train=True,
)
_PRESETS = {
    "pre_ln": dict(),
    "post_ln": dict(structure="post_ln"),
    "parallel": dict(structure="parallel", mlp_skip=False),
    "v_skipinit": dict(_SHAPED, train_alpha_ff=True, vp_init="orth"),
    "sas": dict(_SHAPED, **_NO_VALUE_PROJ, train_alpha_ff=True),
    "sas_p": dict(_SHAPED, **_NO_VALUE_PROJ, structure="parallel", mlp_skip=False),
}
_PRESETS["sas_p_nonorm"] = dict(
    _PRESETS["sas_p"], norm="none", first_norm="layernorm", first_norm_eps=1e-5
)


# Attention defaults (paper Sec. 4.1, Eq. 5); the same for every kind and size.
_ATTENTION_DEFAULTS = dict(
    attention="softmax",  # softmax | shaped
    # vskipinit = He et al. (2023) Eq. 4: alpha*I + beta*A; overrides attn_centre (off) and
    # attn_beta_init (0).
    attn_matrix="shaped",  # shaped | vskipinit
    attn_identity=True,  # shaped: alpha_h * I term
    attn_centre=True,  # shaped: -gamma_h * C term
    attn_gains="per_head",  # per_head (H,) | scalar ()
    attn_alpha_init=1.0,
    attn_beta_init=1.0,
    attn_gamma_init=1.0,
    train_attn_gains=True,
    attn_impl="efficient",  # efficient | reference (materialised T x T, for tests)
    zero_init_query=False,
    qk_bias=True,
)

# Value / projection defaults (paper Sec. 4.2, Eq. 6, Figs. 3-4); the same for every kind and size.
_VALUE_PROJ_DEFAULTS = dict(
    value="dense",  # dense | identity | reparam
    proj="dense",
    value_layer0="",  # "" = same as `value`
    vp_init="normal",  # dense W_V/W_P init: normal (std init_std) | orth
    reparam_init="identity",  # W_init of W = alpha*W_init + beta*dW: identity | orth | normal
    reparam_alpha=1.0,
    reparam_beta=0.2,
    reparam_train=True,  # alpha, beta trainable (no decay) or fixed
    reparam_beta_v0=-1.0,  # layer-0 beta_V override; < 0 = use reparam_beta
    reparam_beta_p_last=-1.0,  # last-layer beta_P override; < 0 = use reparam_beta
    reparam_seed=0,  # W_init is regenerated from this seed (never trained or checkpointed)
)


def _defaults(kind: str, size: str) -> dict:
    shapes = dict(_BERT_PAPER if (kind == "bert" and size == "paper") else _SIZES[size])
    bert = kind == "bert"
    return dict(
        kind=kind,
        block="pre_ln",
        size=size,
        **shapes,
        # --- block structure and gains (paper Eqs. 1, 7) ---
        structure="sequential",  # sequential | parallel | post_ln
        attn_skip=True,  # alpha_SA (sequential/post_ln) or alpha_comb (parallel): fixed 1 or absent
        mlp_skip=True,  # alpha_FF (sequential/post_ln only): present or absent
        train_alpha_ff=False,  # trainable alpha_FF (init 1) instead of fixed 1
        train_beta_sa=False,  # trainable beta_SA (init 1) instead of fixed 1
        train_beta_ff=False,  # trainable beta_FF (init `beta_ff`) instead of fixed 1
        # --- attention (paper Sec. 4.1, Eq. 5) ---
        **_ATTENTION_DEFAULTS,
        # --- value / projection (paper Sec. 4.2, Eq. 6, Figs. 3-4) ---
        **_VALUE_PROJ_DEFAULTS,
        # --- norms (docs/simplified_tf.md section 5) ---
        norm="layernorm" if bert else "rmsnorm",
        norm_eps=1e-12 if bert else 1e-5,
        rms_eps_placement="outside",  # outside: x/(rms+eps) (reference) | inside: x/sqrt(ms+eps)
        first_norm="",  # norm on layer 0's input when `norm=none` ("" = none)
        first_norm_eps=1e-5,
        final_norm="layernorm",
        final_norm_eps=1e-12 if bert else 1e-5,
        # --- MLP ---
        activation="glu_gelu" if bert else "relu",
        relu_slope=0.0,  # leaky-relu slope of `relu`
        # --- embeddings ---
        pos_emb="learned",  # learned | sinusoidal
        init_std=0.02,
        dropout=0.0,  # branch + embedding dropout (needs a dropout rng in the call); 0 in pretraining
        # --- execution ---
        dtype="float32",  # compute dtype; params stay float32, softmax/cumsum/norms in float32
        scan_layers=True,  # lax.scan over stacked layers 1..L-1 (False: python loop, same params)
        remat=False,
    )


# Implementation choices: the same function computed by another program (benchmarks/ab.py times
# each against its alternative; the first choice is the default). A config holds one only when it is
# set, so default configs, and the run ids that hash them, do not change.
IMPLEMENTATIONS = {
    "rmsnorm_grad": ("custom", "autodiff"),  # RMSNorm backward: hand-written VJP | JAX autodiff
    "cumsum_impl": ("blocked", "xla"),  # shaped attention's causal centring: blocked | jnp.cumsum
    "fuse_parallel_inputs": (True, False),  # parallel block: one matmul for the QK and MLP inputs
}


def implementation(cfg: ml_collections.ConfigDict, key: str):
    """The implementation choice `key` of a model config (its default when unset)."""
    return cfg.get(key, IMPLEMENTATIONS[key][0])


# The keys of a model config that take one of a fixed set of values, and those values.
_CHOICES = {
    "kind": KINDS,
    "block": BLOCKS,
    "structure": STRUCTURES,
    "attention": ATTENTIONS,
    "attn_matrix": ATTN_MATRICES,
    "attn_gains": ATTN_GAINS,
    "attn_impl": ATTN_IMPLS,
    "value": VP_KINDS,
    "proj": VP_KINDS,
    "value_layer0": ("",) + VP_KINDS,
    "vp_init": VP_INITS,
    "reparam_init": REPARAM_INITS,
    "norm": NORMS,
    "first_norm": FIRST_NORMS,
    "final_norm": FINAL_NORMS,
    "rms_eps_placement": EPS_PLACEMENTS,
    "activation": ACTIVATIONS,
    "pos_emb": POS_EMBS,
    "dtype": DTYPES,
}


def model_config(
    block: str = "pre_ln", size: str = "tiny", kind: str = "decoder", **overrides
) -> ml_collections.ConfigDict:
    """Builds and validates a model config. Unknown override keys raise a ConfigError."""
    check_choice("model.kind", kind, KINDS)
    check_choice("model.block", block, BLOCKS)
    check_choice("model.size", size, SIZES)
    values = _defaults(kind, size)
    values.update(_PRESETS.get(block, {}))
    values["block"] = block
    if block not in SKIPLESS_BLOCKS:
        values["beta_ff"] = 1.0  # standard blocks: fixed beta_FF = 1; skipless keep the size preset
    for key, val in overrides.items():
        if key not in values and key not in IMPLEMENTATIONS:
            valid = sorted(values) + sorted(IMPLEMENTATIONS)
            raise ConfigError(f"Unknown model config key {key!r}. Valid keys: {', '.join(valid)}.")
        if block == "sas_p_nonorm" and key == "norm" and val != "none":
            raise ConfigError(
                f"block='sas_p_nonorm' has no norms, so norm={val!r} is contradictory; use "
                f"block='sas_p' with norm={val!r}, or keep norm='none'."
            )
        values[key] = val
    cfg = ml_collections.ConfigDict(values)
    validate(cfg)
    return cfg


def validate(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks choices and consistency; raises ConfigError naming the bad value and the choices."""
    for key, choices in _CHOICES.items():
        check_choice(f"model.{key}", cfg[key], choices)
    for key, choices in IMPLEMENTATIONS.items():
        check_choice(f"model.{key}", implementation(cfg, key), choices)
    for key in _SHAPE_FIELDS:
        if int(cfg[key]) < 1:
            raise ConfigError(f"model.{key}={cfg[key]!r} must be a positive integer.")
    if cfg.width % cfg.num_heads:
        raise ConfigError(
            f"model.num_heads={cfg.num_heads} does not divide model.width={cfg.width}; valid head "
            f"counts: {', '.join(str(h) for h in range(1, cfg.width + 1) if cfg.width % h == 0)}."
        )
    if cfg.activation == "glu_gelu" and cfg.d_ff % 2:
        raise ConfigError(f"model.d_ff={cfg.d_ff} must be even for activation='glu_gelu'.")
    if cfg.seq_len > cfg.max_len:
        raise ConfigError(f"model.seq_len={cfg.seq_len} exceeds model.max_len={cfg.max_len}.")
    if cfg.structure == "parallel" and cfg.mlp_skip:
        raise ConfigError(
            "model.mlp_skip=True with structure='parallel': the parallel block has one skip "
            "(alpha_comb), set by model.attn_skip; valid mlp_skip: False."
        )
    if cfg.first_norm and cfg.norm != "none":
        raise ConfigError(
            f"model.first_norm={cfg.first_norm!r} only applies with norm='none' "
            f"(got norm={cfg.norm!r}); valid first_norm here: ''."
        )
    return cfg

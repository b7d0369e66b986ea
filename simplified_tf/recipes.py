"""Pretraining recipes: the full training config of a decoder LM or a BERT MLM run.

`decoder_config(block, size, ...)` follows the CodeParrot recipe of He & Hofmann (2024), App. D.1 and
the authors' code (bobby-he/simplified_transformers): AdamW (0.9, 0.999), eps 1e-8, weight decay 0.1,
clipping at 1.0, 5% linear warmup then linear decay to ~0, peak LR 1e-3 (V-SkipInit 3e-4; 1e-4 at 72
layers). `bert_config(...)` follows Crammed BERT (Geiping & Goldstein 2023) as the paper's App. D.2
uses it: AdamW (0.9, 0.98), eps 1e-12, weight decay 0.1, clipping at 0.5, LR rising linearly to its
peak at 75% of training and then decaying linearly; peak 3e-3 for SAS/SAS-P, 2e-3 for norm-free SAS-P,
1e-3 otherwise; at the paper sizes the batch ramps linearly to 8192 sequences, reached at 60% of
the data (`trainloop.ramp`), with "training" measured in data consumed for both schedules.

The config files in `configs/` parse their command-line args and call these functions; the
reproduction figures call them directly, so both build identical configs.
"""

from __future__ import annotations

import ml_collections

from simplified_tf.data import default_data_config
from simplified_tf.model_config import KINDS, model_config
from simplified_tf.params import frozen_rules, no_decay_rules
from trainloop.config_util import ConfigError, check_choice
from trainloop.defaults import base_config
from trainloop.ramp import BatchRamp

# Per size: (num_steps, batch_size, grad_accum_steps, eval_every, log_every, checkpoint_every).
# size=deep accumulates 4 microbatches: 72 layers at batch 128 need up to 18.2 GiB per device on 8
# devices (bfloat16, v_skipinit; `scripts/model_info.py --memory`), 14.2 GiB as 2 x 64 and 11.5 GiB
# as 4 x 32 (params and AdamW state, replicated, are ~7 GiB of it). Accumulation is exact, so the
# recipe is unchanged (the reference itself ran 32 x 4).
DECODER_SCHEDULES = {
    "tiny": (50, 8, 1, 25, 10, 0),
    "quick": (300, 8, 1, 25, 25, 100),
    "small": (2000, 8, 1, 100, 20, 500),  # CPU: batch 8 runs at ~0.3 s/step on 2 cores
    "medium": (10_000, 32, 1, 500, 50, 2000),
    "paper": (43_000, 128, 1, 500, 50, 5000),  # ~700M tokens; the real count depends on chunking
    "deep18": (43_000, 128, 1, 500, 50, 5000),
    "deep": (43_000, 128, 4, 500, 50, 5000),
}
BERT_SCHEDULES = {
    "tiny": (50, 8, 1, 25, 10, 0),
    "quick": (300, 8, 1, 25, 25, 100),
    "small": (2000, 32, 1, 200, 20, 1000),
    "medium": (10_000, 64, 1, 500, 50, 2000),
    # Cramming's 8192-sequence batch as 64-sequence microbatches; ~600K microbatches of data
    # (num_steps counts full batches: the batch ramp turns it into more, smaller steps).
    "paper": (4700, 8192, 128, 250, 10, 500),
    "deep18": (4700, 8192, 128, 250, 10, 500),
    "deep": (4700, 8192, 128, 250, 10, 500),
}
# Cramming's batch ramp: linear in the data consumed, full batch at 60% of it (sizes with >= 2
# microbatches per batch; the others train at a fixed batch).
BERT_RAMP_FRACTION = {"paper": 0.6, "deep18": 0.6, "deep": 0.6}


def decoder_peak_lr(block: str, size: str) -> float:
    """Paper App. D.1: 1e-3 for every block except V-SkipInit (3e-4; 1e-4 at 72 layers)."""
    if block == "v_skipinit":
        return 1e-4 if size == "deep" else 3e-4
    return 1e-3


def bert_peak_lr(block: str, size: str = "") -> float:
    """Paper App. D.2: 3e-3 for SAS/SAS-P, 2e-3 for norm-free SAS-P, Cramming's 1e-3 otherwise."""
    del size
    return {"sas": 3e-3, "sas_p": 3e-3, "sas_p_nonorm": 2e-3}.get(block, 1e-3)


def peak_lr(kind: str, block: str, size: str) -> float:
    return decoder_peak_lr(block, size) if kind == "decoder" else bert_peak_lr(block, size)


def _model_overrides(
    layers: int, seq: int, dtype: str, beta_ff: float, scan: bool, remat: bool, model: dict
):
    out = dict(scan_layers=scan, remat=remat)
    if layers:
        out["num_layers"] = layers
    if dtype:
        out["dtype"] = dtype
    if seq:
        out["seq_len"] = seq
    if beta_ff:
        out["beta_ff"] = beta_ff
    out.update(model or {})
    return out


# AdamW (b1 = 0.9) of each recipe: "decoder" follows the CodeParrot training the paper used (HF
# polynomial decay to 1e-7 = 1e-4 x the peak of 1e-3), "bert" Crammed BERT's pretraining (paper
# App. D.2), "finetune" Crammed BERT's GLUE fine-tuning.
ADAMW_FIELDS = (
    "b2",
    "eps",
    "weight_decay",
    "clip_norm",
    "schedule",
    "warmup_fraction",
    "end_lr_fraction",
)
# fmt: off
ADAMW_RECIPES = {
    #            b2     eps    decay clip  schedule         warmup end_lr
    "decoder":  (0.999, 1e-8,  0.1,  1.0,  "warmup_linear", 0.05,  1e-4),
    "bert":     (0.98,  1e-12, 0.1,  0.5,  "warmup_linear", 0.75,  0.0),
    "finetune": (0.98,  1e-6,  0.0,  0.0,  "warmup_cosine", 0.1,   0.0),
}
# fmt: on


def set_adamw(c: ml_collections.ConfigDict, recipe: str, *, lr: float, **changes) -> None:
    """Sets `c.optimizer` to the AdamW of `recipe` (a key of ADAMW_RECIPES) at peak `lr`, with
    `changes` to its fields; which parameters are kept out of weight decay, and which are frozen,
    follow the rules of the model `c.model`."""
    values = dict(zip(ADAMW_FIELDS, ADAMW_RECIPES[recipe], strict=True))
    unknown = sorted(set(changes) - set(values))
    if unknown:
        raise ValueError(f"Unknown AdamW field(s) {unknown}; valid: {', '.join(ADAMW_FIELDS)}.")
    values |= changes
    o = c.optimizer
    o.name = "adamw"
    o.lr = lr
    o.b1, o.b2, o.eps = 0.9, values["b2"], values["eps"]
    for name in ADAMW_FIELDS[2:]:
        o[name] = values[name]
    o.no_decay = no_decay_rules(c.model)
    o.frozen = frozen_rules(c.model)  # fixed W_init / fixed reparam gains, if the task keeps them


def pretrain_config(
    kind: str,
    block: str = "pre_ln",
    size: str = "small",
    *,
    steps: int = 0,
    lr: float = 0.0,
    batch: int = 0,
    accum: int = 0,
    layers: int = 0,
    seq: int = 0,
    dtype: str = "",
    scan: bool = True,
    remat: bool = False,
    seed: int = 0,
    beta_ff: float = 0.0,
    model: dict | None = None,
    schedule: str = "",
    ramp: float = -1.0,
) -> ml_collections.ConfigDict:
    """The config of a pretraining run: kind "decoder" (task "lm") or "bert" (task "mlm").

    0 / "" keeps the size preset; `model` overrides model keys. `schedule` (decoder only) replaces
    the recipe's warmup_linear. `ramp` (BERT only): fraction of the data budget over which the
    batch ramps linearly from one microbatch to the full batch (`trainloop.ramp`); -1 keeps the
    size preset (0.6 at the paper sizes), 0 disables it. With a ramp, `steps` (or the preset's
    num_steps) is the data budget in full batches, and `num_steps` becomes the optimizer steps
    that consume it.
    """
    check_choice("kind", kind, KINDS)
    if kind == "bert" and schedule:
        raise ConfigError(f"schedule={schedule!r}: the BERT recipe's schedule is fixed.")
    if kind == "decoder" and ramp >= 0:
        raise ConfigError(f"ramp={ramp}: the batch ramp is part of the BERT recipe only.")
    m = model_config(
        block, size, kind, **_model_overrides(layers, seq, dtype, beta_ff, scan, remat, model)
    )
    c = base_config()
    c.task = "lm" if kind == "decoder" else "mlm"
    c.seed = seed
    schedules = DECODER_SCHEDULES if kind == "decoder" else BERT_SCHEDULES
    num_steps, batch_size, grad_accum, eval_every, log_every, ckpt_every = schedules[size]
    c.num_steps = steps or num_steps
    c.batch_size = batch or batch_size
    c.grad_accum_steps = accum or grad_accum
    c.eval_every, c.log_every, c.checkpoint_every = eval_every, log_every, ckpt_every
    c.model = m
    fraction = BERT_RAMP_FRACTION.get(size, 0.0) if ramp < 0 else ramp
    if kind == "bert" and fraction > 0 and c.grad_accum_steps >= 2:
        budget = c.num_steps * c.grad_accum_steps  # microbatches
        c.batch_ramp_microbatches = max(1, round(fraction * budget))
        c.num_steps = BatchRamp(c.grad_accum_steps, c.batch_ramp_microbatches).steps_for(budget)
    changes = {"schedule": schedule} if schedule else {}
    set_adamw(c, kind, lr=lr or peak_lr(kind, block, size), **changes)
    c.data = default_data_config(kind, vocab_size=m.vocab_size, seq_len=m.seq_len)
    return c


def decoder_config(
    block: str = "pre_ln", size: str = "small", **kwargs
) -> ml_collections.ConfigDict:
    """Causal-LM config (task "lm"); `kwargs` as in `pretrain_config`."""
    return pretrain_config("decoder", block, size, **kwargs)


def bert_config(block: str = "pre_ln", size: str = "small", **kwargs) -> ml_collections.ConfigDict:
    """Masked-LM config (task "mlm"); `kwargs` as in `pretrain_config`."""
    return pretrain_config("bert", block, size, **kwargs)

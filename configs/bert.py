"""Crammed-BERT MLM pretraining with a chosen block (spec §6.3), task "mlm".

Launch:
  python scripts/train.py --config=configs/bert.py:block=sas_p,size=small --workdir=runs/mlm_sas_p_small
  python scripts/train.py --config=configs/bert.py:block=pre_ln,size=tiny --workdir=runs/mlm_tiny
Paper recipe (accelerator; The Pile via --config.data.*):
  python scripts/train.py --config=configs/bert.py:block=sas,size=paper,dtype=bfloat16 --workdir=runs/mlm_sas_paper
Expected (spec §7, Figs. 7/27): the simplified blocks keep pace with pre_ln in MLM loss per step;
v_skipinit pre-trains worse. Param counts at size=paper: 120M (pre_ln, parallel, v_skipinit) vs
101M (sas variants).

Recipe: AdamW (0.9, 0.98), eps 1e-12, weight decay 0.1, clip 0.5; peak LR 3e-3 for sas/sas_p,
2e-3 for sas_p_nonorm, 1e-3 for the baselines; LR rises linearly to its peak at 75% of training,
then decays linearly. The Cramming batch ramp (to 8192 sequences at 60% of training) is not
supported by trainloop: size=paper uses a fixed 8192-sequence batch made of 64-sequence
microbatches (grad_accum_steps=128) and ~600K microbatch steps / 128 optimiser steps.

Args: block, size (tiny|small|medium|paper), steps, lr, batch, accum, dtype, scan, remat, seed,
beta_ff. 0 / "" keeps the preset. Model switches: --config.model.<key>=...
"""

from simplified_tf.data import default_data_config
from simplified_tf.model_config import model_config
from simplified_tf.params import frozen_rules, no_decay_rules
from trainloop.config_util import parse_arg
from trainloop.defaults import base_config

# Per size: (num_steps, batch_size, grad_accum_steps, eval_every, log_every, checkpoint_every).
_RECIPES = {
    "tiny": (50, 8, 1, 25, 10, 0),
    "small": (2000, 32, 1, 200, 20, 1000),
    "medium": (10_000, 64, 1, 500, 50, 2000),
    "paper": (4700, 8192, 128, 250, 10, 500),
    "deep18": (4700, 8192, 128, 250, 10, 500),
    "deep": (4700, 8192, 128, 250, 10, 500),
}


def peak_lr(block: str) -> float:
    return {"sas": 3e-3, "sas_p": 3e-3, "sas_p_nonorm": 2e-3}.get(block, 1e-3)


def get_config(arg=None):
    a = parse_arg(
        arg, block="pre_ln", size="small", steps=0, lr=0.0, batch=0, accum=0, dtype="",
        scan=True, remat=False, seed=0, beta_ff=0.0,
    )  # fmt: skip
    overrides = dict(scan_layers=a.scan, remat=a.remat)
    if a.dtype:
        overrides["dtype"] = a.dtype
    if a.beta_ff:
        overrides["beta_ff"] = a.beta_ff
    model = model_config(a.block, a.size, "bert", **overrides)

    c = base_config()
    c.task = "mlm"
    c.seed = a.seed
    steps, batch, accum, eval_every, log_every, ckpt_every = _RECIPES[a.size]
    c.num_steps = a.steps or steps
    c.batch_size = a.batch or batch
    c.grad_accum_steps = a.accum or accum
    c.eval_every = eval_every
    c.log_every = log_every
    c.checkpoint_every = ckpt_every
    c.model = model

    o = c.optimizer
    o.name = "adamw"
    o.lr = a.lr or peak_lr(a.block)
    o.b1, o.b2, o.eps = 0.9, 0.98, 1e-12
    o.weight_decay = 0.1
    o.clip_norm = 0.5
    o.schedule = "warmup_linear"
    o.warmup_fraction = 0.75
    o.end_lr_fraction = 0.0
    o.no_decay = no_decay_rules(model)
    o.frozen = frozen_rules(model)

    c.data = default_data_config("bert", vocab_size=model.vocab_size, seq_len=model.seq_len)
    return c

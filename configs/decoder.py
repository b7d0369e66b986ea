"""Decoder LM with a chosen Transformer block (He & Hofmann 2024, spec §6.1), task "lm".

Launch:
  python scripts/train.py --config=configs/decoder.py:block=sas_p,size=small --workdir=runs/lm_sas_p_small
  python scripts/train.py --config=configs/decoder.py:block=pre_ln,size=tiny --workdir=runs/lm_tiny
Paper recipe (CodeParrot, accelerator; data must be supplied via --config.data.*):
  python scripts/train.py --config=configs/decoder.py:block=sas,size=paper,dtype=bfloat16 --workdir=runs/lm_sas_paper
Expected (spec §7): at size=paper sas / sas_p match pre_ln per step (eval loss about 1.18 vs 1.15
after ~43K steps on CodeParrot); v_skipinit is clearly slower. At size=small (CPU, stdlib corpus) the
same ordering per step should be visible, with smaller gaps.

Args: block (pre_ln|post_ln|parallel|v_skipinit|sas|sas_p|sas_p_nonorm), size
(tiny|small|medium|paper|deep18|deep), steps, lr, batch, seq (training length), dtype
(float32|bfloat16), scan, remat, seed, beta_ff (init; skipless blocks), schedule
(warmup_linear|warmup_cosine). 0 / "" keeps the preset. Other model switches:
--config.model.<key>=... (see simplified_tf/model_config.py); the block preset itself is only
applied through the `block=` arg.
"""

from simplified_tf.data import default_data_config
from simplified_tf.model_config import model_config
from simplified_tf.params import frozen_rules, no_decay_rules
from trainloop.config_util import parse_arg
from trainloop.defaults import base_config

# Per size: (num_steps, batch_size, eval_every, log_every, checkpoint_every).
_RECIPES = {
    "tiny": (50, 8, 25, 10, 0),
    "small": (2000, 8, 100, 20, 500),  # CPU: batch 8 runs at ~0.5-1 s/step on 2 shared cores
    "medium": (10_000, 32, 500, 50, 2000),
    "paper": (43_000, 128, 500, 50, 5000),  # ~700M tokens; the real count depends on chunking
    "deep18": (43_000, 128, 500, 50, 5000),
    "deep": (43_000, 128, 500, 50, 5000),
}


def peak_lr(block: str, size: str) -> float:
    """Spec §6.1: 1e-3 for all blocks except v_skipinit (3e-4; 1e-4 at 72 layers)."""
    if block == "v_skipinit":
        return 1e-4 if size == "deep" else 3e-4
    return 1e-3


def get_config(arg=None):
    a = parse_arg(
        arg, block="pre_ln", size="small", steps=0, lr=0.0, batch=0, seq=0, dtype="",
        scan=True, remat=False, seed=0, beta_ff=0.0, schedule="warmup_linear",
    )  # fmt: skip
    overrides = dict(scan_layers=a.scan, remat=a.remat)
    if a.dtype:
        overrides["dtype"] = a.dtype
    if a.seq:
        overrides["seq_len"] = a.seq
    if a.beta_ff:
        overrides["beta_ff"] = a.beta_ff
    model = model_config(a.block, a.size, "decoder", **overrides)

    c = base_config()
    c.task = "lm"
    c.seed = a.seed
    steps, batch, eval_every, log_every, ckpt_every = _RECIPES[a.size]
    c.num_steps = a.steps or steps
    c.batch_size = a.batch or batch
    c.eval_every = eval_every
    c.log_every = log_every
    c.checkpoint_every = ckpt_every
    c.model = model

    o = c.optimizer
    o.name = "adamw"
    o.lr = a.lr or peak_lr(a.block, a.size)
    o.b1, o.b2, o.eps = 0.9, 0.999, 1e-8
    o.weight_decay = 0.1
    o.clip_norm = 1.0
    o.schedule = a.schedule
    o.warmup_fraction = 0.05
    o.end_lr_fraction = 1e-4  # HF polynomial decay ends at 1e-7 = 1e-4 x 1e-3
    o.no_decay = no_decay_rules(model)
    o.frozen = frozen_rules(model)  # fixed W_init / fixed reparam gains, if the task keeps them

    c.data = default_data_config("decoder", vocab_size=model.vocab_size, seq_len=model.seq_len)
    return c

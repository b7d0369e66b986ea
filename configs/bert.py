"""Crammed-BERT MLM pretraining with a chosen block (He & Hofmann 2024, App. D.2), task "mlm".

Launch:
  python scripts/train.py --config=configs/bert.py:block=sas_p,size=small --workdir=runs/mlm_sas_p_small
  python scripts/train.py --config=configs/bert.py:block=pre_ln,size=quick --workdir=runs/mlm_quick
Paper recipe (accelerator; The Pile via --config.data.*):
  python scripts/train.py --config=configs/bert.py:block=sas,size=paper,dtype=bfloat16 --workdir=runs/mlm_sas_paper
Expected (paper Figs. 7/27, Table 1): the simplified blocks keep pace with pre_ln in MLM loss per
step; v_skipinit pre-trains worse. Param counts at size=paper: 120M (pre_ln, parallel, v_skipinit)
vs 101M (sas variants). At size=quick (scripts/reproduce_simplified_tf.py --figure=bert --quick):
see docs/simplified_tf/bert/summary.md.

Recipe (simplified_tf/recipes.py): AdamW (0.9, 0.98), eps 1e-12, weight decay 0.1, clip 0.5; peak
LR 3e-3 for sas/sas_p, 2e-3 for sas_p_nonorm, 1e-3 for the baselines; LR rises linearly to its peak
at 75% of training, then decays linearly. size=paper: 8192-sequence batches of 64-sequence
microbatches (grad_accum_steps=128), ~600K microbatches of data (steps=4700 full batches), and
Cramming's batch ramp: the batch grows linearly from one microbatch to 8192 sequences, reached at
60% of the data (batch_ramp_microbatches), which makes 17,203 optimizer steps; the LR schedule
follows the data consumed (trainloop/ramp.py). ramp=0 gives a fixed batch (4700 steps).

Args: block, size (tiny|quick|small|medium|paper), layers (0: the size's), steps, lr, batch, accum, dtype,
scan, remat, seed, beta_ff, ramp. 0 / "" keeps the preset (ramp: -1). Model switches:
--config.model.<key>=...
"""

from simplified_tf.recipes import bert_config
from trainloop.config_util import parse_arg


def get_config(arg=None):
    a = parse_arg(
        arg, block="pre_ln", size="small", steps=0, lr=0.0, batch=0, layers=0, accum=0, dtype="",
        scan=True, remat=False, seed=0, beta_ff=0.0, ramp=-1.0,
    )  # fmt: skip
    return bert_config(**a.to_dict())

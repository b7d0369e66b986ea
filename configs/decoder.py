"""Decoder LM with a chosen Transformer block (He & Hofmann 2024, App. D.1), task "lm".

Launch:
  python scripts/train.py --config=configs/decoder.py:block=sas_p,size=small --workdir=runs/lm_sas_p_small
  python scripts/train.py --config=configs/decoder.py:block=pre_ln,size=quick --workdir=runs/lm_quick
Paper recipe (CodeParrot, accelerator; data must be supplied via --config.data.*):
  python scripts/train.py --config=configs/decoder.py:block=sas,size=paper,dtype=bfloat16 --workdir=runs/lm_sas_paper
Expected (paper Figs. 5, 26 and the authors' README): at size=paper sas / sas_p match pre_ln per
step (eval loss about 1.18 vs 1.15 after ~43K steps on CodeParrot); v_skipinit is clearly slower.

Sizes: tiny (tests), quick (4 layers, d=128, vocab 2048, batch 8 x 128, 300 steps: the
reproduction's quick protocol, about 40 s per run on 2 CPU cores; `layers=` changes the depth alone,
as the depth figure does), small (6 x 256, vocab 8192),
medium (12 x 512), paper (18 x 768, vocab 50k), deep18 / deep (18 / 72 layers, d_ff = 2d).

Expected at size=quick with each block's tuned peak LR (final eval loss, mean ± std over seeds 0-2;
`python scripts/reproduce_simplified_tf.py --figure=parity --quick`, docs/simplified_tf/parity/,
computed at 2d4d9d6, before the streaming token store: its tokenizer now trains on a bounded sample,
so the vocabulary and the losses differ; sas_p, lr 8e-3, seed 0 gives 4.70 at c0eff72, 4.50 then):
  python scripts/train.py --config=configs/decoder.py:block=pre_ln,size=quick,lr=1e-3 --workdir=runs/q_pre_ln   # 5.13 ± 0.03
  python scripts/train.py --config=configs/decoder.py:block=sas_p,size=quick,lr=8e-3 --workdir=runs/q_sas_p     # 4.53 ± 0.10
parallel 4.90 ± 0.04 (lr 2e-3), v_skipinit 4.76 ± 0.15 (4e-3), sas 4.48 ± 0.13 (8e-3), sas_p_nonorm
5.23 ± 0.05 (1e-3). The recipe LRs (1e-3; v_skipinit 3e-4) are tuned for size=paper, not for quick.

Args: block (pre_ln|post_ln|parallel|v_skipinit|sas|sas_p|sas_p_nonorm), size, steps, lr, batch,
accum (microbatches per batch; size=deep uses 4 to fit 16 GB chips), seq (training length), dtype (float32|bfloat16), scan, remat, seed, beta_ff (init; skipless
blocks), schedule (warmup_linear|warmup_cosine). 0 / "" keeps the preset. Other model switches:
--config.model.<key>=... (see simplified_tf/model_config.py); the block preset itself is only
applied through the `block=` arg. The recipe lives in simplified_tf/recipes.py.
"""

from simplified_tf.recipes import decoder_config
from trainloop.config_util import parse_arg


def get_config(arg=None):
    a = parse_arg(
        arg, block="pre_ln", size="small", steps=0, lr=0.0, batch=0, layers=0, accum=0, seq=0,
        dtype="",
        scan=True, remat=False, seed=0, beta_ff=0.0, schedule="warmup_linear",
    )  # fmt: skip
    return decoder_config(**a.to_dict())

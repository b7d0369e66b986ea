"""Offline downstream suite (acceptability, pair, topic) built from the Python standard library.

Fine-tune a BERT pretraining run on the three code tasks, 3 seeds each, one table:
  python scripts/train.py --config=configs/bert.py:block=pre_ln,size=quick --workdir=runs/mlm_pre_ln_quick
  python scripts/finetune.py --config=configs/code_suite.py:block=pre_ln,size=quick,init_from=runs/mlm_pre_ln_quick --out=results/code_pre_ln
All six blocks, pretraining included (He & Hofmann 2024, Tables 1/2 at CPU scale):
  python scripts/downstream_tables.py --out=results/downstream_quick
Expected at size=quick (docs/simplified_tf/downstream/summary.md, at 1844f57; scores x 100, mean ±
std over 3 seeds): suite average pre_ln 32.4 ± 1.3, sas_p 34.0 ± 0.6; acceptability MCC 3-8, pair
47-54 (chance is 50), topic 35-49 (8 classes, chance 12.5). A 300-step, 4-layer pretraining barely
reaches the first two tasks; the blocks are level within seed noise.

Tasks (simplified_tf/downstream/code_suite.py): `acceptability` (real snippet vs one-edit
corruption that Python's parser rejects; MCC), `pair` (same module?; mean of F1 and accuracy),
`topic` (which of the 8 largest packages; accuracy). Sizes: --config.downstream.code.* .

Recipe: the GLUE recipe of configs/glue.py (5 epochs, batch 32, cosine decay, AdamW eps 1e-6,
dropout 0.1) except the peak LR: optimizer.lr = 1e-3 instead of 1.5e-4, for runs of 100 steps of
a 4-layer, 128-wide model (simplified_tf/downstream/recipes.py says why).

Args: tasks ("all" or e.g. "topic,pair"), block, size, init_from, seeds, seed, lr, epochs,
batch, dtype. 0 / "" keeps the recipe.
"""

from simplified_tf.downstream.recipes import finetune_config
from trainloop.config_util import parse_arg


def get_config(arg=None):
    a = parse_arg(
        arg, tasks="all", block="pre_ln", size="quick", init_from="", seeds=3, seed=0, lr=0.0,
        epochs=0, batch=0, dtype="",
    )  # fmt: skip
    return finetune_config("code", **a.to_dict())

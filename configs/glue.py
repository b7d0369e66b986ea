"""GLUE fine-tuning of a Crammed-BERT pretraining run (He & Hofmann 2024, Tables 1 and 2).

Every task x 3 seeds, one table (scripts/finetune.py):
  python scripts/finetune.py --config=configs/glue.py:block=sas_p,init_from=runs/mlm_sas_p_paper,glue_dir=glue_data --out=results/glue_sas_p
One task, one seed:
  python scripts/finetune.py --config=configs/glue.py:tasks=rte,block=pre_ln,init_from=runs/mlm_pre_ln_paper,seeds=1 --out=results/glue_rte

`init_from` is the --workdir of `scripts/train.py --config=configs/bert.py:block=<block>,size=paper`
(block and size must match it); `glue_dir` the folder of GLUE's TSV files as its download script
lays them out (CoLA/, SST-2/, MRPC/, QQP/, STS-B/, MNLI/, QNLI/, RTE/, WNLI/), or `hf:nyu-mll/glue`
to read the hub copy (needs `pip install -e '.[hf]'` and network).

Expected (paper Table 1, GLUE average of 9 dev scores, mean ± std over 3 seeds, after the full
24-hour Crammed-BERT pretraining): pre_ln 78.9 ± .7, parallel 78.5 ± .6, v_skipinit 78.0 ± .3,
sas 78.4 ± .8, sas_p 78.3 ± .4, sas_p_nonorm NaNs in fine-tuning. Per task (Table 2, pre_ln):
MNLI 81.2/81.6, SST-2 89.9, STS-B 87.6, RTE 56.3, QNLI 88.9, QQP 87.1, MRPC 88.3, CoLA 49.4.

Recipe (simplified_tf/downstream/recipes.py; the Cramming protocol the paper uses): 5 epochs,
batch 32, peak LR 1.5e-4, 10% warmup then cosine decay, AdamW (0.9, 0.98), eps 1e-6, no weight
decay, dropout 0.1, sequences of at most 128 tokens. Scores: CoLA MCC; MRPC, QQP mean of F1 and
accuracy; STS-B mean of Pearson and Spearman; the others accuracy; the average is the mean of
MNLI-m, MNLI-mm, SST-2, STS-B, RTE, QNLI, QQP, MRPC and CoLA (WNLI is optional and not averaged).

Args: tasks ("all" or e.g. "rte,mrpc"), block, size, init_from, glue_dir, seeds, seed, lr,
epochs, batch, dtype. 0 / "" keeps the recipe. Any key: --config.<key>=... (e.g.
--config.downstream.max_train_examples=2000 for a quick look at a big task).
"""

from simplified_tf.downstream.recipes import finetune_config
from trainloop.config_util import parse_arg


def get_config(arg=None):
    a = parse_arg(
        arg, tasks="all", block="pre_ln", size="paper", init_from="", glue_dir="glue_data",
        seeds=3, seed=0, lr=0.0, epochs=0, batch=0, dtype="",
    )  # fmt: skip
    return finetune_config("glue", **a.to_dict())

"""Fine-tuning configs: GLUE with the paper's protocol, and the offline code suite at CPU scale.

GLUE (He & Hofmann 2024, App. D.2, which uses Cramming's protocol unchanged): 5 epochs, batch 32,
peak LR 1.5e-4 with cosine decay, AdamW with eps 1e-6, dropout 0.1, 3 seeds. The rest follows
Cramming's GLUE evaluation config (JonasGeiping/cramming, `eval/GLUE_sane.yaml` and
`eval/optim/adam.yaml`): betas (0.9, 0.98), no weight decay, 10% linear warmup, no gradient
clipping, a tanh pooler on [CLS] with one dense layer, sequences up to 128 tokens.

Offline code suite (`finetune_config("code", ...)`, configs/code_suite.py): the same recipe
except the peak LR, `CODE_LR` = 1e-3 (a visible config value, `optimizer.lr`). The CPU-scale runs
are short (100 steps of a 4-layer, 128-wide encoder); at Cramming's 1.5e-4 they stay far from
converged: pre_ln, 120 steps, topic accuracy 31% at 1.5e-4 vs 43-44% at 5e-4 and 1e-3 (one seed
each, a quick LR sweep on this suite).

Config layout (one run = one task, one seed; scripts/finetune.py expands `downstream.tasks` and
`downstream.seeds`):
  model            the BERT body (with `init_from`, it must match the pretraining run's model)
  init_from        a pretraining workdir (configs/bert.py); "" trains from scratch
  data             the tokenizer's data config when init_from is "" (else the pretraining run's)
  downstream.*     suite ("glue" | "code"), tasks, seeds, epochs, glue_dir, code suite sizes, ...
  optimizer.*      as every trainloop config
`num_steps` = 0 means `epochs` passes over the training split (rounded up to whole batches).
"""

from __future__ import annotations

import ml_collections

from simplified_tf.data import default_data_config
from simplified_tf.downstream.code_suite import default_suite_config
from simplified_tf.model_config import model_config
from simplified_tf.recipes import set_adamw
from trainloop.defaults import base_config

SUITES = ("glue", "code")
# Paper / Cramming fine-tuning recipe.
GLUE_LR, GLUE_EPOCHS, BATCH, DROPOUT, SEEDS = 1.5e-4, 5, 32, 0.1, 3
# CPU-scale offline suite: a higher peak LR for its short runs (see the module docstring).
CODE_LR, CODE_EPOCHS = 1e-3, 5


def finetune_config(
    suite: str = "glue",
    tasks: str = "all",
    block: str = "pre_ln",
    size: str = "paper",
    *,
    init_from: str = "",
    lr: float = 0.0,
    epochs: int = 0,
    batch: int = 0,
    seeds: int = SEEDS,
    seed: int = 0,
    glue_dir: str = "glue_data",
    dtype: str = "",
) -> ml_collections.ConfigDict:
    """A fine-tuning config; 0 / "" keeps the suite's recipe value."""
    code = suite == "code"
    m = model_config(block, size, "bert", dropout=DROPOUT, **({"dtype": dtype} if dtype else {}))
    c = base_config()
    c.task = "finetune"
    c.seed = seed
    c.num_steps = 0  # 0 = downstream.epochs over the training split
    c.batch_size = batch or BATCH
    c.log_every = 10
    c.eval_every = 0  # > 0: loss/accuracy curves in metrics.jsonl; official metrics come after
    c.checkpoint_every = 0  # the final state is saved
    c.keep_checkpoints = 1
    c.model = m
    c.init_from = init_from
    c.data = default_data_config("bert", vocab_size=m.vocab_size, seq_len=m.seq_len)

    d = c.downstream = ml_collections.ConfigDict()
    d.suite = suite
    d.tasks = tasks  # "all" or comma-separated names of the suite's tasks
    d.seeds = seeds  # runs per task, with seeds seed, seed+1, ...
    d.epochs = epochs or (CODE_EPOCHS if code else GLUE_EPOCHS)
    d.head_dropout = DROPOUT
    # 0 = the model's max_len (128 for Crammed BERT). Code suite: 64 tokens hold every single
    # snippet; pairs are truncated longest-first.
    d.max_seq_len = 64 if code else 0
    d.max_train_examples = 0  # 0 = all; > 0 keeps the first ones (quick looks at big tasks)
    d.eval_batch_size = 128
    d.glue_dir = glue_dir  # folder of GLUE's TSV layout, or "hf:nyu-mll/glue" (.[hf] extra)
    d.code = default_suite_config()

    set_adamw(c, "finetune", lr=lr or (CODE_LR if code else GLUE_LR))
    return c

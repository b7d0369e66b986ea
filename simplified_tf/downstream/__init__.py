"""Downstream fine-tuning of the BERT encoder: GLUE (He & Hofmann 2024, Tables 1/2) and an offline
code-understanding suite built from the embedded corpus.

Modules, one job each:
- `examples`: the common shape of a task (texts, labels, `TaskSpec`).
- `glue`: GLUE task specs, label maps, TSV and hub readers.
- `code_suite`: the offline tasks (acceptability, pair, topic) with labels true by construction.
- `metrics`: MCC, accuracy, F1, Pearson, Spearman; task scores and the suite average.
- `encoding`: `[CLS] a [SEP] b [SEP]` encoding, padding, batches.
- `recipes`: fine-tuning configs (GLUE: the Cramming protocol; code suite: CPU scale).
- `finetune`: one task as a `trainloop` Task, `init_from` restore, official evaluation, runs.
- `report`: mean ± std tables over seeds.
- `tables`: the CPU-scale Tables 1/2 (pretrain six blocks, fine-tune each on the code suite).
"""

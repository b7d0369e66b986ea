"""He & Hofmann (2024) Tables 1/2 at CPU scale: six blocks pretrained, fine-tuned on the code suite.

  python scripts/downstream_tables.py --out=results/downstream_quick

Pretrains BERT size=quick (4 layers x 128, 300 steps) with pre_ln, parallel, v_skipinit, sas,
sas_p and sas_p_nonorm at each block's recipe peak LR, fine-tunes each on the offline code suite
(acceptability, pair, topic) with 3 seeds, and writes OUT/summary.md / OUT/summary.json: the
suite average (Table 1) and every task (Table 2), mean ± std over seeds, with NaNs where a run
diverged. Rerunning resumes and skips finished runs. See simplified_tf/downstream/tables.py.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainloop import host_alloc  # noqa: E402  (imports no jax: runs before jax starts its threads)

host_alloc.apply_from_argv(sys.argv)

from absl import flags  # noqa: E402

from trainloop import cli  # noqa: E402

host_alloc.define_flag()
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Fine-tuning seeds per block and task.")
_BLOCKS = flags.DEFINE_list(
    "blocks", "pre_ln,parallel,v_skipinit,sas,sas_p,sas_p_nonorm", "Blocks (table rows)."
)
_FULL = flags.DEFINE_bool("full", False, "Pretrain size=small (2000 steps) instead of quick.")
flags.mark_flags_as_required(["out"])


def main(argv):
    cli.prologue(argv)
    from simplified_tf.downstream import tables

    # A run stopped by a signal raises `Interrupted`: exit status 130, "Rerun ... to resume."
    summary = tables.run(
        _OUT.value, quick=not _FULL.value, seeds=_SEEDS.value, blocks=_BLOCKS.value
    )
    print(tables.summary_markdown(summary))


if __name__ == "__main__":
    cli.run(main, stop_note="between runs (finished runs and checkpoints stay in --out).")

"""Fine-tunes a BERT run on every task x seed of a downstream suite and writes one table.

  python scripts/finetune.py --config=configs/glue.py:block=pre_ln,init_from=runs/mlm_pre_ln_paper --out=results/glue_pre_ln
  python scripts/finetune.py --config=configs/code_suite.py:block=pre_ln,size=quick,init_from=runs/mlm_pre_ln_quick --out=results/code_pre_ln

Each run trains through `trainloop.train.train_and_evaluate` into OUT/<task>/seed<k>/ and writes
its official metrics to results.json there; rerunning the command skips runs with results and
resumes unfinished ones. The table (per task, and the suite average, mean ± std over seeds) goes to
OUT/summary.md, with every number in OUT/summary.json. Bad input (unknown task, missing GLUE
folder or file, wrong TSV columns, an init_from that is a decoder or has another vocabulary or
width) stops with one paragraph before anything is written.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainloop import host_alloc  # noqa: E402  (imports no jax: runs before jax starts its threads)

host_alloc.apply_from_argv(sys.argv)  # CPU speed, as in scripts/train.py

from absl import flags  # noqa: E402

from trainloop import cli  # noqa: E402
from trainloop.config_util import check_min  # noqa: E402

host_alloc.define_flag()
_CONFIG = cli.define_config_flag(
    "config", "Fine-tuning config (configs/glue.py or configs/code_suite.py)."
)
_OUT = flags.DEFINE_string("out", None, "Output directory (one workdir per task and seed inside).")
flags.mark_flags_as_required(["config", "out"])


def run(config, out: str) -> dict:
    """Runs (or finds finished) every task x seed of `config` into `out`; returns the summary."""
    import json

    from simplified_tf.downstream import finetune, report
    from simplified_tf.downstream.glue import GLUE_AVERAGE

    tasks = finetune.expand_tasks(config)
    seeds = int(config.downstream.seeds)
    check_min("downstream.seeds", seeds, 1)
    data = {t: finetune.load_task_data(config, t) for t in tasks}  # all input is checked first
    encoder = finetune.load_encoder(config)
    prepared = {t: finetune.prepare(config, encoder, t, data.pop(t)) for t in tasks}
    os.makedirs(out, exist_ok=True)
    runs = []
    for task in tasks:
        for k in range(seeds):
            seed = int(config.seed) + k
            result = finetune.run(prepared[task], seed, os.path.join(out, task, f"seed{seed}"))
            runs.append(result)
            scores = ", ".join(f"{n}={v:.2f}" for n, v in result["scores"].items())
            print(f"{task} seed {seed}: {result['status']} {scores}", file=sys.stderr, flush=True)
    glue = config.downstream.suite == "glue"
    row = report.summarize_row(runs, GLUE_AVERAGE if glue else None)
    label = f"{config.model.block} ({config.model.size})"
    columns = report.columns_of(runs)
    table = report.markdown({label: row}, columns, label="model")
    notes = [
        "",
        f"{seeds} seed(s) per task; scores x 100, mean ± sample std over seeds. Average of "
        f"{len(row['average_of'])} scores: {', '.join(row['average_of'])}"
        + (f" (missing: {', '.join(row['average_missing'])})" if row["average_missing"] else "")
        + ".",
        f"init_from: {config.init_from or '(none: trained from scratch)'}",
    ]
    summary = dict(label=label, columns=columns, row=row, runs=runs, config=config.to_dict())
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True, default=str)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table + "\n" + "\n".join(notes) + "\n")
    print(table + "\n" + "\n".join(notes))
    return summary


def main(argv):
    cli.prologue(argv)
    run(_CONFIG.value, _OUT.value)  # a run stopped by a signal: `Interrupted`, exit status 130


if __name__ == "__main__":
    cli.run(main, stop_note="between runs (finished runs and checkpoints stay in --out).")

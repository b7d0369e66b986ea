"""He & Hofmann (2024) Tables 1 and 2 at CPU scale: pretrain each block, fine-tune on the code suite.

`run(out_dir, quick=True, seeds=3)`:
1. pretrains BERT (the Crammed-BERT recipe of `simplified_tf.recipes.bert_config`, size "quick":
   4 layers x 128 wide, 300 steps; size "small" with quick=False) with every block of `BLOCKS` at
   its recipe peak LR, into OUT/pretrain/<block>;
2. fine-tunes each on the three tasks of the offline code suite with `seeds` seeds
   (`simplified_tf.downstream.recipes.finetune_config("code", ...)`), into
   OUT/finetune/<block>/<task>/seed<k>;
3. writes OUT/summary.md, OUT/summary.json and OUT/summary.png: per block the suite average
   (Table 1) and every task (Table 2) as mean ± std over seeds, the MLM eval loss and the
   parameter count.

Resumable: a finished pretraining (its checkpoint at the last step) or fine-tuning run (its
results.json) is not redone when the command is rerun, and an interrupted one resumes from its
checkpoint. A pretraining run that diverges is recorded in OUT/pretrain/<block>.nonfinite.json and
its block's fine-tuning runs as NaN; a fine-tuning run that diverges is a NaN for that run. Neither
stops the table.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence

from simplified_tf.compare import eval_curve, is_finished
from simplified_tf.downstream import claims, finetune, report
from simplified_tf.downstream.recipes import finetune_config
from simplified_tf.params import count_params
from simplified_tf.recipes import bert_config
from simplified_tf.repro import provenance
from simplified_tf.tasks import make_mlm_task
from trainloop.config_util import apply_overrides, check_choice, check_min
from trainloop.errors import Interrupted
from trainloop.train import NonFiniteError, train_and_evaluate

BLOCKS = ("pre_ln", "parallel", "v_skipinit", "sas", "sas_p", "sas_p_nonorm")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pretrain(
    block: str, size: str, out_dir: str, overrides=(), log: Callable[[str], None] = _say
) -> dict:
    """Pretrains (or finds finished) BERT with `block`; {"workdir", "status", "eval_loss", ...}.

    `overrides`: "dotted.key=value" strings applied to the pretraining config."""
    config = apply_overrides(bert_config(block, size), overrides)
    config.progress_bar = False
    workdir = os.path.join(out_dir, "pretrain", block)
    failed = f"{workdir}.nonfinite.json"
    info = dict(
        workdir=workdir,
        block=block,
        lr=float(config.optimizer.lr),
        steps=int(config.num_steps),
        params=int(count_params(config.model)["total"]),
    )
    if os.path.exists(failed):
        with open(failed) as f:
            return info | json.load(f)
    if not is_finished(workdir, int(config.num_steps)):
        log(f"[{block}] pretraining {config.num_steps} steps at lr {config.optimizer.lr:g}")
        start = time.perf_counter()
        try:
            result = train_and_evaluate(config, workdir, make_mlm_task(config))
            if result.interrupted:
                raise Interrupted(
                    f"Pretraining of {block} stopped by a signal at step {result.step}; its "
                    f"checkpoint is saved in {workdir}."
                )
        except NonFiniteError as e:
            record = dict(status="nonfinite", message=str(e))
            with open(failed, "w") as f:
                json.dump(record, f, indent=2)
            log(f"[{block}] pretraining diverged: {e}")
            return info | record
        log(f"[{block}] pretrained in {time.perf_counter() - start:.0f} s")
    curve = eval_curve(workdir)
    return info | dict(status="ok", eval_loss=curve["loss"][-1] if curve["loss"] else None)


def run(
    out_dir: str,
    quick: bool = True,
    seeds: int = 3,
    blocks: Sequence[str] = BLOCKS,
    tasks: str = "all",
    log: Callable[[str], None] = _say,
    size: str = "",
    pretrain_overrides: Sequence[str] = (),
    finetune_overrides: Sequence[str] = (),
) -> dict:
    """Runs (or resumes) the whole table into `out_dir` and returns the summary dict.

    `size` (default "quick", or "small" with quick=False) and the "dotted.key=value" overrides of
    the pretraining and fine-tuning configs (e.g. "data.source=DIR",
    "downstream.code.source=DIR") are for other scales and corpora; the rows are always blocks.
    """
    for b in blocks:
        check_choice("block", b, BLOCKS)
    check_min("seeds", seeds, 1)
    size = size or ("quick" if quick else "small")
    os.makedirs(out_dir, exist_ok=True)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    pretrained = {b: pretrain(b, size, out_dir, pretrain_overrides, log) for b in blocks}
    rows, all_runs, columns = {}, {}, []
    for block in blocks:
        config = finetune_config("code", tasks, block, size, init_from=pretrained[block]["workdir"])
        config = apply_overrides(config, finetune_overrides)
        config.progress_bar = False
        ok = pretrained[block]["status"] == "ok"
        runs = _finetune_block(config, block, ok, seeds, out_dir, log, start)
        rows[block] = report.summarize_row(runs)
        all_runs[block] = runs
        columns += [c for c in report.columns_of(runs) if c not in columns]
    summary = dict(
        size=size,
        seeds=seeds,
        blocks=list(blocks),
        columns=columns,
        pretrain=pretrained,
        rows=rows,
        claims=claims.claims(rows),
        runs=all_runs,
        seconds=round(time.perf_counter() - start, 1),
        commit=provenance.git_commit(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))),
        machine=provenance.machine(),
        load=[round(load_before, 2), round(os.getloadavg()[0], 2)],
    )
    write_summary(out_dir, summary)
    return summary


def _finetune_block(config, block: str, ok: bool, seeds: int, out_dir: str, log, start) -> list:
    """Every (task, seed) fine-tuning run of one block, resumed from `out_dir/finetune/...`; NaN
    results for every run when the block's pretraining did not finish (`ok` False)."""
    encoder = finetune.load_encoder(config) if ok else None
    runs = []
    for task in finetune.expand_tasks(config):
        prepared = finetune.prepare(config, encoder, task) if ok else None
        for seed in range(seeds):
            workdir = os.path.join(out_dir, "finetune", block, task, f"seed{seed}")
            if prepared is None:
                runs.append(_nan_results_for(config, task, seed))
                continue
            t0 = time.perf_counter()
            result = finetune.run(prepared, seed, workdir)
            runs.append(result)
            log(
                f"[{block}] {task} seed {seed}: {result['status']} "
                + ", ".join(f"{k}={v:.1f}" for k, v in result["scores"].items())
                + f" ({time.perf_counter() - t0:.0f} s; {time.perf_counter() - start:.0f} s "
                "in all)"
            )
    return runs


def _nan_results_for(config, task: str, seed: int) -> dict:
    """A NaN run for a block whose pretraining diverged (no encoder to fine-tune)."""
    spec = finetune.load_task_data(config, task).spec
    return dict(
        task=task,
        seed=seed,
        status="pretraining_nonfinite",
        message="The pretraining run diverged.",
        scores={n: float("nan") for n in spec.score_names},
        in_average=spec.in_average,
    )


def summary_markdown(summary: dict) -> str:
    table = report.markdown(summary["rows"], summary["columns"])
    lines = [
        f"Offline code suite, BERT size={summary['size']}, {summary['seeds']} fine-tuning seeds "
        f"per block and task; scores x 100 (Accept. = MCC, Pair = mean of F1 and accuracy, "
        "Topic = accuracy), mean ± sample std over seeds; average = mean of the task scores "
        "per seed.",
        "",
        table,
        "",
        "| block | pretraining LR | MLM eval loss | params |",
        "|---|---|---|---|",
    ]
    for block, p in summary["pretrain"].items():
        loss = "NaN (diverged)" if p["status"] != "ok" else f"{p.get('eval_loss') or 0:.3f}"
        lines.append(f"| {block} | {p['lr']:g} | {loss} | {p['params']:,} |")
    if summary.get("claims"):
        lines += [
            "",
            "Verdicts (computed; `simplified_tf/downstream/claims.py`): each block's suite average "
            "against pre_ln's, paired by fine-tuning seed.",
            "",
            claims.markdown(summary["claims"]),
        ]
    m, load = summary["machine"], summary["load"]
    lines += [
        "",
        f"Computed at commit `{summary['commit']}` on {m['cpu']} ({m['cores']} cores), Python "
        f"{m['python']}; {summary['seconds'] / 60:.1f} min in this invocation (finished runs are "
        f"reused), load average {load[0]:.1f} before and {load[1]:.1f} after.",
    ]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: str) -> None:
    """Bars per block: the average and every task, mean ± std over seeds (NaN rows left empty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = ["average"] + list(summary["columns"])
    blocks = list(summary["rows"])
    width = 0.8 / max(len(blocks), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 + 1.5 * len(names)), 3.4), dpi=90)
    for i, block in enumerate(blocks):
        row = summary["rows"][block]
        stats = [row["average"]] + [
            row["columns"].get(n, {"mean": np.nan, "std": 0}) for n in names[1:]
        ]
        x = np.arange(len(names)) + (i - (len(blocks) - 1) / 2) * width
        ax.bar(x, [s["mean"] for s in stats], width, yerr=[s["std"] for s in stats], label=block)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("score (x 100)")
    ax.set_title(
        f"Code suite after BERT pretraining (size={summary['size']}), {summary['seeds']} seeds",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_summary(out_dir: str, summary: dict) -> None:
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary_markdown(summary))
    plot(summary, os.path.join(out_dir, "summary.png"))

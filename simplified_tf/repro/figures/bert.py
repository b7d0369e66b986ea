"""BERT masked-LM pretraining (paper Figs. 7 and 27; Table 1's blocks): the six blocks as Crammed-BERT
encoders, each at its own tuned LR, over seeds, evaluated densely."""

from __future__ import annotations

from simplified_tf.repro import report, stats
from simplified_tf.repro.figures.common import (
    Context,
    block_group,
    comparison_section,
    equal_time,
    step_seconds,
)
from simplified_tf.repro.protocol import ALL_BLOCKS, Protocol

NAME = "bert"
TITLE = "BERT masked-LM pretraining per step and per wall-clock (paper Figs. 7 and 27)"


def groups(p: Protocol):
    return [
        block_group(
            "bert", ALL_BLOCKS, p, kind="bert", data=(("eval_batches", p.bert_eval_batches),)
        )
    ]


def report_figure(ctx: Context, outcomes_by_group: dict):
    group = groups(ctx.protocol)[0]
    outcomes = outcomes_by_group[group.key]
    timed = step_seconds(ctx, group, outcomes)
    seconds = {k: v["step_s"] for k, v in timed["arms"].items()}
    section, data = comparison_section(
        ctx, group, outcomes, baseline="pre_ln", title="BERT MLM, six blocks", stem="bert",
        timed=timed,
    )  # fmt: skip
    claims = []
    for name in ("sas", "sas_p"):
        p = stats.paired(outcomes[name].finals, outcomes["pre_ln"].finals)
        claims.append(
            report.claim(
                f"{name} keeps pace with pre_ln in MLM loss per step (Fig. 27)",
                "level",
                stats.fmt_diff(p),
                "not_worse",
                p["relation"],
                detail=report.means_text(outcomes, name, "pre_ln"),
            )
        )
        q = equal_time(outcomes, name, "pre_ln", seconds)
        claims.append(
            report.claim(
                f"{name} keeps pace with pre_ln against runtime (Fig. 7)",
                "level or better",
                stats.fmt_diff(q) + " at equal time",
                "not_worse",
                q["relation"],
            )
        )
    p = stats.paired(outcomes["v_skipinit"].finals, outcomes["pre_ln"].finals)
    claims.append(
        report.claim(
            "v_skipinit pre-trains worse than pre_ln (Sec. 5)",
            "worse",
            stats.fmt_diff(p),
            "worse",
            p["relation"],
            detail=report.means_text(outcomes, "v_skipinit", "pre_ln"),
        )
    )
    p = stats.paired(outcomes["parallel"].finals, outcomes["pre_ln"].finals)
    claims.append(
        report.claim(
            "parallel level with pre_ln (Fig. 27)",
            "level",
            stats.fmt_diff(p),
            "level",
            p["relation"],
            detail=report.means_text(outcomes, "parallel", "pre_ln"),
        )
    )
    return section, data, claims

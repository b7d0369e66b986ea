"""Parity (paper Figs. 2 and 5): the six blocks as decoders, each at its own tuned LR, over seeds.

The paper finds SAS and SAS-P level with Pre-LN per step and ahead of it per unit of wall-clock,
norm-free SAS-P slightly behind per step, and V-SkipInit clearly behind even at its best LR.
"""

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

NAME = "parity"
TITLE = "Decoder blocks per step and per wall-clock (paper Figs. 2 and 5)"


def groups(p: Protocol):
    return [block_group("decoder", ALL_BLOCKS, p, informed_lr=False)]


def claims_for(outcomes, seconds) -> list[dict]:
    def rel(name, base="pre_ln"):
        return stats.paired(outcomes[name].finals, outcomes[base].finals)

    out = []
    for name in ("sas", "sas_p"):
        p = rel(name)
        out.append(
            report.claim(
                f"{name} matches pre_ln per step (Figs. 5, 26)",
                "level (CodeParrot: 1.18 vs 1.15)",
                stats.fmt_diff(p),
                "not_worse",
                p["relation"],
                detail=report.means_text(outcomes, name, "pre_ln"),
            )
        )
    p = rel("parallel")
    out.append(
        report.claim(
            "parallel and pre_ln level per step (the two baselines)",
            "level",
            stats.fmt_diff(p),
            "level",
            p["relation"],
            detail=report.means_text(outcomes, "parallel", "pre_ln"),
        )
    )
    p = rel("v_skipinit")
    out.append(
        report.claim(
            "v_skipinit clearly behind pre_ln, even at its best LR (Figs. 2, 5)",
            "clearly worse",
            stats.fmt_diff(p),
            "worse",
            p["relation"],
            detail=report.means_text(outcomes, "v_skipinit", "pre_ln"),
        )
    )
    p = rel("sas_p_nonorm", "sas_p")
    out.append(
        report.claim(
            "sas_p_nonorm slightly behind sas_p per step (Fig. 5)",
            "slightly worse",
            stats.fmt_diff(p) + " vs sas_p",
            "worse",
            p["relation"],
            detail=report.means_text(outcomes, "sas_p_nonorm", "sas_p"),
        )
    )
    for name in ("sas", "sas_p"):
        p = equal_time(outcomes, name, "pre_ln", seconds)
        out.append(
            report.claim(
                f"{name} ahead of pre_ln at equal wall-clock (Figs. 5, 26)",
                "better",
                stats.fmt_diff(p) + " at equal time",
                "better",
                p["relation"],
            )
        )
    p = equal_time(outcomes, "sas_p_nonorm", "pre_ln", seconds)
    out.append(
        report.claim(
            "sas_p_nonorm roughly level with pre_ln against runtime (Fig. 5)",
            "level",
            stats.fmt_diff(p) + " at equal time",
            "level",
            p["relation"],
        )
    )
    return out


def report_figure(ctx: Context, outcomes_by_group: dict):
    group = groups(ctx.protocol)[0]
    outcomes = outcomes_by_group[group.key]
    timed = step_seconds(ctx, group, outcomes)
    seconds = {k: v["step_s"] for k, v in timed["arms"].items()}
    section, data = comparison_section(
        ctx, group, outcomes, baseline="pre_ln", title="Decoder, six blocks", stem="parity",
        timed=timed,
    )  # fmt: skip
    claims = claims_for(outcomes, seconds)
    return section, data, claims

"""Parity (paper Figs. 2 and 5): the six blocks as decoders, each at its own tuned LR, over seeds.

The paper finds SAS and SAS-P level with Pre-LN per step and ahead of it per unit of wall-clock,
norm-free SAS-P slightly behind per step, and V-SkipInit clearly behind even at its best LR.
"""

from __future__ import annotations

from simplified_tf.repro.figures.common import (
    Context,
    block_group,
    equal_time_claim,
    paired_claim,
    timed_comparison,
)
from simplified_tf.repro.protocol import ALL_BLOCKS, Protocol

NAME = "parity"
TITLE = "Decoder blocks per step and per wall-clock (paper Figs. 2 and 5)"


def groups(p: Protocol):
    return [block_group("decoder", ALL_BLOCKS, p, informed_lr=False)]


def claims_for(outcomes, seconds) -> list[dict]:
    """Per step: sas and sas_p level with pre_ln, parallel level, v_skipinit behind, sas_p_nonorm
    behind sas_p; at equal wall-clock: sas and sas_p ahead, sas_p_nonorm level."""
    per_step = [
        paired_claim(outcomes, name, "pre_ln", f"{name} matches pre_ln per step (Figs. 5, 26)",
                     "level (CodeParrot: 1.18 vs 1.15)", "not_worse")
        for name in ("sas", "sas_p")
    ] + [
        paired_claim(outcomes, "parallel", "pre_ln",
                     "parallel and pre_ln level per step (the two baselines)", "level", "level"),
        paired_claim(outcomes, "v_skipinit", "pre_ln",
                     "v_skipinit clearly behind pre_ln, even at its best LR (Figs. 2, 5)",
                     "clearly worse", "worse"),
        paired_claim(outcomes, "sas_p_nonorm", "sas_p",
                     "sas_p_nonorm slightly behind sas_p per step (Fig. 5)", "slightly worse",
                     "worse", suffix=" vs sas_p"),
    ]  # fmt: skip
    per_time = [
        equal_time_claim(outcomes, name, "pre_ln", seconds,
                         f"{name} ahead of pre_ln at equal wall-clock (Figs. 5, 26)", "better",
                         "better")
        for name in ("sas", "sas_p")
    ] + [
        equal_time_claim(outcomes, "sas_p_nonorm", "pre_ln", seconds,
                         "sas_p_nonorm roughly level with pre_ln against runtime (Fig. 5)",
                         "level", "level"),
    ]  # fmt: skip
    return per_step + per_time


def report_figure(ctx: Context, outcomes_by_group: dict):
    group = groups(ctx.protocol)[0]
    outcomes = outcomes_by_group[group.key]
    section, data, seconds = timed_comparison(
        ctx, group, outcomes, title="Decoder, six blocks", stem="parity"
    )
    return section, data, claims_for(outcomes, seconds)

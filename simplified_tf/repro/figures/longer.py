"""Longer training (paper Fig. 8): pre_ln, sas and sas_p with 3x the parity budget.

Each block's LR is tuned at the parity budget (the same tuning runs as the parity figure, so they
are shared when both figures run), then every seed trains for 3x the steps at that LR.
"""

from __future__ import annotations

from simplified_tf.repro.figures.common import (
    Context,
    block_group,
    comparison_section,
    paired_claim,
)
from simplified_tf.repro.protocol import Protocol

NAME = "longer"
TITLE = "Longer training: 3x the tokens (paper Fig. 8)"
BLOCKS = ("pre_ln", "sas", "sas_p")


def groups(p: Protocol):
    return [
        block_group(
            f"decoder_{p.longer_factor}x", BLOCKS, p, steps=p.longer_factor * p.steps,
            tune_steps=p.steps,
        )
    ]  # fmt: skip


def report_figure(ctx: Context, outcomes_by_group: dict):
    group = groups(ctx.protocol)[0]
    outcomes = outcomes_by_group[group.key]
    section, data = comparison_section(
        ctx, group, outcomes, baseline="pre_ln",
        title=f"Decoder, {group.steps} steps ({ctx.protocol.longer_factor}x)", stem="longer",
    )  # fmt: skip
    claims = [
        paired_claim(
            outcomes,
            name,
            "pre_ln",
            f"{name} matches or beats pre_ln with {ctx.protocol.longer_factor}x the tokens (Fig. 8)",
            "level or better",
            "not_worse",
        )
        for name in ("sas", "sas_p")
    ]
    return section, data, claims

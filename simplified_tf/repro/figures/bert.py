"""BERT masked-LM pretraining (paper Figs. 7 and 27; Table 1's blocks): the six blocks as Crammed-BERT
encoders, each at its own tuned LR, over seeds, evaluated densely."""

from __future__ import annotations

from simplified_tf.repro.figures.common import (
    Context,
    block_group,
    equal_time_claim,
    paired_claim,
    timed_comparison,
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
    section, data, seconds = timed_comparison(
        ctx, group, outcomes, title="BERT MLM, six blocks", stem="bert"
    )
    claims = []
    for name in ("sas", "sas_p"):
        claims += [
            paired_claim(outcomes, name, "pre_ln",
                         f"{name} keeps pace with pre_ln in MLM loss per step (Fig. 27)", "level",
                         "not_worse"),
            equal_time_claim(outcomes, name, "pre_ln", seconds,
                             f"{name} keeps pace with pre_ln against runtime (Fig. 7)",
                             "level or better", "not_worse"),
        ]  # fmt: skip
    claims += [
        paired_claim(outcomes, "v_skipinit", "pre_ln",
                     "v_skipinit pre-trains worse than pre_ln (Sec. 5)", "worse", "worse"),
        paired_claim(outcomes, "parallel", "pre_ln", "parallel level with pre_ln (Fig. 27)",
                     "level", "level"),
    ]  # fmt: skip
    return section, data, claims

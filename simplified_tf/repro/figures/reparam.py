"""Reparameterised values and projections (paper Fig. 3, Sec. 4.2).

Skipless sequential blocks with shaped attention whose W_V and W_P are W = alpha * W_init + beta * dW
in every layer: W_init fixed (identity or a random orthogonal matrix), dW trained from 0, alpha = 1
and beta fixed. beta = 0 with identity W_init removes the matrices' learning entirely and equals SAS
(layer 0's value keeps beta_V = 1, as SAS keeps a trainable W_V in layer 0). The paper finds identity
better than orthogonal W_init, smaller beta better, and identity at beta = 0 nearly matching Pre-LN.
"""

from __future__ import annotations

import os

from simplified_tf.repro import plots
from simplified_tf.repro.experiment import Group
from simplified_tf.repro.figures.common import Context, comparison_section, paired_claim
from simplified_tf.repro.protocol import Protocol
from simplified_tf.repro.runs import Arm

NAME = "reparam"
TITLE = "Reparameterised W_V / W_P: identity vs orthogonal W_init, fixed beta (paper Fig. 3)"
INITS = ("identity", "orth")


def arm_name(init: str, beta: float) -> str:
    return f"{init}_b{beta:g}"


def reparam_model(init: str, beta: float) -> tuple:
    return (
        ("value", "reparam"),
        ("proj", "reparam"),
        ("value_layer0", ""),
        ("reparam_init", init),
        ("reparam_alpha", 1.0),
        ("reparam_beta", float(beta)),
        ("reparam_train", False),
        ("reparam_beta_v0", 1.0),
    )


def groups(p: Protocol):
    arms = [Arm("pre_ln", "pre_ln", "decoder", p.size)]
    for init in INITS:
        for beta in p.reparam_betas:
            arms.append(
                Arm(arm_name(init, beta), "sas", "decoder", p.size, reparam_model(init, beta))
            )
    return [
        Group("reparam", tuple(arms), p.reparam_steps, p.seeds, 0, p.eval_every, p.data,
              p.grid_points)
    ]  # fmt: skip


def report_figure(ctx: Context, outcomes_by_group: dict):
    p = ctx.protocol
    group = groups(p)[0]
    outcomes = outcomes_by_group[group.key]
    betas = p.reparam_betas
    claims = [
        paired_claim(outcomes, arm_name("identity", beta), arm_name("orth", beta),
                     f"identity W_init beats orthogonal at beta={beta:g} (Fig. 3)",
                     "identity lower", "better", suffix=" (identity - orth)")
        for beta in betas
    ]  # fmt: skip
    lo, hi = min(betas), max(betas)
    claims += [
        paired_claim(outcomes, arm_name(init, lo), arm_name(init, hi),
                     f"a smaller fixed beta is better ({init}: beta={lo:g} vs {hi:g}, Fig. 3)",
                     "smaller beta lower", "better", suffix=f" (beta {lo:g} - {hi:g})")
        for init in INITS
    ]  # fmt: skip
    claims.append(
        paired_claim(
            outcomes,
            arm_name("identity", 0.0),
            "pre_ln",
            "identity W_init with beta=0 (= SAS) nearly matches pre_ln (Fig. 3)",
            "close (about 1.18 vs 1.15)",
            "not_worse",
        )
    )
    bars = plots.grouped_bars(
        [f"beta={b:g}" for b in betas],
        {init: [outcomes[arm_name(init, b)].mean_std for b in betas] for init in INITS},
        ctx.path("reparam_final.png"),
        title="Final eval loss by W_init and fixed beta (mean ± std over seeds)",
        ylabel="final eval loss",
        reference=("pre_ln", outcomes["pre_ln"].mean_std[0]),
    )
    section, data = comparison_section(
        ctx, group, outcomes, baseline="pre_ln", title="Reparameterised V/P", stem="reparam"
    )
    return f"![]({os.path.basename(bars)})\n\n{section}", data, claims

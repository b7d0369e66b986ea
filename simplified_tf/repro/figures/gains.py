"""Trainable value/projection gains over training (paper Fig. 4, Figs. 16, 21 and 22; Sec. 4.2).

The Fig. 4 configuration: skipless SAS-style blocks whose W_V and W_P are alpha * I + beta * dW in
every layer (layer 0 included), alpha = 1 and beta = 0.2 at init, both trainable. The paper finds the
ratios beta_V/alpha_V and beta_P/alpha_P falling towards 0 in every layer except layer 0's value, no
such fall with an attention skip (Fig. 22), and a final loss slightly above SAS with its fixed
identities (1.194 vs 1.178).
"""

from __future__ import annotations

import os

import numpy as np

from simplified_tf.repro import plots, report, stats
from simplified_tf.repro.experiment import ArmOutcome, Group
from simplified_tf.repro.figures.common import Context, comparison_section, paired_claim
from simplified_tf.repro.protocol import Protocol
from simplified_tf.repro.runs import Arm

NAME = "gains"
TITLE = "Trainable value/projection gains over training (paper Fig. 4)"
BETA_INIT = 0.2
TRAINABLE_VP = (
    ("value", "reparam"),
    ("proj", "reparam"),
    ("value_layer0", ""),
    ("reparam_init", "identity"),
    ("reparam_alpha", 1.0),
    ("reparam_beta", BETA_INIT),
    ("reparam_train", True),
)
TRAINABLE_ARMS = ("trainable_vp", "trainable_vp_skip")


def groups(p: Protocol):
    lr = p.lr_centre("decoder", "sas")
    arms = (
        Arm("sas", "sas", "decoder", p.size, lr=lr),
        Arm("trainable_vp", "sas", "decoder", p.size, TRAINABLE_VP, lr=lr),
        Arm("trainable_vp_skip", "sas", "decoder", p.size, TRAINABLE_VP + (("attn_skip", True),),
            lr=lr),
    )  # fmt: skip
    return [Group("gains", arms, p.steps, p.seeds, 0, p.eval_every, p.data, p.grid_points)]


def ratio_series(result: dict, which: str) -> dict[int, np.ndarray]:
    """{layer: |beta/alpha| at every evaluation} of one run, for which = "v" or "p"."""
    out = {}
    scalars = result["scalars"]
    for key, betas in scalars.items():
        layer, name = key.split("/")
        if name != f"beta_{which}":
            continue
        alphas = scalars[f"{layer}/alpha_{which}"]
        out[int(layer.removeprefix("layer"))] = np.abs(np.asarray(betas) / np.asarray(alphas))
    return dict(sorted(out.items()))


def final_ratios(outcome, which: str) -> list[dict[int, float]]:
    """Per seed: {layer: final |beta/alpha|}."""
    return [{k: float(v[-1]) for k, v in ratio_series(r, which).items()} for r in outcome.results]


def _mean_change(per_seed: list[dict[int, float]], layers) -> list[float]:
    """Per seed: mean over `layers` of (final ratio - initial ratio)."""
    return [float(np.mean([s[layer] - BETA_INIT for layer in layers])) for s in per_seed]


def report_figure(ctx: Context, outcomes_by_group: dict):
    group = groups(ctx.protocol)[0]
    outcomes = outcomes_by_group[group.key]
    claims = gains_claims(outcomes)
    pngs = [ratio_plot(ctx, name, outcomes[name]) for name in TRAINABLE_ARMS]
    section, data = comparison_section(
        ctx, group, outcomes, baseline="sas", title="Trainable V/P gains", stem="gains"
    )
    images = "\n\n".join(f"![]({os.path.basename(p)})" for p in pngs)
    body = (
        f"Ratios at the end of training, mean ± std over seeds (init {BETA_INIT}):\n\n"
        + "\n".join(final_ratio_table(outcomes)) + f"\n\n{images}\n\n{section}"
    )  # fmt: skip
    data["final_ratios"] = {
        name: dict(v=final_ratios(outcomes[name], "v"), p=final_ratios(outcomes[name], "p"))
        for name in TRAINABLE_ARMS
    }
    return body, data, claims


def gains_claims(outcomes: dict) -> list[dict]:
    """The ratios fall (V in layers >= 1, P everywhere) but layer 0's V stays higher, not with an
    attention skip, and the trainable gains end slightly above SAS's fixed identities."""
    hl = report.HIGHER_LOWER
    vp = outcomes["trainable_vp"]
    v_final, p_final = final_ratios(vp, "v"), final_ratios(vp, "p")
    layers = sorted(v_final[0])
    zeros = [0.0] * len(v_final)
    claims = []
    d = stats.paired(_mean_change(v_final, layers[1:]), zeros)
    claims.append(report.claim(
        "beta_V/alpha_V falls in layers >= 1 (Figs. 4, 16)", "falls towards 0",
        stats.fmt_diff(d) + " (final - init, mean over layers)", "better", d["relation"], hl,
    ))  # fmt: skip
    d = stats.paired(_mean_change(p_final, layers), zeros)
    claims.append(report.claim(
        "beta_P/alpha_P falls in every layer (Figs. 4, 16)", "falls towards 0",
        stats.fmt_diff(d) + " (final - init, mean over layers)", "better", d["relation"], hl,
    ))  # fmt: skip
    d = stats.paired(
        [s[0] for s in v_final], [float(np.mean([s[k] for k in layers[1:]])) for s in v_final]
    )
    claims.append(report.claim(
        "layer 0's beta_V/alpha_V stays above the other layers' (Fig. 4)", "higher",
        stats.fmt_diff(d) + " (layer 0 - mean of layers >= 1)", "worse", d["relation"], hl,
    ))  # fmt: skip
    d = stats.paired(
        _mean_change(final_ratios(outcomes["trainable_vp_skip"], "v"), layers[1:]), zeros
    )
    claims.append(report.claim(
        "with an attention skip, beta_V/alpha_V does not fall (Fig. 22)", "no fall",
        stats.fmt_diff(d) + " (final - init, layers >= 1)", "not_better", d["relation"], hl,
    ))  # fmt: skip
    claims.append(paired_claim(
        outcomes, "trainable_vp", "sas",
        "trainable V/P ends slightly above fixed identities (SAS) (Sec. 4.2: 1.194 vs 1.178)",
        "higher", "worse", suffix=" vs sas",
    ))  # fmt: skip
    return claims


def ratio_plot(ctx: Context, name: str, o: ArmOutcome) -> str:
    """PNG of arm `name`'s |beta/alpha| per layer over training (V and P panels, seed mean)."""
    panels = {}
    for which, label in (("v", "beta_V / alpha_V"), ("p", "beta_P / alpha_P")):
        per_seed = [ratio_series(r, which) for r in o.results]
        steps = [0] + list(o.results[0]["curve"]["step"])
        lines = {}
        for layer in per_seed[0]:
            mean = np.mean([s[layer] for s in per_seed], axis=0)
            lines[f"layer {layer}"] = (steps, [BETA_INIT] + list(mean))
        panels[label] = lines
    return plots.trajectories(
        panels, ctx.path(f"gains_{name}.png"),
        title=f"{name}: |beta/alpha| per layer (mean over {len(o.results)} seeds; "
        f"init {BETA_INIT})",
        ylabel="|beta / alpha|", reference=BETA_INIT,
    )  # fmt: skip


def final_ratio_table(outcomes: dict) -> list[str]:
    """Markdown rows: each trainable arm's final ratios per layer (mean ± std over seeds)."""
    layers = sorted(final_ratios(outcomes["trainable_vp"], "v")[0])
    table = ["| arm | layer | final beta_V/alpha_V | final beta_P/alpha_P |", "|---|---|---|---|"]
    for name in TRAINABLE_ARMS:
        fv, fp = final_ratios(outcomes[name], "v"), final_ratios(outcomes[name], "p")
        for layer in layers:
            table.append(
                f"| {name} | {layer} | {stats.fmt_pm(*stats.mean_std([s[layer] for s in fv]))} | "
                f"{stats.fmt_pm(*stats.mean_std([s[layer] for s in fp]))} |"
            )
    return table

"""D1: Adam vs SGDM loss curves of the linear Transformer, Settings 1-3 (Ahn et al. 2024, Section 3)."""

from __future__ import annotations

from linear_tf import plots
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V
from linear_tf.figures.protocol import SETTING_NAMES
from linear_tf.hparams import default_clip

SETTINGS = ("1", "2", "3")
PAPER = (
    "Adam below SGDM in Settings 1-3, by different margins. The authors' Setting-1 figure: Adam "
    "≈ 1.5-2e-3 from ~600 steps on; SGDM ≈ 3e-2 at 1000, ≈ 8e-3 at 10k"
)


def loss_claims(name: str, runs: dict) -> tuple[list, dict]:
    """Verdicts "Adam ends below SGDM" and "Adam below SGDM at most logged steps t ≥ 300", and
    the numbers behind them, for one setting's {"sgdm", "adam"} runs."""
    s, a = runs["sgdm"], runs["adam"]
    fs, fa = C.final_loss(s.eval_loss), C.final_loss(a.eval_loss)
    below = C.below_fraction(a.eval_loss, s.eval_loss, a.eval_steps)
    verdicts = [
        V.judge(V.log_ratio(fs, fa), f"{name}: Adam ends below SGDM", "log(SGDM/Adam final loss)"),
        V.judge(
            below,
            f"{name}: Adam below SGDM at most logged steps t ≥ 300",
            "fraction of steps",
            0.5,
        ),
    ]
    nums = {
        "final_sgdm": fs.tolist(),
        "final_adam": fa.tolist(),
        "below_fraction": below.tolist(),
        "lr_sgdm": s.lr,
        "lr_adam": a.lr,
    }
    return verdicts, nums


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    panels, rows, nums, verdicts = {}, [], {}, []
    for setting in SETTINGS:
        runs = ctx.main_runs(setting)
        name = SETTING_NAMES[setting]
        panels[name] = {k: C.curve(r) for k, r in runs.items()}
        v, nums[setting] = loss_claims(name, runs)
        verdicts += v
        n = nums[setting]
        rows.append(
            f"| {name} | {runs['sgdm'].lr:g} / {runs['adam'].lr:g} | {default_clip(setting):g} | "
            f"{C.mean_std(n['final_sgdm'])} | {C.mean_std(n['final_adam'])} | "
            f"{C.mean_std(V.log_ratio(n['final_sgdm'], n['final_adam']))} | "
            f"{C.mean_std(n['below_fraction'], 2)} |"
        )
    budget = C.seeds_steps(len(p.main_seeds), p.main_steps)
    cap = (
        "D1 (Adam vs SGDM, linear Transformer; Ahn et al. 2024, Section 3): L=3, d=5, B=1000, "
        "sparse B/C, init std 0.05, learning rates of the authors' code (SGDM/Adam: "
        + "; ".join(
            f"{SETTING_NAMES[s]} {nums[s]['lr_sgdm']:g}/{nums[s]['lr_adam']:g}" for s in SETTINGS
        )
        + f"), clip 1. Loss on the fixed evaluation batch every 50 steps; mean over seeds "
        f"{list(p.main_seeds)}, band ± std/4 (unbiased), log axis; {p.main_steps:,} iterations."
    )
    path = plots.curve_panels(panels, C.png(ctx, "loss_curves.png"), cap, "Loss (fixed batch)")
    table = [
        "Final loss = mean fixed-batch loss over the last 10% of iterations; mean ± std over seeds.",
        "",
        "| Setting | lr SGDM / Adam | clip | SGDM final | Adam final | log(SGDM/Adam) | "
        "frac. steps Adam<SGDM (t≥300) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    ours = "; ".join(
        f"{SETTING_NAMES[s]} SGDM {C.mean_std(nums[s]['final_sgdm'])} vs Adam "
        f"{C.mean_std(nums[s]['final_adam'])}"
        for s in SETTINGS
    )
    row = C.Row("D1: Adam vs SGD loss, Settings 1-3", PAPER, ours, verdicts, budget, [path])
    return C.FigureResult("loss_curves", cap, [path], table, [row], nums)

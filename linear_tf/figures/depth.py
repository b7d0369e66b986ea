"""Fig. 8: depth L = 2, 4, 6, 8 on Setting 1 (Ahn et al. 2024, Section 4.2): loss and R_med rows
(the noise row is in grad_noise), each (L, optimiser) at its own learning rate, bracketed on a grid."""

from __future__ import annotations

import numpy as np

from linear_tf import data, phenomena, plots
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V

PAPER = (
    "the Adam-SGDM gap widens as L grows while the loss falls with depth for both optimisers; the "
    "R_med gap is clearer for L = 4, 6, 8 than for L = 2; L = 6, 8 have heavier-tailed noise"
)
SPIKE_FACTOR = 10.0
SPIKE_WINDOW = 50


def spikes(train_loss_ST: np.ndarray) -> np.ndarray:
    """Per seed: steps whose minibatch loss exceeds SPIKE_FACTOR x the median of the previous
    SPIKE_WINDOW steps (a diverged, non-finite loss counts as a spike)."""
    x = np.asarray(train_loss_ST, np.float64)
    counts = []
    for row in x:
        n = 0
        for t in range(SPIKE_WINDOW, row.size):
            ref = np.median(row[t - SPIKE_WINDOW : t])
            n += int(not np.isfinite(row[t]) or row[t] > SPIKE_FACTOR * ref)
        counts.append(n)
    return np.asarray(counts)


def slope_over_depth(depths, values_LS: np.ndarray) -> np.ndarray:
    """Per seed: least-squares slope of the values (one row per depth) against L."""
    x = np.asarray(depths, np.float64)
    y = np.asarray(values_LS, np.float64)
    if not np.all(np.isfinite(y)):
        y = np.where(np.isfinite(y), y, np.nan)
    xc = x - x.mean()
    return np.array([np.sum(xc * (col - np.nanmean(col))) / np.sum(xc * xc) for col in y.T])


def trend_claims(depths, final: dict) -> list:
    """Gap widens with L; loss falls with L for each optimiser (per-seed slopes over L)."""
    log_s = np.log(np.array([final["sgdm"][L] for L in depths]))
    log_a = np.log(np.array([final["adam"][L] for L in depths]))
    return [
        V.judge(
            slope_over_depth(depths, log_s - log_a),
            "the gap widens with L",
            "slope of log(SGDM/Adam) per layer",
        ),
        V.judge(
            -slope_over_depth(depths, log_s),
            "SGDM's loss falls with L",
            "−slope of log loss per layer",
        ),
        V.judge(
            -slope_over_depth(depths, log_a),
            "Adam's loss falls with L",
            "−slope of log loss per layer",
        ),
    ]


def one_depth(ctx, L: int) -> dict:
    """Tuned runs at depth L, their R_med, spikes, verdicts and table row."""
    p = ctx.protocol
    runs = ctx.tune("1", p.depth_grid, p.depth_seeds, p.depth_steps, ("sgdm", "adam"), layers=L)
    mspec, dspec = ctx.specs("1", L)
    batch = data.eval_batch(dspec, 1000)
    r = {k: phenomena.condition_numbers(mspec, v.snap_params, batch) for k, v in runs.items()}
    steps = runs["adam"].snap_steps
    tab = phenomena.ratio_table(r["sgdm"], r["adam"], steps)
    final = {k: C.final_loss(v.eval_loss) for k, v in runs.items()}
    spk = {k: spikes(v.train_loss) for k, v in runs.items()}
    gap = V.log_ratio(final["sgdm"], final["adam"])
    verdicts = [V.judge(gap, f"L={L}: Adam ends below SGDM", "log(SGDM/Adam final loss)")]
    # The paper finds the R_med gap clear for L = 4, 6, 8 and less so for L = 2 (Section 4.2).
    verdicts += [
        V.judge(np.log(tab[t]["per_seed"]), f"L={L}: R_SGDM/R_Adam > 1 at t={t}", "log ratio")
        for t in tab
        if L >= 4 and t in (750, 1250)
    ]
    max_g = {k: float(np.max(v.grad_norm)) for k, v in runs.items()}
    row = (
        f"| {L} | {C.lr_note(runs['sgdm'])} | {C.lr_note(runs['adam'])} | "
        f"{C.mean_std(final['sgdm'])} | {C.mean_std(final['adam'])} | {C.mean_std(gap, 2)} | "
        f"{C.ratio_cell(tab, 750)} | {C.ratio_cell(tab, 1250)} | {C.mean_std(spk['sgdm'], 2)} / "
        f"{C.mean_std(spk['adam'], 2)} | {max_g['sgdm']:.3g} / {max_g['adam']:.3g} |"
    )
    return {
        "loss": {k: C.curve(v) for k, v in runs.items()},
        "r_med": {k: C.curve(runs[k], r[k], steps, band=2.0) for k in r},
        "final": final,
        "verdicts": verdicts,
        "row": row,
        "numbers": {
            "lr": {k: C.grid_json(v) for k, v in runs.items()},
            "final": {k: v.tolist() for k, v in final.items()},
            "ratio": tab,
            "spikes": {k: v.tolist() for k, v in spk.items()},
            "max_grad_norm": max_g,
        },
    }


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    per = {L: one_depth(ctx, L) for L in p.depths}
    verdicts = [v for L in p.depths for v in per[L]["verdicts"]]
    final = {k: {L: per[L]["final"][k] for L in p.depths} for k in ("sgdm", "adam")}
    if len(p.depths) > 1:
        verdicts += trend_claims(p.depths, final)
    lo, hi = min(p.depths), max(p.depths)
    for t in (750, 1250):
        tabs = [per[L]["numbers"]["ratio"] for L in (lo, hi)]
        if all(t in tab for tab in tabs):
            x = np.log(tabs[1][t]["per_seed"]) - np.log(tabs[0][t]["per_seed"])
            name = f"R_SGDM/R_Adam larger at L={hi} than at L={lo}, t={t}"
            verdicts.append(V.judge(x, name, "log ratio difference"))
    grid = ", ".join(f"{x:g}" for x in p.depth_grid)
    cap = (
        f"Fig. 8 (depth, Setting 1, d=5, n=20, B=1000, clip 1; seeds {list(p.depth_seeds)}, "
        f"{p.depth_steps:,} iterations): learning rate per (L, optimiser) = best seed-mean training "
        f"loss over the last 100 steps on the grid [{grid}], widened while the best point is on its "
        "edge (chosen values in the legends); log axes. "
    )
    rows = (
        "Rows of the paper's figure: depth_loss.png: loss; depth_condition_number.png: R_med; "
        "grad_noise_depth.png: noise."
    )
    cap_loss = cap + "Fixed-batch loss, mean ± std/4. " + rows
    cap_r = cap + "R_med every 250 iterations, mean ± std/2. " + rows
    pngs = [
        plots.curve_panels(
            {f"L={L}": per[L]["loss"] for L in p.depths},
            C.png(ctx, "depth_loss.png"),
            cap_loss,
            "Loss (fixed batch)",
        ),
        plots.curve_panels(
            {f"L={L}": per[L]["r_med"] for L in p.depths},
            C.png(ctx, "depth_condition_number.png"),
            cap_r,
            "R_med",
        ),
    ]
    table = [
        f"Spikes = steps whose minibatch loss exceeds {SPIKE_FACTOR:g}x the median of the previous "
        f"{SPIKE_WINDOW} steps, per run, mean ± std over seeds.",
        "",
        "| L | SGDM lr | Adam lr | SGDM final | Adam final | log(SGDM/Adam) | R ratio @750 | "
        "R ratio @1250 | spikes SGDM / Adam | max ‖g‖ SGDM / Adam |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[per[L]["row"] for L in p.depths],
    ]
    nums = {L: per[L]["numbers"] for L in p.depths}
    ours = "; ".join(
        f"L={L}: SGDM {C.mean_std(final['sgdm'][L])} vs Adam {C.mean_std(final['adam'][L])}, "
        f"Adam spikes {C.mean_std(nums[L]['spikes']['adam'], 2)}"
        for L in p.depths
    )
    budget = C.seeds_steps(len(p.depth_seeds), p.depth_steps) + " per (L, optimiser, lr)"
    row = C.Row("Fig. 8: depth (loss and R_med rows)", PAPER, ours, verdicts, budget, pngs)
    return C.FigureResult("depth", cap + rows, pngs, table, [row], nums)

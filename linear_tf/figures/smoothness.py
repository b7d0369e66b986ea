"""D4 = Fig. 2: directional smoothness along the actual update (Ahn et al. 2024, Section 3, after
Pan & Li 2023), Settings 1-3.

Headline (top row): the statistic of the authors' notebooks, DS at every 250th iteration, mean ± std/4
over seeds on a log axis. Second view (bottom row): DS at every `ds_stride`-th step, median over
(seed, step) in 250-step windows with the interquartile band; DS at single steps is spiky and changes
sign, which the medians are robust to. DS can be negative: on a log axis a non-positive mean is not
drawn, and every such point is counted in the panel and the table.
"""

from __future__ import annotations

import numpy as np

from linear_tf import data, model, phenomena, plots
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V
from linear_tf.figures.protocol import SETTING_NAMES

SETTINGS = ("1", "2", "3")
PAPER = "Adam's directional smoothness below SGDM's in Settings 1-3 (Fig. 2)"


def checkpoint_ds(ctx, setting: str) -> dict:
    """{"sgdm", "adam": DS (seeds, snapshots)} at the main runs' snapshots (memoised)."""

    def compute():
        runs = ctx.main_runs(setting)
        mspec, dspec = ctx.specs(setting)
        batch = data.eval_batch(dspec, 1000)
        out = {
            k: phenomena.directional_smoothness(mspec, r.snap_params, r.snap_delta, batch)
            for k, r in runs.items()
        }
        out["steps"] = runs["adam"].snap_steps
        return out

    return ctx.memo(("ds", setting), compute)


def per_step_ds(ctx, setting: str, stride: int) -> dict:
    """{"sgdm", "adam": DS (seeds, steps)} at every stride-th step of the main runs, and "steps"."""
    runs = ctx.main_runs(setting)
    mspec, dspec = ctx.specs(setting)
    batch = model.prepare_batch(mspec, data.eval_batch(dspec, 1000))
    out = {}
    for k, r in runs.items():
        per_seed = [
            phenomena.per_step_smoothness(
                mspec, r.seed_params(i), batch, stride=stride, grad_norm=False
            )
            for i in range(len(r.seeds))
        ]
        out[k] = np.stack([ds for ds, _, _ in per_seed])
        out["steps"] = per_seed[0][2]
    return out


def ds_claims(name: str, ds: dict, start: int = 250, view: str = "stride 250") -> tuple:
    """Verdict "Adam's DS below SGDM's at most steps t >= start" on per-seed paired fractions."""
    m = ds["steps"] >= start
    frac = np.mean(ds["adam"][:, m] < ds["sgdm"][:, m], axis=1)
    v = V.judge(frac, f"{name} ({view}): DS Adam < SGDM at most t ≥ {start}", "frac. of steps", 0.5)
    return v, frac


def _mean_curve(ds_SX, steps, lr) -> tuple[dict, int]:
    """Seed mean ± std/4; returns the curve and how many checkpoint means are <= 0."""
    band = phenomena.mean_band(ds_SX, 4.0)
    return {"steps": steps, "lr": lr, **band}, int(np.sum(band["mean"] <= 0))


def _window_curve(win, k, lr) -> dict:
    return {
        "steps": np.array([(w["start"] + w["stop"]) / 2 for w in win]),
        "lr": lr,
        "mean": np.array([w[f"median_{k}"] for w in win]),
        "lo": np.array([w[f"q25_{k}"] for w in win]),
        "hi": np.array([w[f"q75_{k}"] for w in win]),
    }


def one_setting(ctx, s: str) -> dict:
    """Panels, notes, verdicts, numbers and the table row of one setting."""
    p = ctx.protocol
    name, runs = SETTING_NAMES[s], ctx.main_runs(s)
    ck, fine = checkpoint_ds(ctx, s), per_step_ds(ctx, s, p.ds_stride)
    t_top, t_bot = f"{name}: every 250 steps, mean", f"{name}: every {p.ds_stride} steps, median"
    curves = {k: _mean_curve(ck[k], ck["steps"], runs[k].lr) for k in ("sgdm", "adam")}
    dropped = {k: c[1] for k, c in curves.items()}
    neg_ck = {k: int((ck[k] <= 0).sum()) for k in ("sgdm", "adam")}
    neg_fine = {k: int((fine[k] <= 0).sum()) for k in ("sgdm", "adam")}
    win = phenomena.window_summary(fine["sgdm"], fine["adam"], steps=fine["steps"])
    v1, f1 = ds_claims(name, ck, view="every 250 steps, the paper's statistic")
    v2, f2 = ds_claims(name, fine, view=f"every {p.ds_stride} steps")
    m = ck["steps"] >= 250
    mean_below = float(np.mean(ck["adam"].mean(0)[m] < ck["sgdm"].mean(0)[m]))
    med = {k: float(np.median(ck[k][:, m])) for k in ("sgdm", "adam")}
    return {
        "top": {t_top: {k: c[0] for k, c in curves.items()}},
        "bottom": {t_bot: {k: _window_curve(win, k, runs[k].lr) for k in ("sgdm", "adam")}},
        "notes": {
            t_top: f"not drawn (mean ≤ 0): SGDM {dropped['sgdm']}, Adam {dropped['adam']}; "
            f"values ≤ 0: {neg_ck['sgdm']}, {neg_ck['adam']}",
            t_bot: f"values ≤ 0 (kept in medians): SGDM {neg_fine['sgdm']}, Adam {neg_fine['adam']}",
        },
        "verdicts": [v1, v2],
        "numbers": {
            "checkpoint_frac_per_seed": f1.tolist(),
            "checkpoint_seed_mean_frac": mean_below,
            "per_step_frac_per_seed": f2.tolist(),
            "mean_dropped": dropped,
            "nonpositive_checkpoint": neg_ck,
            "nonpositive_per_step": neg_fine,
            "windows": win,
            "median_checkpoint": med,
        },
        "row": f"| {name} | {C.mean_std(f1, 2)} | {mean_below:.2f} | {C.fmt(med['sgdm'])} / "
        f"{C.fmt(med['adam'])} | {C.mean_std(f2, 2)} | {dropped['sgdm']} / {dropped['adam']} | "
        f"{neg_ck['sgdm']} / {neg_ck['adam']} | {neg_fine['sgdm']} / {neg_fine['adam']} |",
    }


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    per = {s: one_setting(ctx, s) for s in SETTINGS}
    panels = {t: c for s in SETTINGS for t, c in per[s]["top"].items()}
    panels |= {t: c for s in SETTINGS for t, c in per[s]["bottom"].items()}
    notes = {t: n for s in SETTINGS for t, n in per[s]["notes"].items()}
    cap = (
        "D4 = Fig. 2 (directional smoothness DS_t = u_tᵀ∇²f(θ_t)u_t along the actual update "
        "u_t ∝ θ_(t+1) − θ_t, on the fixed batch), L=3, learning rates of the authors' code as in "
        f"D1, clip 1, seeds {list(p.main_seeds)}, {p.main_steps:,} iterations, log axis. Top row "
        "(headline, the authors' statistic): every 250 iterations, mean ± std/4 over seeds; a "
        "mean ≤ 0 is not drawn and is counted in the panel. Bottom row (second view): DS at every "
        f"{p.ds_stride}th step, median over (seed, step) per 250-step window, band = interquartile "
        "range."
    )
    path = plots.curve_panels(
        panels, C.png(ctx, "smoothness.png"), cap, "Directional smoothness", ncols=3, notes=notes
    )
    table = [
        "Fractions are over t ≥ 250, per seed (paired SGDM/Adam runs share init and prompts), "
        "mean ± std over seeds.",
        "",
        "| Setting | every 250: frac. Adam<SGDM | every 250: seed-mean curves, frac. Adam<SGDM | "
        f"every 250: median DS SGDM / Adam | every {p.ds_stride}: frac. Adam<SGDM | "
        "means ≤0 not drawn SGDM / Adam | values ≤0 every 250 | values ≤0 per step |",
        "|---|---|---|---|---|---|---|---|",
        *[per[s]["row"] for s in SETTINGS],
    ]
    nums = {s: per[s]["numbers"] for s in SETTINGS}
    ours = "; ".join(
        f"{SETTING_NAMES[s]} Adam<SGDM at {C.mean_std(nums[s]['checkpoint_frac_per_seed'], 2)} of "
        f"checkpoints ({C.mean_std(nums[s]['per_step_frac_per_seed'], 2)} of steps)"
        for s in SETTINGS
    )
    verdicts = [v for s in SETTINGS for v in per[s]["verdicts"]]
    budget = C.seeds_steps(len(p.main_seeds), p.main_steps)
    row = C.Row("D4 = Fig. 2: directional smoothness", PAPER, ours, verdicts, budget, [path])
    return C.FigureResult("smoothness", cap, [path], table, [row], nums)

"""Fig. 6, right panels: (L0, L1)-smoothness, ln DS_t against ln‖∇f(θ_t)‖ along Adam's trajectory
(Ahn et al. 2024, Section 3; Definition 1 after Zhang et al. 2020), Settings 1-3.

The paper shows one run per setting (the authors' seed 1); we measure every seed's Adam run of the
main sweep and plot seed 1, so the slope and correlation come with a spread over seeds.
"""

from __future__ import annotations

import numpy as np

from linear_tf import data, phenomena, plots
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V
from linear_tf.figures.protocol import SETTING_NAMES

SETTINGS = ("1", "2", "3")
PAPER = (
    "positive correlation between ln DS and ln‖∇f‖ along Adam's trajectory; the authors' "
    "Setting-1 panel has slope ≈ 1"
)
PLOT_SEED = 1


def order_one(slopes) -> np.ndarray:
    """log 2 − |log slope|: positive iff 1/2 < slope < 2 (−inf for a non-positive slope)."""
    s = np.asarray(slopes, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, np.log(2.0) - np.abs(np.log(np.where(s > 0, s, 1.0))), -np.inf)


def scatter_claims(name: str, slopes, rs) -> list:
    return [
        V.judge(rs, f"{name}: ln DS and ln‖∇f‖ positively correlated", "Pearson r"),
        V.judge(
            order_one(slopes), f"{name}: OLS slope of order 1 (1/2 to 2)", "log 2 − |log slope|"
        ),
    ]


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    panels, rows, nums, verdicts = {}, [], {}, []
    for s in SETTINGS:
        adam = ctx.main_runs(s)["adam"]
        mspec, dspec = ctx.specs(s)
        batch = data.eval_batch(dspec, 1000)
        per_seed = [
            phenomena.l0l1_scatter(
                mspec, adam.seed_params(i, p.l0l1_steps), batch, stride=p.l0l1_stride
            )
            for i in range(len(adam.seeds))
        ]
        name = SETTING_NAMES[s]
        shown = adam.seeds.index(PLOT_SEED) if PLOT_SEED in adam.seeds else 0
        panels[f"{name}, seed {adam.seeds[shown]}"] = per_seed[shown]
        slopes = np.array([r["slope"] for r in per_seed])
        rs = np.array([r["pearson_r"] for r in per_seed])
        verdicts += scatter_claims(name, slopes, rs)
        dropped = [r["num_negative"] for r in per_seed]
        nums[s] = {"slopes": slopes.tolist(), "pearson_r": rs.tolist(), "dropped": dropped}
        nums[s] |= {"lr": adam.lr, "points": [r["num_points"] for r in per_seed]}
        rows.append(
            f"| {name} | {adam.lr:g} | {C.mean_std(slopes, 2)} | {C.mean_std(rs, 2)} | "
            f"{', '.join(f'{x:.2f}' for x in slopes)} | {sum(dropped)} |"
        )
    every = "every step" if p.l0l1_stride == 1 else f"every {p.l0l1_stride}nd step"
    cap = (
        "Fig. 6 right ((L0, L1)-smoothness): Adam with the authors' learning rates (Setting 1 "
        f"0.02, Setting 2 0.005, Setting 3 0.02), clip 1, L=3; {every} t < {p.l0l1_steps:,}: "
        "x = ln‖∇f(θ_t)‖ (unclipped, fixed batch), y = ln DS_t; colour = iteration; red dashed = "
        f"OLS fit; DS ≤ 0 dropped. Panels show seed {PLOT_SEED} (the authors' seed); the table "
        f"gives every seed of {list(p.main_seeds)}."
    )
    path = plots.scatter_panels(panels, C.png(ctx, "l0l1.png"), cap)
    table = [
        "| Setting | Adam lr | OLS slope | Pearson r | slope per seed | DS≤0 dropped (all seeds) |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    ours = "; ".join(
        f"{SETTING_NAMES[s]} slope {C.mean_std(nums[s]['slopes'], 2)}, "
        f"r {C.mean_std(nums[s]['pearson_r'], 2)}"
        for s in SETTINGS
    )
    row = C.Row(
        "Fig. 6 right: (L0, L1) scatter",
        PAPER,
        ours,
        verdicts,
        f"{len(p.main_seeds)} Adam runs × first {p.l0l1_steps:,} steps",
        [path],
    )
    return C.FigureResult("l0l1", cap, [path], table, [row], nums)

"""Fig. 4: linear against softmax attention, 3 layers, Setting 1 (Ahn et al. 2024, Section 3).

The paper gives no optimiser, learning rate or softmax form, and the authors' code has no notebook
for it. We use Adam and the clean softmax (over the n context keys only, no 1/n), and give each
attention type its own learning rate, bracketed on the same starting grid.
"""

from __future__ import annotations

from linear_tf import plots
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V

PAPER = "the linear Transformer's loss falls much faster than the softmax Transformer's (log loss vs iteration)"
ATTENTIONS = ("linear", "softmax_clean")
LABELS = {"linear": "linear attention", "softmax_clean": "softmax attention"}


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    curves, runs, rows, nums = {}, {}, [], {}
    for att in ATTENTIONS:
        runs[att] = ctx.tune(
            "1", p.softmax_grid, p.softmax_seeds, p.softmax_steps, ("adam",), attention=att
        )["adam"]
        curves[att] = C.curve(runs[att], label=LABELS[att])
        fin = C.final_loss(runs[att].eval_loss)
        nums[att] = {"lr": C.grid_json(runs[att]), "final": fin.tolist()}
        rows.append(f"| {LABELS[att]} | {C.lr_note(runs[att])} | {C.mean_std(fin)} |")
    f_lin, f_soft = (C.final_loss(runs[a].eval_loss) for a in ATTENTIONS)
    verdicts = [
        V.judge(
            V.log_ratio(f_soft, f_lin),
            "linear ends below softmax",
            "log(softmax/linear final loss)",
        ),
        V.judge(
            V.log_ratio(f_soft, f_lin) - 2.302585,
            "linear ends more than 10x below softmax ('much faster')",
            "log(softmax/linear) − log 10",
        ),
    ]
    grid = ", ".join(f"{x:g}" for x in p.softmax_grid)
    cap = (
        "Fig. 4 (linear vs softmax attention): Setting 1, L=3, d=5, n=20, B=1000, Adam (β 0.9/0.9), "
        f"clip 1, seeds {list(p.softmax_seeds)}, {p.softmax_steps:,} iterations. Softmax = the clean "
        "variant (softmax of the scores over the n context keys, no 1/n). Learning rate per attention "
        f"type = best seed-mean training loss over the last 100 steps on the grid [{grid}], widened "
        "while the best point is on its edge (chosen values in the legend). Fixed-batch loss, "
        "mean ± std/4, log axis."
    )
    path = plots.curve_panels(
        {"Setting 1, Adam": curves}, C.png(ctx, "softmax.png"), cap, "Loss (fixed batch)"
    )
    table = ["| attention | Adam lr | final loss |", "|---|---|---|", *rows]
    ours = f"final loss linear {C.mean_std(f_lin)} vs softmax {C.mean_std(f_soft)}"
    row = C.Row(
        "Fig. 4: linear vs softmax attention",
        PAPER,
        ours,
        verdicts,
        C.seeds_steps(len(p.softmax_seeds), p.softmax_steps) + " per lr",
        [path],
    )
    return C.FigureResult("softmax", cap, [path], table, [row], nums)

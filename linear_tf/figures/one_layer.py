"""The closed-form check behind the model: one layer on Setting 1 trains to the optimum of Ahn et al.
(2023), Theorem 1: C_0 = −n/(n+d+1)·I and loss f* = d(d+1)/(n+d+1) = 30/26 for d=5, n=20."""

from __future__ import annotations

import jax
import numpy as np

from linear_tf import data, model, theory
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V
from linear_tf.figures.runs import Runs

LR = 0.005
EVAL_PROMPTS = 50_000


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    steps = p.one_layer_steps
    seeds = p.main_seeds
    res = ctx.sweep("1", steps, seeds, {"adam": [LR]}, layers=1)
    runs = Runs.of(res, "adam")
    mspec, dspec = ctx.specs("1", layers=1)
    big = data.sample(dspec, jax.random.key(123), EVAL_PROMPTS)
    final = jax.tree_util.tree_map(lambda a: a[0], res.groups["adam"].final_params)
    losses, diag_err, offdiag = [], [], []
    a_star, f_star = (
        theory.isotropic_a_star(mspec.d, mspec.n),
        theory.isotropic_f_star(mspec.d, mspec.n),
    )
    for i in range(len(seeds)):
        params = jax.tree_util.tree_map(lambda a, i=i: a[i], final)
        losses.append(float(model.mse_loss(mspec, params, big)))
        c0 = np.asarray(params["attn"]["bc"][0, 0, 1])
        diag_err.append(float(np.max(np.abs(np.diag(c0) + a_star))))  # C_0* = −a*·I
        offdiag.append(float(np.max(np.abs(c0 - np.diag(np.diag(c0))))))
    losses = np.asarray(losses)
    verdicts = [
        V.judge(0.02 - np.abs(losses / f_star - 1), "loss within 2% of f*", "0.02 − |loss/f* − 1|"),
        V.judge(
            0.05 - np.asarray(diag_err), "diag(C_0) within 0.05 of −a*", "0.05 − max |C_ii + a*|"
        ),
    ]
    table = [
        f"Adam lr {LR}, clip 1, B=1000, {steps:,} steps, seeds {list(seeds)}; loss on "
        f"{EVAL_PROMPTS:,} fresh prompts.",
        "",
        "| quantity | ours (mean ± std) | closed form |",
        "|---|---|---|",
        f"| one-layer loss | {C.mean_std(losses, 4)} | f* = d(d+1)/(n+d+1) = {f_star:.4f} |",
        f"| max |diag(C_0) + a*| | {C.mean_std(diag_err, 2)} | 0 (a* = {a_star:.4f}) |",
        f"| max |offdiag(C_0)| | {C.mean_std(offdiag, 2)} | 0 |",
    ]
    row = C.Row(
        "One layer, Setting 1: the closed-form optimum (Ahn et al. 2023, Thm. 1)",
        f"f* = 30/26 = {f_star:.4f}, C_0 = −{a_star:.4f}·I",
        f"loss {C.mean_std(losses, 4)}, max |diag(C_0) + a*| {C.mean_std(diag_err, 2)}",
        verdicts,
        C.seeds_steps(len(seeds), steps),
    )
    nums = {"loss": losses.tolist(), "diag_err": diag_err, "offdiag": offdiag, "lr": runs.lr}
    return C.FigureResult("one_layer", "", [], table, [row], nums)

"""D2: stochastic-gradient noise at initialisation (Ahn et al. 2024, Section 3, after Kunstner et al.
2023), Settings 1-3 and the sphere (Fig. 7 row 2) and depths L = 2..8 (Fig. 8 row 2).

The paper shows histograms only. Tail claims are judged here with the Hill estimator α̂ on the top 5%
of the errors (smaller = heavier tail; beyond the paper), against a Gaussian baseline with the noise's
own covariance. The measurement is one initialisation (seed 1, as the authors'), so the spread comes
from 200 bootstrap resamples of the errors instead of seeds.
"""

from __future__ import annotations

import numpy as np

from linear_tf import phenomena, plots
from linear_tf.figures import common as C
from linear_tf.figures import verdicts as V
from linear_tf.figures.protocol import SETTING_NAMES

PAPER = (
    "histograms resemble the heavy tails of full Transformers; Setting 3 much heavier-tailed than "
    "the sphere; L = 6, 8 heavier than L = 2, 4"
)


def hill(e) -> float:
    return phenomena.hill_tail_index(e, 0.05)


def heavier(name: str, light, heavy) -> V.Verdict:
    """Claim "`heavy` has the heavier tail": bootstrap of α̂(light) − α̂(heavy) > 0."""
    x = V.bootstrap(lambda a, b: hill(a) - hill(b), [np.asarray(light), np.asarray(heavy)])
    return V.judge(x, name, "Hill α̂ difference", unit="bootstrap resamples")


def depth_ordering(errors_by_depth: dict) -> V.Verdict:
    """Claim "L = 6, 8 heavier than L = 2, 4": min α̂(2, 4) − max α̂(6, 8) > 0 (bootstrap)."""
    low = [errors_by_depth[L] for L in (2, 4)]
    high = [errors_by_depth[L] for L in (6, 8)]
    x = V.bootstrap(lambda a, b, c, d: min(hill(a), hill(b)) - max(hill(c), hill(d)), [*low, *high])
    return V.judge(
        x, "L = 6, 8 heavier-tailed than L = 2, 4", "Hill α̂ gap", unit="bootstrap resamples"
    )


def _row(label: str, r: dict) -> str:
    s = r["summary"]
    boot = V.bootstrap(hill, [r["errors"]])
    return (
        f"| {label} | {s['num_samples']} | {C.fmt(s['median'])} | {C.fmt(s['q99_over_median'])} | "
        f"{C.fmt(s['max_over_median'])} | {C.fmt(s['hill_alpha'])} ± {C.fmt(boot.std(ddof=1), 2)} | "
        f"{C.fmt(s.get('gaussian_hill_alpha'))} | {r['seconds']:.0f} s |"
    )


def judge(settings: dict, depths: dict) -> list:
    """Tail claims from the noise measurements {setting: noise} and {L: noise (Setting 1)}."""
    verdicts = [
        heavier(
            f"{SETTING_NAMES[s]}: heavier tail than Gaussian", r["gaussian_errors"], r["errors"]
        )
        for s, r in settings.items()
    ]
    if {"3", "sphere"} <= set(settings):
        name = "Setting 3 heavier-tailed than the sphere"
        verdicts.append(heavier(name, settings["sphere"]["errors"], settings["3"]["errors"]))
    if {2, 8} <= set(depths):
        name = "L=8 heavier-tailed than L=2"
        verdicts.append(heavier(name, depths[2]["errors"], depths[8]["errors"]))
    if {2, 4, 6, 8} <= set(depths):
        verdicts.append(depth_ordering({L: depths[L]["errors"] for L in depths}))
    return verdicts


def run(ctx) -> C.FigureResult:
    p = ctx.protocol
    settings = {s: ctx.noise(s) for s in p.noise_settings}
    depths = {L: ctx.noise("1", layers=L) for L in p.noise_depths}
    verdicts = judge(settings, depths)
    base = (
        f"at initialisation (seed 1, init std 0.05, no training): ‖g_B − g‖₂ for {p.noise_samples:,} "
        f"minibatches of B=1000 fresh prompts, g from {p.noise_full_batches}×1000 prompts; "
        "100-bin density histograms (top: full range; bottom: up to the 99% quantile)."
    )
    cap1 = "D2 (gradient noise, linear Transformer; Fig. 7 row 2 = sphere vs Setting 3) " + base
    cap2 = "Fig. 8 row 2 (gradient noise vs depth, Setting 1) " + base
    by_name = {f"{SETTING_NAMES[s]}, L=3": r for s, r in settings.items()}
    by_name |= {f"Setting 1, L={L}": r for L, r in depths.items()}
    pngs = [
        plots.histogram_panels(
            {f"{SETTING_NAMES[s]} (L=3)": r["errors"] for s, r in settings.items()},
            C.png(ctx, "grad_noise_settings.png"),
            cap1,
            zoom=0.99,
        ),
        plots.histogram_panels(
            {f"Setting 1, L={L}": r["errors"] for L, r in depths.items()},
            C.png(ctx, "grad_noise_depth.png"),
            cap2,
            zoom=0.99,
        ),
    ]
    table = [
        "Hill α̂ on the top 5% of the errors (smaller = heavier tail) ± bootstrap std (200 "
        "resamples); Gaussian baseline = norms of Gaussian vectors with the noise's covariance. "
        "Beyond the paper, which shows histograms only.",
        "",
        "| Case | samples | median | q99/median | max/median | Hill α̂ | Gaussian-baseline α̂ | time |",
        "|---|---|---|---|---|---|---|---|",
        *[_row(k, r) for k, r in by_name.items()],
    ]
    nums = {k: r["summary"] for k, r in by_name.items()}
    ours = "Hill α̂: " + "; ".join(f"{k} {C.fmt(v['hill_alpha'])}" for k, v in nums.items())
    budget = f"{p.noise_samples:,} samples per case, 1 initialisation"
    item = "D2: gradient-noise histograms (+ Fig. 7 row 2, Fig. 8 row 2)"
    row = C.Row(item, PAPER, ours, verdicts, budget, pngs)
    return C.FigureResult("grad_noise", cap1 + " | " + cap2, pngs, table, [row], nums)

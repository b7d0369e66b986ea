"""One command per figure of Ahn et al. (ICLR 2024), "Linear attention is (maybe) all you need".

  python scripts/reproduce_linear_tf.py --figure=loss_curves --quick --out=results/linear_tf
  python scripts/reproduce_linear_tf.py --figure=all --out=results/linear_tf      # full protocol

Writes <figure>*.png, summary.md (captions + tables) and summary.json (all numbers) under --out and
prints the output paths. `--quick` shrinks steps/seeds/samples (every value is printed in the output).
Sweeps are shared between figures of one invocation: one sweep per setting (reference lrs, every
step's parameters kept) serves loss_curves, condition_number, smoothness and l0l1. Compiled programs
are cached in memory per static shape and on disk in JAX's persistent compilation cache
(--compile_cache, default ~/.cache/linear_tf_jax; --compile_cache= disables it), so a rerun skips
most compilation; a cold `--figure=all --quick` run spends about half its time compiling.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import jax
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from linear_tf import data, model, phenomena, plots, sweep  # noqa: E402
from linear_tf.hparams import default_clip, default_lr  # noqa: E402
from trainloop import cli  # noqa: E402

FIGURES = (
    "loss_curves",
    "grad_noise",
    "condition_number",
    "smoothness",
    "l0l1",
    "depth",
    "softmax",
    "large",
)
# Not part of "all": a per-step directional-smoothness diagnostic that goes beyond the spec.
EXTRA_FIGURES = ("smoothness_steps",)
flags.DEFINE_list(
    "figure",
    ["loss_curves"],
    f"Figures to reproduce: {', '.join(FIGURES + EXTRA_FIGURES)} or all (= {', '.join(FIGURES)}).",
)
flags.DEFINE_string("out", "results/linear_tf", "Output directory.")
flags.DEFINE_bool("quick", False, "Fewer steps/seeds/samples (a few minutes on 2 cores).")
flags.DEFINE_list(
    "settings",
    None,
    "Restrict loss_curves, condition_number and smoothness to these settings (e.g. 1); "
    "default: the protocol's list.",
)
flags.DEFINE_string(
    "compile_cache",
    os.path.join(os.path.expanduser("~"), ".cache", "linear_tf_jax"),
    "JAX persistent compilation cache directory (reruns skip compilation); empty to disable.",
)
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Protocol:
    loss_steps: int = 10_000
    loss_seeds: tuple = (0, 1, 2, 3, 4, 5)
    loss_settings: tuple = ("1", "2", "3", "sphere")
    cn_settings: tuple = ("1", "2", "3")
    cn_steps: int = 10_000
    cn_seeds: tuple = (0, 1, 2, 3, 4, 5)
    noise_samples: int = 10_000
    noise_full_batches: int = 100
    noise_settings: tuple = ("1", "2", "3", "sphere")
    noise_depths: tuple = (2, 4, 6, 8)
    l0l1_steps: int = 2000
    l0l1_stride: int = 1  # every step, as the paper
    ds_stride: int = 10  # per-step DS statistic of D4 at every ds_stride-th step
    ds_steps_settings: tuple = ("1", "2", "3")
    ds_steps: int = 2000
    ds_steps_seeds: tuple = (0, 1, 2, 3, 4, 5)
    depths: tuple = (2, 4, 6, 8)
    depth_steps: int = 10_000
    depth_seeds: tuple = (0, 1, 2, 3, 4, 5)
    tune_steps: int = (
        1000  # 0: one phase, the whole grid on every seed, best lr by final train loss
    )
    tune_grid: tuple = tuple(float(x) for x in np.geomspace(1e-3, 0.2, 10))
    softmax_steps: int = 5000
    softmax_seeds: tuple = (0, 1, 2)
    large_steps: int = 5000
    large_seeds: tuple = (0, 1, 2)
    large_batch: int = 1000
    large_noise_samples: int = 2000
    large_grid: tuple | None = None  # None: tune_grid entries <= 0.05
    depth_grid: tuple | None = None  # None: tune_grid


# loss_curves, condition_number, smoothness and l0l1 share one sweep per setting (`main_sweep`, every
# step's parameters recorded), in both protocols. Quick mode: 1500 steps, not 500: with the reference
# Adam lr 0.005, Setting 2 only overtakes SGDM after ~1000 steps; the lr grids of depth/softmax/large run
# in one phase (grid x seeds, one compiled program each) instead of a tuning phase plus a run.
QUICK = Protocol(
    loss_steps=1500,
    loss_seeds=(0, 1),
    loss_settings=("1", "2", "3"),
    cn_steps=1500,
    cn_seeds=(0, 1),
    noise_samples=1000,
    noise_full_batches=20,
    noise_settings=("1", "3", "sphere"),
    noise_depths=(2, 8),
    l0l1_steps=1000,
    l0l1_stride=2,
    ds_stride=5,
    ds_steps_settings=("3",),
    ds_steps=1500,
    ds_steps_seeds=(0, 1, 2, 3),
    depths=(2, 8),
    depth_steps=500,
    depth_seeds=(0, 1),
    tune_steps=0,
    tune_grid=(0.002, 0.005, 0.01, 0.02, 0.05),
    # Adam at L=8 diverges at every lr >= 0.002 within 500 steps (rare gradient spikes): go lower.
    depth_grid=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05),
    softmax_steps=500,
    softmax_seeds=(0, 1),
    large_steps=100,
    large_seeds=(0,),
    large_batch=200,
    large_noise_samples=200,
    large_grid=(0.002, 0.01),
)

SETTING_NAMES = {"1": "Setting 1", "2": "Setting 2", "3": "Setting 3", "sphere": "Sphere"}
_SWEEPS: dict = {}


def specs(setting: str, layers: int = 3, attention: str = "linear", d: int = 5, n=None):
    dspec = data.make_data_spec(setting, d=d, n=n)
    return model.ModelSpec(d=d, n=dspec.n, layers=layers, attention=attention), dspec


def get_sweep(
    setting, steps, seeds, lrs, layers=3, attention="linear", d=5, n=None, batch=1000, dense=False
):
    """Memoised run_sweep (figures of one invocation share identical sweeps)."""
    key = (
        setting,
        steps,
        tuple(seeds),
        tuple((k, tuple(v)) for k, v in lrs.items()),
        layers,
        attention,
        d,
        n,
        batch,
        dense,
    )
    if key not in _SWEEPS:
        mspec, dspec = specs(setting, layers, attention, d, n)
        cfg = sweep.SweepConfig(steps=steps, batch=batch, clip=default_clip(setting), dense=dense)
        print(
            f"sweep: setting {setting}, L={layers}, {attention}, lrs {lrs}, seeds {list(seeds)}, {steps} steps"
        )
        _SWEEPS[key] = sweep.run_sweep(
            mspec, dspec, lrs, seeds, cfg, eval_batch=data.eval_batch(dspec, batch)
        )
    return _SWEEPS[key]


def ref_lrs(setting):
    return {"sgdm": [default_lr(setting, "sgdm")], "adam": [default_lr(setting, "adam")]}


def tuned(setting, layers, grid, tune_steps, seeds, steps, opts=("sgdm", "adam"), **kw):
    """Best lr per optimiser on `grid` -> (sweep, {opt: [lr]}, {opt: lr index in the sweep}).

    tune_steps > 0: the grid on seed 0 for tune_steps (final train loss of the last 100 steps), then
    the best lr on all seeds. tune_steps == 0: the grid on all seeds for `steps` in one sweep, best lr
    by the seed-averaged final train loss (the paper's "best of the grid")."""
    if tune_steps == 0:
        res = get_sweep(setting, steps, seeds, {o: list(grid) for o in opts}, layers=layers, **kw)
        idx = {o: res.groups[o].best_lr_index(min(100, steps)) for o in opts}
        return res, {o: [float(res.groups[o].lrs[idx[o]])] for o in opts}, idx
    t = get_sweep(setting, tune_steps, (0,), {o: list(grid) for o in opts}, layers=layers, **kw)
    best = {
        o: [float(t.groups[o].lrs[t.groups[o].best_lr_index(min(100, tune_steps))])] for o in opts
    }
    res = get_sweep(setting, steps, seeds, best, layers=layers, **kw)
    return res, best, dict.fromkeys(opts, 0)


def main_sweep(setting, p: Protocol):
    """The one sweep per setting behind D1, D3, D4 and the (L0, L1) scatter (reference lrs, dense)."""
    return get_sweep(setting, p.loss_steps, p.loss_seeds, ref_lrs(setting), dense=True)


def _tune_text(p: Protocol, steps: int, seeds) -> str:
    if p.tune_steps == 0:
        return (
            f"every lr of the grid on seeds {list(seeds)} for {steps} steps, best lr per optimiser by the "
            "seed-mean minibatch loss of the last 100 steps (curves of that lr)"
        )
    return (
        f"lr picked by the mean minibatch loss of the last 100 of {p.tune_steps} steps (seed 0), "
        f"then seeds {list(seeds)} for {steps} steps"
    )


def _stride_text(stride: int) -> str:
    return "" if stride == 1 else f" with t a multiple of {stride} (quick-mode subsample)"


def _fmt(x, digits=3):
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _protocol_line(p: Protocol, fields) -> str:
    return ", ".join(f"{f}={getattr(p, f)}" for f in fields)


def _curves_from(result, key="eval_loss", band=4.0):
    return {
        k: {
            "steps": result.eval_steps,
            "lr": result.best(k)["lr"],
            **phenomena.mean_band(result.best(k)[key], band),
        }
        for k in result.groups
    }


def _below_fraction(curves, start=300):
    a, s = curves["adam"], curves["sgdm"]
    m = a["steps"] >= start
    return float(np.mean(a["mean"][m] < s["mean"][m])) if m.any() else float("nan")


# --- figures ---------------------------------------------------------------------------------
def fig_loss_curves(p: Protocol, out: str) -> dict:
    panels, rows, nums = {}, [], {}
    for s in p.loss_settings:
        res = main_sweep(s, p)
        curves = phenomena.loss_curves(res)
        panels[SETTING_NAMES[s]] = curves
        frac = _below_fraction(curves)
        a, g = curves["adam"], curves["sgdm"]
        nums[s] = {
            "adam_final": a["final_mean"],
            "sgdm_final": g["final_mean"],
            "adam_below_sgdm_fraction": frac,
            "lr_adam": a["lr"],
            "lr_sgdm": g["lr"],
            "clip": default_clip(s),
            "seconds": res.seconds,
        }
        rows.append(
            f"| {SETTING_NAMES[s]} | {g['lr']:g} / {a['lr']:g} | {default_clip(s):g} | "
            f"{_fmt(g['final_mean'])} ± {_fmt(g['final_std'] / 4)} | {_fmt(a['final_mean'])} ± {_fmt(a['final_std'] / 4)} | "
            f"{_fmt(g['final_mean'] / a['final_mean'])} | {frac:.2f} |"
        )
    cap = (
        f"D1 (Adam vs SGD, linear Transformer panels; Fig. 7 row 1 for the sphere). L=3, d=5, B=1000, sparse B/C, init std 0.05. "
        f"Loss on the fixed eval batch every 50 steps; mean over seeds {list(p.loss_seeds)}, band ± std/4 (unbiased), log axis. "
        f"Reference learning rates (SGDM/Adam): "
        + "; ".join(
            f"{SETTING_NAMES[s]} {nums[s]['lr_sgdm']:g}/{nums[s]['lr_adam']:g}, clip {nums[s]['clip']:g}"
            for s in p.loss_settings
        )
        + f". Steps {p.loss_steps}."
    )
    png = plots.curve_panels(
        panels, os.path.join(out, "loss_curves.png"), cap, "Loss (fixed batch)"
    )
    table = [
        "| Setting | lr SGDM / Adam | clip | SGDM final (± std/4) | Adam final (± std/4) | SGDM/Adam | frac. Adam<SGDM (t≥300) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap, "pngs": [png], "table": table, "numbers": nums}


def fig_grad_noise(p: Protocol, out: str) -> dict:
    hists, depth_hists, rows, nums = {}, {}, [], {}

    def one(label, mspec, dspec, batch=1000, samples=p.noise_samples, full=p.noise_full_batches):
        t0 = time.time()
        r = phenomena.gradient_noise(
            mspec, dspec, seed=1, num_samples=samples, batch=batch, full_batches=full
        )
        summ = phenomena.noise_summary(r)
        summ["seconds"] = time.time() - t0
        nums[label] = summ
        rows.append(
            f"| {label} | {summ['num_samples']} | {_fmt(summ['median'])} | {_fmt(summ['q99_over_median'])} | "
            f"{_fmt(summ['max_over_median'])} | {_fmt(summ['hill_alpha'])} | {_fmt(summ['gaussian_hill_alpha'])} |"
        )
        print(f"  noise {label}: {summ}")
        return r["errors"]

    for s in p.noise_settings:
        hists[f"{SETTING_NAMES[s]} (L=3)"] = one(f"{SETTING_NAMES[s]}, L=3", *specs(s))
    for L in p.noise_depths:
        depth_hists[f"Setting 1, L={L}"] = one(f"Setting 1, L={L}", *specs("1", L))
    base = (
        f"at initialisation (seed 1, init std 0.05, no training): ‖g_B − g‖₂ for {p.noise_samples} minibatches of B=1000 fresh prompts, "
        f"g from {p.noise_full_batches}×1000 prompts; 100-bin density histograms (top: full range, bottom: up to the 99% quantile)."
    )
    cap1 = (
        "D2 (gradient noise, linear Transformer panels; Fig. 7 row 2 for sphere vs Setting 3) "
        + base
    )
    cap2 = "Fig. 8 row 2 (depth, Setting 1) " + base
    png1 = plots.histogram_panels(
        hists, os.path.join(out, "grad_noise_settings.png"), cap1, zoom=0.99
    )
    png2 = plots.histogram_panels(
        depth_hists, os.path.join(out, "grad_noise_depth.png"), cap2, zoom=0.99
    )
    table = [
        "Tail statistics (beyond the paper: the paper shows histograms only). Hill α̂ on the top 5% of the errors "
        "(smaller = heavier tail); Gaussian baseline = norms of Gaussian vectors with the noise's empirical covariance.",
        "",
        "| Case | samples | median | q99/median | max/median | Hill α̂ | Gaussian-baseline Hill α̂ |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap1 + " | " + cap2, "pngs": [png1, png2], "table": table, "numbers": nums}


PAPER_RATIO = {
    "1": ("1.76 (0.40)", "1.58 (0.41)"),
    "2": ("3.14 (0.97)", "5.98 (2.86)"),
    "3": ("9.57 (13.3)", "6.53 (3.55)"),
}


def _snapshot_metric(p: Protocol, fn, band):
    out = {}
    for s in p.cn_settings:
        res = (
            main_sweep(s, p)
            if (p.cn_steps, p.cn_seeds) == (p.loss_steps, p.loss_seeds)
            else get_sweep(s, p.cn_steps, p.cn_seeds, ref_lrs(s), dense=True)
        )
        mspec, dspec = specs(s)
        batch = data.eval_batch(dspec, 1000)
        vals = {
            k: phenomena.group_metric(fn, mspec, res.groups[k], 0, batch) for k in ("sgdm", "adam")
        }
        out[s] = (res, vals)
    return out


def fig_condition_number(p: Protocol, out: str) -> dict:
    t0 = time.time()
    data_ = _snapshot_metric(p, phenomena.condition_numbers, 2.0)
    panels, rows, nums = {}, [], {}
    for s, (res, vals) in data_.items():
        panels[SETTING_NAMES[s]] = {
            k: {
                "steps": res.snap_steps,
                "lr": float(res.groups[k].lrs[0]),
                **phenomena.mean_band(v, 2.0),
            }
            for k, v in vals.items()
        }
        tab = phenomena.ratio_table(vals["sgdm"], vals["adam"], res.snap_steps)
        t0r = float(np.mean(vals["sgdm"][:, 0] / vals["adam"][:, 0]))
        lc = phenomena.loss_curves(res)
        nums[s] = {
            "ratio": tab,
            "ratio_at_0": t0r,
            "R_sgdm_mean": vals["sgdm"].mean(0).tolist(),
            "R_adam_mean": vals["adam"].mean(0).tolist(),
            "steps": res.snap_steps.tolist(),
            "final_loss_sgdm": lc["sgdm"]["final_mean"],
            "final_loss_adam": lc["adam"]["final_mean"],
        }
        fl = f"{_fmt(lc['sgdm']['final_mean'])} / {_fmt(lc['adam']['final_mean'])}"
        cell = lambda t, tab=tab: (
            f"{tab[t]['mean']:.2f} ({tab[t]['std']:.2f})" if t in tab else "n/a"
        )
        rows.append(
            f"| {SETTING_NAMES[s]} | {cell(750)} | {cell(1250)} | {PAPER_RATIO[s][0]} | {PAPER_RATIO[s][1]} | {t0r:.3f} | {fl} |"
        )
    cap = (
        f"D3 (robust condition number R_med = max|diag H| / lower-median|diag H| over all 2LHd²=150 entries, dead block included; exact Hessian diagonal on the fixed batch) "
        f"every 250 steps, mean ± std/2 over seeds {list(p.cn_seeds)}, log axis. L=3, reference lrs (SGDM/Adam): S1 0.02/0.02, S2 0.01/0.005, S3 0.02/0.02; clip 1. Steps {p.cn_steps}."
    )
    png = plots.curve_panels(panels, os.path.join(out, "condition_number.png"), cap, "R_med")
    table = [
        f"R_SGDM/R_Adam per seed, mean (unbiased std) over seeds {list(p.cn_seeds)} (metric time {time.time() - t0:.0f}s):",
        "",
        "| Setting | ours @750 | ours @1250 | paper @750 | paper @1250 | ratio @0 | final loss SGDM / Adam |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap, "pngs": [png], "table": table, "numbers": nums}


def _per_step_ds(mspec, batch, group, stride: int, lr_index=0):
    """(DS_t (n_seed, n_t), t) along the actual update at steps t = 0, stride, ... < T-1 of every seed."""
    dense = group.at_lr(lr_index)["dense_params"]
    n_seed = jax.tree_util.tree_leaves(dense)[0].shape[0]
    outs = [
        phenomena.per_step_smoothness(
            mspec,
            jax.tree_util.tree_map(lambda a, i=i: a[i], dense),
            batch,
            stride=stride,
            grad_norm=False,
        )
        for i in range(n_seed)
    ]
    return np.stack([o[0] for o in outs]), outs[0][2]


def fig_smoothness(p: Protocol, out: str) -> dict:
    """D4 with two statistics of the same runs (see the caption): the spec's stride-250 checkpoint mean
    over seeds, and the median over (seed, step) of the per-step DS in 250-step windows, which the
    verdict uses because rare single-step spikes decide the former."""
    data_ = _snapshot_metric(p, phenomena.directional_smoothness, 4.0)
    panels, robust_panels, rows, nums = {}, {}, [], {}
    for s, (res, vals) in data_.items():
        steps = res.snap_steps
        panels[f"{SETTING_NAMES[s]}: stride 250, mean"] = {
            k: {
                "steps": steps,
                "lr": float(res.groups[k].lrs[0]),
                **phenomena.mean_band(np.where(v > 0, v, np.nan), 4.0),
            }
            for k, v in vals.items()
        }
        mspec, dspec = specs(s)
        batch = model.prepare_batch(mspec, data.eval_batch(dspec, 1000))
        ds, t_ds = {}, None
        for k in ("sgdm", "adam"):
            ds[k], t_ds = _per_step_ds(mspec, batch, res.groups[k], p.ds_stride)
        win = phenomena.window_summary(ds["sgdm"], ds["adam"], steps=t_ds)
        later = [w for w in win if w["start"] >= 250]
        robust_panels[f"{SETTING_NAMES[s]}: per step, window median"] = {
            k: {
                "steps": np.array([(w["start"] + w["stop"]) / 2 for w in win]),
                "lr": float(res.groups[k].lrs[0]),
                "mean": np.array([w[f"median_{k}"] for w in win]),
                "lo": np.array([w[f"q25_{k}"] for w in win]),
                "hi": np.array([w[f"q75_{k}"] for w in win]),
            }
            for k in ("sgdm", "adam")
        }
        m = steps >= 250
        mean_below = float(np.mean(vals["adam"].mean(0)[m] < vals["sgdm"].mean(0)[m]))
        seed_below = float(np.mean(vals["adam"][:, m] < vals["sgdm"][:, m]))
        win_below = float(np.mean([w["median_adam"] < w["median_sgdm"] for w in later]))
        neg = {k: int((v <= 0).sum()) for k, v in vals.items()}
        nums[s] = {
            "frac_mean_adam_below": mean_below,
            "frac_pairs_adam_below": seed_below,
            "negative_counts": neg,
            "adam_median": float(np.median(vals["adam"][:, m])),
            "sgdm_median": float(np.median(vals["sgdm"][:, m])),
            "per_step": {
                "frac_windows_median_adam_below_t_ge_250": win_below,
                "frac_steps_adam_below_t_ge_250": float(
                    np.mean(ds["adam"][:, t_ds >= 250] < ds["sgdm"][:, t_ds >= 250])
                ),
                "median_sgdm_t_ge_250": float(np.median(ds["sgdm"][:, t_ds >= 250])),
                "median_adam_t_ge_250": float(np.median(ds["adam"][:, t_ds >= 250])),
                "stride": p.ds_stride,
                "negative_counts": {k: int((v <= 0).sum()) for k, v in ds.items()},
                "windows": win,
            },
        }
        ps = nums[s]["per_step"]
        rows.append(
            f"| {SETTING_NAMES[s]} | {_fmt(nums[s]['sgdm_median'])} / {_fmt(nums[s]['adam_median'])} | {mean_below:.2f} | "
            f"{_fmt(ps['median_sgdm_t_ge_250'])} / {_fmt(ps['median_adam_t_ge_250'])} | {win_below:.2f} | "
            f"{ps['frac_steps_adam_below_t_ge_250']:.2f} | {neg['sgdm']} / {neg['adam']} |"
        )
    cap = (
        "D4 = Fig. 2 (directional smoothness DS_t = u_tᵀ∇²f(θ_t)u_t along the actual update u_t ∝ θ_(t+1)−θ_t, second derivative of f(θ_t + s·u_t) at s=0 by forward-mode autodiff on the fixed batch), "
        f"L=3, reference lrs as D3, clip 1, seeds {list(p.cn_seeds)}, {p.cn_steps} steps, log axis. Top row (the spec's aggregation): "
        f"every 250 steps, mean ± std/4 over seeds (non-positive values dropped and counted). Bottom row (used for the verdict): DS at every {p.ds_stride}-th step, "
        "median over (seed, step) in each 250-step window, band = interquartile range; robust to the rare single-step spikes that decide a mean over 2-6 seeds."
    )
    png = plots.curve_panels(
        {**panels, **robust_panels},
        os.path.join(out, "smoothness.png"),
        cap,
        "Directional smoothness",
        ncols=len(panels),
    )
    table = [
        "| Setting | stride 250: median DS SGDM / Adam (t≥250) | stride 250: frac. checkpoints seed-mean Adam<SGDM | "
        f"per step (stride {p.ds_stride}): median DS SGDM / Adam (t≥250) | per step: frac. 250-step windows median Adam<SGDM (t≥250) | "
        "per step: frac. (seed, step) Adam<SGDM (t≥250) | stride-250 DS≤0 count SGDM/Adam |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap, "pngs": [png], "table": table, "numbers": nums}


def fig_smoothness_steps(p: Protocol, out: str) -> dict:
    """DS at every step (not only every 250) and window statistics; beyond the spec (see caption)."""
    panels, rows, nums = {}, [], {}
    for s in p.ds_steps_settings:
        res = get_sweep(s, p.ds_steps, p.ds_steps_seeds, ref_lrs(s), dense=True)
        mspec, dspec = specs(s)
        batch = model.prepare_batch(mspec, data.eval_batch(dspec, 1000))
        ds = {}
        for k in ("sgdm", "adam"):
            dense = res.groups[k].at_lr(0)["dense_params"]
            ds[k] = np.stack(
                [
                    phenomena.per_step_smoothness(
                        mspec,
                        jax.tree_util.tree_map(lambda a, i=i: a[i], dense),
                        batch,
                        grad_norm=False,
                    )[0]
                    for i in range(len(p.ds_steps_seeds))
                ]
            )
        win = phenomena.window_summary(ds["sgdm"], ds["adam"])
        mid = np.array([(w["start"] + w["stop"]) / 2 for w in win])
        panels[SETTING_NAMES[s]] = {
            k: {
                "steps": mid,
                "lr": float(res.groups[k].lrs[0]),
                "mean": np.array([w[f"median_{k}"] for w in win]),
                "lo": np.array([w[f"q25_{k}"] for w in win]),
                "hi": np.array([w[f"q75_{k}"] for w in win]),
            }
            for k in ("sgdm", "adam")
        }
        later = [w for w in win if w["start"] >= 250]
        nums[s] = {
            "windows": win,
            "negative_counts": {k: int((v <= 0).sum()) for k, v in ds.items()},
            "frac_steps_adam_below_t_ge_250": float(
                np.mean(ds["adam"][:, 250:] < ds["sgdm"][:, 250:])
            ),
            "frac_windows_median_adam_below_t_ge_250": float(
                np.mean([w["median_adam"] < w["median_sgdm"] for w in later])
            ),
        }
        for w in win:
            rows.append(
                f"| {SETTING_NAMES[s]} | {w['start']}-{w['stop']} | {_fmt(w['median_sgdm'])} | {_fmt(w['median_adam'])} | "
                f"{w['frac_adam_below']:.2f} | {_fmt(w['mean_sgdm'])} | {_fmt(w['mean_adam'])} |"
            )
    cap = (
        "Beyond the spec (diagnostic for D4 = Fig. 2): directional smoothness DS_t = u_tᵀ∇²f(θ_t)u_t along the actual update at EVERY step "
        f"t < {p.ds_steps} (fixed eval batch), seeds {list(p.ds_steps_seeds)}, reference lrs, clip 1, L=3; "
        "line = median over (seed, step) in each 250-step window, band = interquartile range; log axis."
    )
    png = plots.curve_panels(
        panels,
        os.path.join(out, "smoothness_steps.png"),
        cap,
        "Directional smoothness (window median)",
    )
    table = [
        "| Setting | steps | median DS SGDM | median DS Adam | frac. (seed, step) Adam<SGDM | mean DS SGDM | mean DS Adam |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap, "pngs": [png], "table": table, "numbers": nums}


def fig_l0l1(p: Protocol, out: str) -> dict:
    panels, rows, nums = {}, [], {}
    for s in ("1", "2", "3"):
        lr = default_lr(s, "adam")
        mspec, dspec = specs(s)
        if s in p.loss_settings and 1 in p.loss_seeds and p.loss_steps >= p.l0l1_steps:
            res = main_sweep(s, p)  # the same Adam run (seed 1) as D1/D3/D4, first l0l1_steps steps
            seed_i = list(p.loss_seeds).index(1)
        else:
            res, seed_i = get_sweep(s, p.l0l1_steps, (1,), {"adam": [lr]}, dense=True), 0
        dense = res.groups["adam"].at_lr(0)["dense_params"]
        dense = jax.tree_util.tree_map(lambda a, i=seed_i: a[i, : p.l0l1_steps], dense)
        sc = phenomena.l0l1_scatter(
            mspec, dense, data.eval_batch(dspec, 1000), stride=p.l0l1_stride
        )
        panels[SETTING_NAMES[s]] = sc
        nums[s] = {k: sc[k] for k in ("slope", "pearson_r", "num_negative", "num_points")} | {
            "lr": lr
        }
        rows.append(
            f"| {SETTING_NAMES[s]} | {lr:g} | {sc['slope']:.2f} | {sc['pearson_r']:.2f} | {sc['num_points']} | {sc['num_negative']} |"
        )
    cap = (
        f"Fig. 6 right panels ((L0,L1)-smoothness): one Adam run per setting (seed 1, reference lr, clip 1, L=3), every {'' if p.l0l1_stride == 1 else f'{p.l0l1_stride}nd/th '}step t < {p.l0l1_steps}: "
        f"x = ln‖∇f(θ_t)‖ (unclipped, fixed batch), y = ln DS_t; colour = iteration; red dashed = OLS fit; negative DS dropped."
    )
    png = plots.scatter_panels(panels, os.path.join(out, "l0l1.png"), cap)
    table = [
        "| Setting | Adam lr | OLS slope | Pearson r | points | DS≤0 dropped |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap, "pngs": [png], "table": table, "numbers": nums}


def fig_depth(p: Protocol, out: str) -> dict:
    loss_panels, cn_panels, rows, nums = {}, {}, [], {}
    depth_grid = p.depth_grid or p.tune_grid
    for L in p.depths:
        res, best, idx = tuned("1", L, depth_grid, p.tune_steps, p.depth_seeds, p.depth_steps)
        curves = phenomena.loss_curves(res)
        loss_panels[f"L={L}"] = curves
        mspec, dspec = specs("1", L)
        batch = data.eval_batch(dspec, 1000)
        r = {
            k: phenomena.group_metric(
                phenomena.condition_numbers, mspec, res.groups[k], idx[k], batch
            )
            for k in ("sgdm", "adam")
        }
        cn_panels[f"L={L}"] = {
            k: {"steps": res.snap_steps, "lr": best[k][0], **phenomena.mean_band(v, 2.0)}
            for k, v in r.items()
        }
        ratio = r["sgdm"][:, -1] / r["adam"][:, -1]
        a, g = curves["adam"], curves["sgdm"]
        nums[L] = {
            "lr": best,
            "adam_final": a["final_mean"],
            "sgdm_final": g["final_mean"],
            "frac_below": _below_fraction(curves),
            "R_ratio_last_snapshot": float(ratio.mean()),
            "last_snapshot": int(res.snap_steps[-1]),
        }
        rows.append(
            f"| {L} | {best['sgdm'][0]:.3g} / {best['adam'][0]:.3g} | {_fmt(g['final_mean'])} | {_fmt(a['final_mean'])} | "
            f"{_fmt(g['final_mean'] / a['final_mean'])} | {nums[L]['frac_below']:.2f} | {ratio.mean():.2f} @ {res.snap_steps[-1]} |"
        )
    grid = ", ".join(f"{x:.3g}" for x in depth_grid)
    cap = (
        f"Fig. 8 (depth, Setting 1, d=5, n=20, B=1000, clip 1): lr tuned per (L, optimiser) on the grid [{grid}]: "
        f"{_tune_text(p, p.depth_steps, p.depth_seeds)}. Row 1: fixed-batch loss, mean ± std/4; row 3: R_med, mean ± std/2 (noise row: grad_noise_depth.png)."
    )
    png1 = plots.curve_panels(
        loss_panels, os.path.join(out, "depth_loss.png"), cap, "Loss (fixed batch)"
    )
    png2 = plots.curve_panels(
        cn_panels, os.path.join(out, "depth_condition_number.png"), cap, "R_med"
    )
    table = [
        "| L | tuned lr SGDM / Adam | SGDM final | Adam final | SGDM/Adam | frac. Adam<SGDM | R_SGDM/R_Adam (last snapshot) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return {"caption": cap, "pngs": [png1, png2], "table": table, "numbers": nums}


def fig_softmax(p: Protocol, out: str) -> dict:
    grid = p.tune_grid
    curves, rows, nums = {}, [], {}
    for att in ("linear", "softmax"):
        res, best, _ = tuned(
            "1",
            3,
            grid,
            p.tune_steps,
            p.softmax_seeds,
            p.softmax_steps,
            opts=("adam",),
            attention=att,
        )
        c = phenomena.loss_curves(res)["adam"]
        curves[att] = c
        nums[att] = {
            "lr": best["adam"][0],
            "final": c["final_mean"],
            "loss_at": {
                int(t): float(v) for t, v in zip(c["steps"][::10], c["mean"][::10], strict=True)
            },
        }
        rows.append(f"| {att} | {best['adam'][0]:.3g} | {_fmt(c['final_mean'])} |")
    grid_s = ", ".join(f"{x:.3g}" for x in grid)
    cap = (
        f"Fig. 4 (linear vs softmax attention): Setting 1, L=3, Adam, lr tuned per attention type on [{grid_s}]: "
        f"{_tune_text(p, p.softmax_steps, p.softmax_seeds)}, clip 1; softmax = the reference-compatible variant (softmax over all n+1 keys, "
        f"then the key mask and 1/n). Fixed-batch loss, mean ± std/4, log axis."
    )
    png = plots.curve_panels(
        {"Setting 1, Adam": curves}, os.path.join(out, "softmax.png"), cap, "Loss (fixed batch)"
    )
    table = ["| attention | tuned Adam lr | final loss |", "|---|---|---|", *rows]
    return {"caption": cap, "pngs": [png], "table": table, "numbers": nums}


def fig_large(p: Protocol, out: str) -> dict:
    grid = p.large_grid or tuple(x for x in p.tune_grid if x <= 0.05)
    res, best, _ = tuned(
        "1", 8, grid, p.tune_steps, p.large_seeds, p.large_steps, d=20, n=60, batch=p.large_batch
    )
    curves = phenomena.loss_curves(res)
    mspec, dspec = specs("1", 8, d=20, n=60)
    noise = phenomena.gradient_noise(
        mspec,
        dspec,
        seed=1,
        num_samples=p.large_noise_samples,
        batch=p.large_batch,
        full_batches=max(10, p.noise_full_batches // 5),
        chunk=5,
    )
    summ = phenomena.noise_summary(noise)
    grid_s = ", ".join(f"{x:.3g}" for x in grid)
    cap = (
        f"Fig. 5 (large model L=8, d=20, n=60, Gaussian data, B={p.large_batch}, clip 1): lr tuned on [{grid_s}]: "
        f"{_tune_text(p, p.large_steps, p.large_seeds)}; left: fixed-batch loss (mean ± std/4, log); right: gradient-noise histogram at init "
        f"({p.large_noise_samples} minibatches)."
    )
    png1 = plots.curve_panels(
        {"L=8, d=20, n=60": curves}, os.path.join(out, "large_loss.png"), cap, "Loss (fixed batch)"
    )
    png2 = plots.histogram_panels(
        {"L=8, d=20, n=60": noise["errors"]}, os.path.join(out, "large_noise.png"), cap, zoom=0.99
    )
    a, g = curves["adam"], curves["sgdm"]
    nums = {"lr": best, "adam_final": a["final_mean"], "sgdm_final": g["final_mean"], "noise": summ}
    table = [
        "| lr SGDM / Adam | SGDM final | Adam final | noise Hill α̂ (Gaussian baseline) |",
        "|---|---|---|---|",
        f"| {best['sgdm'][0]:.3g} / {best['adam'][0]:.3g} | {_fmt(g['final_mean'])} | {_fmt(a['final_mean'])} | {_fmt(summ['hill_alpha'])} ({_fmt(summ['gaussian_hill_alpha'])}) |",
    ]
    return {"caption": cap, "pngs": [png1, png2], "table": table, "numbers": nums}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def main(argv):
    del argv
    if FLAGS.compile_cache:
        jax.config.update("jax_compilation_cache_dir", FLAGS.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    p = QUICK if FLAGS.quick else Protocol()
    if FLAGS.settings:
        bad = [x for x in FLAGS.settings if x not in SETTING_NAMES]
        if bad:
            raise app.UsageError(f"Unknown --settings={bad}. Valid: {', '.join(SETTING_NAMES)}.")
        p = dataclasses.replace(
            p,
            loss_settings=tuple(FLAGS.settings),
            cn_settings=tuple(x for x in FLAGS.settings if x in PAPER_RATIO),
        )
    out = FLAGS.out
    os.makedirs(out, exist_ok=True)
    figs = FIGURES if FLAGS.figure == ["all"] else tuple(FLAGS.figure)
    for f in figs:
        if f not in FIGURES + EXTRA_FIGURES:
            raise app.UsageError(
                f"Unknown --figure={f!r}. Valid: {', '.join(FIGURES + EXTRA_FIGURES)}, all."
            )
    cmd = "python scripts/reproduce_linear_tf.py " + " ".join(sys.argv[1:])
    md = [
        f"# linear_tf reproduction ({'quick' if FLAGS.quick else 'full'} protocol)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Protocol: {_protocol_line(p, [f.name for f in dataclasses.fields(p)])}",
        "",
    ]
    js = {
        "command": cmd,
        "quick": FLAGS.quick,
        "protocol": _jsonable(dataclasses.asdict(p)),
        "figures": {},
    }
    written = []
    for name in figs:
        t0 = time.time()
        print(f"== {name} ==")
        r = globals()[f"fig_{name}"](p, out)
        secs = time.time() - t0
        md += [
            f"## {name}",
            "",
            f"Caption: {r['caption']}",
            "",
            *[f"![{name}]({os.path.basename(x)})" for x in r["pngs"]],
            "",
            *r["table"],
            "",
            f"Wall time: {secs:.0f} s.",
            "",
        ]
        js["figures"][name] = {
            "caption": r["caption"],
            "pngs": r["pngs"],
            "numbers": _jsonable(r["numbers"]),
            "seconds": secs,
        }
        written += r["pngs"]
    md_path, js_path = os.path.join(out, "summary.md"), os.path.join(out, "summary.json")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    with open(js_path, "w") as f:
        json.dump(js, f, indent=1)
    print("\n".join(md))
    print("\nWrote:")
    for path in [*written, md_path, js_path]:
        print(" ", path)


if __name__ == "__main__":
    cli.run(main, stop_note="before the summary was written (finished figures stay in --out).")

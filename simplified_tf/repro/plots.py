"""The figures' PNGs: loss curves (per step and per measured wall-clock), LR sweeps, bar charts and
gain trajectories. Every plot is saved with a tight bounding box so no label is clipped; captions
live in summary.md next to the image."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simplified_tf.repro.experiment import ArmOutcome


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_curve(outcome: ArmOutcome) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps and the mean ± std over seeds of the eval loss (steps common to every seed)."""
    curves = [r["curve"] for r in outcome.results]
    common = sorted(set.intersection(*(set(c["step"]) for c in curves)))
    if not common:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    rows = []
    for c in curves:
        lookup = dict(zip(c["step"], (float(x) for x in c["loss"]), strict=True))
        rows.append([lookup[s] for s in common])
    arr = np.asarray(rows)
    std = arr.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(common))
    return np.asarray(common), arr.mean(axis=0), std


def _finish(fig, path: str) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)


def _finish_single(fig, ax, title: str, path: str) -> str:
    """Legend and title of a one-panel figure, then saved to `path` (returned)."""
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _finish(fig, path)
    return path


def curves(
    outcomes: dict[str, ArmOutcome],
    path: str,
    *,
    title: str,
    step_seconds: dict[str, float] | None = None,
    ylim_top: float | None = None,
) -> str:
    """Mean eval loss ± std over seeds against step, and against measured wall-clock when
    `step_seconds` (arm -> seconds per step) is given."""
    plt = _plt()
    panels = 2 if step_seconds else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    for name, o in outcomes.items():
        steps, mean, std = mean_curve(o)
        if not len(steps):
            continue
        xs = [steps]
        if step_seconds:
            xs.append(steps * step_seconds[name] / 60.0)
        for ax, x in zip(axes[0], xs, strict=True):
            (line,) = ax.plot(x, mean, label=name, lw=1.4)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18)
    axes[0][0].set_xlabel("step")
    if step_seconds:
        axes[0][1].set_xlabel("wall-clock (min; measured step time x step)")
    if ylim_top is None:  # leave out the first quarter's steep fall so the endings are readable
        tops = []
        for o in outcomes.values():
            steps, mean, _ = mean_curve(o)
            late = mean[steps >= 0.25 * steps.max()] if len(steps) else mean
            tops += [float(x) for x in late if np.isfinite(x)]
        ylim_top = max(tops) + 0.05 if tops else None
    for ax in axes[0]:
        ax.set_ylabel("eval loss (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        if ylim_top is not None:
            ax.set_ylim(top=ylim_top)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _finish(fig, path)
    return path


def lr_sweeps(outcomes: dict[str, ArmOutcome], path: str, *, title: str) -> str:
    """Final eval loss of the tuning runs against peak LR, one line per arm; chosen LR circled."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    finite_all = []
    for name, o in outcomes.items():
        t = o.tuning
        pairs = sorted(zip(t["grid"], t["losses"], strict=True))
        lrs = [p[0] for p in pairs]
        losses = [p[1] if math.isfinite(p[1]) else np.nan for p in pairs]
        finite_all += [x for x in losses if math.isfinite(x)]
        (line,) = ax.plot(lrs, losses, marker="o", ms=3.5, lw=1.2, label=name)
        if math.isfinite(t["best_loss"]):
            ax.plot([t["best_lr"]], [t["best_loss"]], "o", ms=9, mfc="none", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final eval loss (tuning seed)")
    if finite_all:
        lo, hi = min(finite_all), max(finite_all)
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), min(hi, lo + 3.0) + 0.05 * (hi - lo + 1e-9))
    ax.grid(alpha=0.3, which="both")
    return _finish_single(fig, ax, title, path)


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, Sequence[tuple[float, float]]],
    path: str,
    *,
    title: str,
    ylabel: str,
    reference: tuple[str, float] | None = None,
) -> str:
    """Bars of mean ± std: x = `groups`, one bar per series entry (name -> [(mean, std) per group])."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(series)) ** 0.5), 3.8))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    values = []
    for i, (name, vals) in enumerate(series.items()):
        means = [v[0] if math.isfinite(v[0]) else np.nan for v in vals]
        stds = [v[1] if math.isfinite(v[1]) else 0.0 for v in vals]
        values += [m for m in means if math.isfinite(m)]
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=name
        )
    if reference is not None:
        ax.axhline(reference[1], color="k", ls="--", lw=1, label=reference[0])
        values.append(reference[1])
    if values:
        lo, hi = min(values), max(values)
        pad = 0.15 * (hi - lo + 1e-9)
        ax.set_ylim(lo - 3 * pad, hi + 2 * pad)
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return _finish_single(fig, ax, title, path)


def trajectories(
    panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    path: str,
    *,
    title: str,
    ylabel: str,
    reference: float | None = None,
) -> str:
    """Small multiples: one panel per key, one line per label (label -> (steps, values))."""
    plt = _plt()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, sharey=True)
    for ax, (panel, lines) in zip(axes[0], panels.items(), strict=True):
        for label, (xs, ys) in lines.items():
            ax.plot(xs, ys, lw=1.3, label=label)
        if reference is not None:
            ax.axhline(reference, color="k", ls=":", lw=1)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _finish(fig, path)
    return path

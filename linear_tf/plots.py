"""Matplotlib figures (Agg backend) for the linear_tf reproduction; data in, PNG out."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"sgdm": "black", "adam": "red", "sgd": "gray"}
LABELS = {"sgdm": "SGDM", "adam": "Adam", "sgd": "SGD"}


def _color(name, i):
    return COLORS.get(name, f"C{i}")


def _finish(fig, path: str, caption: str) -> str:
    width = fig.get_figwidth()
    text = "\n".join(textwrap.wrap(caption, max(60, int(16 * width))))  # ~16 chars/inch at 7 pt
    fig.text(0.01, 0.01, text, fontsize=7, va="bottom", ha="left")
    lines = text.count("\n") + 1
    fig.set_figheight(fig.get_figheight() + 0.12 * lines)
    fig.subplots_adjust(
        left=min(0.3, 0.75 / width),
        bottom=(0.6 + 0.12 * lines) / fig.get_figheight(),
        top=0.9,
        wspace=0.35,
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def curve_panels(
    panels: dict,
    path: str,
    caption: str,
    ylabel: str,
    log: bool = True,
    xlabel: str = "Iteration",
    ncols: int | None = None,
) -> str:
    """panels: title -> {name: {"steps", "mean", "lo", "hi", "lr"?}}; one axis per title, `ncols` per row."""
    ncols = ncols or len(panels)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.9 * nrows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, curves) in zip(axes.ravel(), panels.items(), strict=False):
        for i, (name, c) in enumerate(curves.items()):
            label = LABELS.get(name, name) + (f" (lr {c['lr']:g})" if "lr" in c else "")
            col = _color(name, i)
            ax.plot(c["steps"], c["mean"], color=col, label=label, lw=1.2)
            lo = np.maximum(c["lo"], np.min(c["mean"][c["mean"] > 0]) * 1e-2) if log else c["lo"]
            ax.fill_between(c["steps"], lo, c["hi"], color=col, alpha=0.2, lw=0)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    return _finish(fig, path, caption)


def histogram_panels(panels: dict, path: str, caption: str, bins: int = 100, zoom=None) -> str:
    """panels: title -> errors (1-D). Density histograms; `zoom` = quantile for a second, zoomed row."""
    rows = 2 if zoom else 1
    fig, axes = plt.subplots(
        rows, len(panels), figsize=(3.6 * len(panels), 3.0 * rows + 0.6), squeeze=False
    )
    for j, (title, e) in enumerate(panels.items()):
        e = np.asarray(e)
        axes[0, j].hist(e, bins=bins, density=True, color="tab:blue")
        axes[0, j].set_title(title, fontsize=9)
        axes[0, j].set_xlabel("Gradient error")
        if zoom:
            hi = np.quantile(e, zoom)
            axes[1, j].hist(e[e <= hi], bins=bins, density=True, color="tab:green")
            axes[1, j].set_xlabel(f"Gradient error (≤ {zoom:.0%} quantile)")
    axes[0, 0].set_ylabel("Density")
    return _finish(fig, path, caption)


def scatter_panels(panels: dict, path: str, caption: str) -> str:
    """panels: title -> l0l1 dict (x, y, t, slope, intercept, pearson_r)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.9), squeeze=False)
    for ax, (title, s) in zip(axes[0], panels.items(), strict=True):
        sc = ax.scatter(s["x"], s["y"], c=s["t"], s=4, cmap="viridis")
        xs = np.linspace(s["x"].min(), s["x"].max(), 10)
        ax.plot(xs, s["slope"] * xs + s["intercept"], "r--", lw=1)
        ax.set_title(f"{title}\nslope {s['slope']:.2f}, r {s['pearson_r']:.2f}", fontsize=9)
        ax.set_xlabel("ln ‖∇f(θ_t)‖")
        ax.set_ylabel("ln DS_t")
        fig.colorbar(sc, ax=ax, label="iteration")
    return _finish(fig, path, caption)

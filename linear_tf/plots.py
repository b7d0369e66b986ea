"""Matplotlib figures (Agg backend) for the linear_tf reproduction; data in, PNG out.

Every figure carries its caption below the panels, wrapped to the figure's width, and is saved with a
tight bounding box, so no caption line, tick label or axis label falls outside the canvas.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"sgdm": "black", "adam": "red", "sgd": "gray"}
LABELS = {"sgdm": "SGDM", "adam": "Adam", "sgd": "SGD"}
CAPTION_PT = 7.5
CHARS_PER_INCH = 72 / (0.52 * CAPTION_PT)  # average glyph width ~0.52 em in DejaVu Sans


def _color(name, i):
    return COLORS.get(name, f"C{i}")


def wrap_caption(caption: str, width_in: float) -> str:
    """The caption broken into lines that fit `width_in` inches at CAPTION_PT points."""
    chars = max(40, int(width_in * CHARS_PER_INCH) - 2)
    return "\n".join(textwrap.wrap(caption, chars))


def finish(fig, path: str, caption: str) -> str:
    """Lays the panels out, puts the wrapped caption underneath and saves with a tight box (the
    saved canvas grows to hold every artist, the caption included)."""
    fig.tight_layout()
    text = wrap_caption(caption, fig.get_figwidth() - 0.1)
    fig.text(0.005, -0.01, text, fontsize=CAPTION_PT, va="top", ha="left")
    fig.savefig(path, dpi=90, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return path


def _grid(n_panels: int, ncols: int | None, w: float, h: float):
    ncols = ncols or n_panels
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def curve_panels(
    panels: dict,
    path: str,
    caption: str,
    ylabel,
    log: bool = True,
    xlabel: str = "Iteration",
    ncols: int | None = None,
    notes: dict | None = None,
) -> str:
    """panels: title -> {name: {"steps", "mean", "lo", "hi", "lr"?, "label"?}}; one axis per title.
    `ylabel` is one label or {title: label}; `log` is one bool or {title: bool}.

    On a log axis, non-positive centre values are not drawn (the caller counts them and may pass a
    per-panel `notes` line saying so); the band is clipped to the positive range."""
    fig, axes = _grid(len(panels), ncols, 4.4, 3.4)
    for ax, (title, curves) in zip(axes, panels.items(), strict=False):
        log_ax = log[title] if isinstance(log, dict) else log
        for i, (name, c) in enumerate(curves.items()):
            label = c.get("label", LABELS.get(name, name))
            if "lr" in c:
                label += f" (lr {c['lr']:.3g})"
            col = _color(name, i)
            mean = np.asarray(c["mean"], np.float64)
            lo, hi = np.asarray(c["lo"], np.float64), np.asarray(c["hi"], np.float64)
            if log_ax:
                pos = mean[mean > 0]
                floor = pos.min() * 1e-2 if pos.size else 1e-12
                mean = np.where(mean > 0, mean, np.nan)
                lo, hi = np.maximum(lo, floor), np.maximum(hi, floor)
            marker = "o" if len(mean) <= 12 else None  # sparse curves: every point visible
            ax.plot(c["steps"], mean, color=col, label=label, lw=1.2, marker=marker, ms=3)
            ax.fill_between(c["steps"], lo, hi, color=col, alpha=0.2, lw=0)
        if log_ax:
            ax.set_yscale("log")
        note = notes.get(title) if notes else None
        ax.set_title(f"{title}\n{note}" if note else title, fontsize=9 if not note else 8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel[title] if isinstance(ylabel, dict) else ylabel)
        ax.legend(fontsize=7)
    return finish(fig, path, caption)


def histogram_panels(
    panels: dict, path: str, caption: str, bins: int = 100, zoom=None, qq: bool = False
) -> str:
    """panels: title -> errors (1-D). Density histograms; `zoom` = quantile for a second, zoomed row;
    `qq` adds a Gaussian QQ-plot inset (as in the authors' nonlinear notebook)."""
    rows = 2 if zoom else 1
    fig, axes = plt.subplots(
        rows, len(panels), figsize=(max(3.7 * len(panels), 5.0), 2.9 * rows), squeeze=False
    )
    for j, (title, e) in enumerate(panels.items()):
        e = np.asarray(e, np.float64)
        axes[0, j].hist(e, bins=bins, density=True, color="tab:blue")
        axes[0, j].set_title(title, fontsize=9)
        axes[0, j].set_xlabel("Gradient error")
        if qq:
            _qq_inset(axes[0, j], e)
        if zoom:
            hi = np.quantile(e, zoom)
            axes[1, j].hist(e[e <= hi], bins=bins, density=True, color="tab:green")
            axes[1, j].set_xlabel(f"Gradient error (≤ {zoom:.0%} quantile)")
    for r in range(rows):
        axes[r, 0].set_ylabel("Density")
    return finish(fig, path, caption)


def _qq_inset(ax, e: np.ndarray) -> None:
    from scipy import stats

    inset = ax.inset_axes([0.55, 0.45, 0.42, 0.45])
    (osm, osr), (slope, intercept, _) = stats.probplot(e, dist="norm")
    inset.scatter(osm, osr, s=2, facecolors="none", edgecolors="b", lw=0.4)
    inset.plot(osm, slope * osm + intercept, "r", lw=1)
    inset.set_xticks([])
    inset.set_yticks([])
    inset.text(0.95, 0.05, "Gaussian QQ", transform=inset.transAxes, ha="right", fontsize=6)


def scatter_panels(panels: dict, path: str, caption: str) -> str:
    """panels: title -> l0l1 dict (x, y, t, slope, intercept, pearson_r)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
    for ax, (title, s) in zip(axes[0], panels.items(), strict=True):
        sc = ax.scatter(s["x"], s["y"], c=s["t"], s=4, cmap="viridis")
        xs = np.linspace(s["x"].min(), s["x"].max(), 10)
        ax.plot(xs, s["slope"] * xs + s["intercept"], "r--", lw=1)
        ax.set_title(f"{title}\nslope {s['slope']:.2f}, r {s['pearson_r']:.2f}", fontsize=9)
        ax.set_xlabel("ln ‖∇f(θ_t)‖")
        ax.set_ylabel("ln DS_t")
        fig.colorbar(sc, ax=ax, label="iteration")
    return finish(fig, path, caption)

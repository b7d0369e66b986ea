"""What every figure module shares: its result type, per-seed statistics and number formatting."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from linear_tf import phenomena
from linear_tf.figures import verdicts as V
from linear_tf.figures.runs import Runs


@dataclasses.dataclass
class Row:
    """One row of the reproduction table: a figure or table of the paper against ours."""

    item: str  # e.g. "D1 (Adam vs SGD loss), Settings 1-3"
    paper: str  # what the paper (or the authors' notebook) reports
    ours: str  # mean ± std with seeds and steps
    verdicts: list  # of verdicts.Verdict
    budget: str  # e.g. "6 seeds × 10,000 steps"
    pngs: list = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return V.weakest(self.verdicts)

    def to_json(self) -> dict:
        return {
            "item": self.item,
            "paper": self.paper,
            "ours": self.ours,
            "budget": self.budget,
            "label": self.label,
            "verdicts": [v.to_json() for v in self.verdicts],
            "pngs": [os.path.basename(p) for p in self.pngs],
        }


@dataclasses.dataclass
class FigureResult:
    name: str
    caption: str
    pngs: list
    tables: list  # markdown lines
    rows: list  # of Row
    numbers: dict


def final_loss(eval_loss_SX: np.ndarray, frac: float = 0.1) -> np.ndarray:
    """Per seed: mean fixed-batch loss over the last `frac` of the logged evaluations (at least 1);
    a run with any non-finite value there counts as diverged (+inf)."""
    v = np.asarray(eval_loss_SX, np.float64)
    k = max(1, int(round(frac * v.shape[1])))
    tail = v[:, -k:]
    return np.where(np.all(np.isfinite(tail), axis=1), tail.mean(1), np.inf)


def below_fraction(a_SX, b_SX, steps, start: int = 300) -> np.ndarray:
    """Per seed: fraction of logged steps t >= start with a < b (paired by seed)."""
    m = np.asarray(steps) >= start
    a, b = np.asarray(a_SX), np.asarray(b_SX)
    if not m.any():
        return np.full(a.shape[0], np.nan)
    return np.mean(a[:, m] < b[:, m], axis=1)


def curve(runs: Runs, values_SX=None, steps=None, band: float = 4.0, label=None) -> dict:
    """A plot-ready mean ± std/band curve over seeds (defaults: the fixed-batch loss)."""
    values = runs.eval_loss if values_SX is None else values_SX
    out = {
        "steps": runs.eval_steps if steps is None else steps,
        "lr": runs.lr,
        **phenomena.mean_band(values, band),
    }
    if label:
        out["label"] = label
    return out


def fmt(x, digits: int = 3) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def mean_std(values, digits: int = 3) -> str:
    v = np.asarray(values, np.float64)
    if np.all(np.isnan(v)):
        return "n/a"
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "diverged"
    if v.size == 1:
        return fmt(float(v[0]), digits)
    return f"{fmt(float(v.mean()), digits)} ± {fmt(float(v.std(ddof=1)), digits)}"


def ratio_cell(tab: dict, t: int) -> str:
    """'mean (std)' of a `phenomena.ratio_table` entry, or 'n/a' when the run is shorter than t."""
    return f"{tab[t]['mean']:.2f} ({tab[t]['std']:.2f})" if t in tab else "n/a"


def seeds_steps(n_seeds: int, steps: int) -> str:
    return f"{n_seeds} seed{'s' if n_seeds != 1 else ''} × {steps:,} steps"


def lr_note(runs: Runs) -> str:
    """'lr 0.02 (interior of 0.001…0.1, widened 1x)' for a tuned run; 'lr 0.02' otherwise."""
    if runs.grid is None:
        return f"lr {runs.lr:.3g}"
    lrs = [lr for lr, _ in runs.grid.table()]
    where = "interior" if runs.grid.interior() else "EDGE"
    widened = f", widened {runs.grid.widenings}x" if runs.grid.widenings else ""
    return f"lr {runs.lr:.3g} ({where} of {lrs[0]:.3g}…{lrs[-1]:.3g}, {len(lrs)} points{widened})"


def grid_json(runs: Runs) -> dict | None:
    if runs.grid is None:
        return None
    return {
        "table": runs.grid.table(),
        "best": runs.lr,
        "interior": runs.grid.interior(),
        "widenings": runs.grid.widenings,
    }


def png(ctx, name: str) -> str:
    return os.path.join(ctx.out, name)

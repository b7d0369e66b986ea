"""The reproduction of Ahn et al. (ICLR 2024), "Linear attention is (maybe) all you need": one module
per figure or table, each with `run(ctx) -> FigureResult` (PNGs, tables, per-claim verdicts).

Shared pieces: `protocol` (the full and quick budgets), `runs` (memoised sweeps, learning-rate
bracketing, gradient noise), `tuning` (the grid-widening rule), `verdicts` (the verdict rule),
`common` (result types, per-seed statistics) and `report` (summary files, the REPRODUCTION.md section).
"""

from __future__ import annotations

import importlib

# Order of `--figure=all`: the main sweeps first (shared by the first six), then the rest.
FIGURES = (
    "one_layer",
    "loss_curves",
    "condition_number",
    "smoothness",
    "l0l1",
    "sphere",
    "grad_noise",
    "depth",
    "softmax",
    "large",
    "nonlinear",
    "nonisotropic",
)


def figure_module(name: str):
    """The module that makes figure `name` (imported on demand)."""
    if name not in FIGURES:
        raise ValueError(f"Unknown figure {name!r}. Valid: {', '.join(FIGURES)}, all.")
    return importlib.import_module(f"linear_tf.figures.{name}")

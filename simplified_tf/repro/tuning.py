"""Learning-rate tuning on a log grid that widens until its best point is interior.

The grid lives on the ladder lr_k = 1e-3 * 2**k (k an integer): a uniform log grid with factor 2,
anchored so that the recipes' round values 1e-3, 2e-3, 5e-4, ... lie on it. The initial grid has
`num_points` rungs around the arm's default LR, one more above it than below (small models tend to
prefer larger LRs). After the runs of a grid are done, `widen` adds the next rung beyond an edge
whose point is the best one; tuning stops when the best point is interior, or after `max_widen`
widenings (the summary then says the optimum was not bracketed). A diverged run counts as +inf, so
a grid whose runs all diverge widens downwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

ANCHOR = 1e-3


def rung(lr: float) -> int:
    """The nearest ladder index of `lr`."""
    return round(math.log2(lr / ANCHOR))


def lr_of(k: int) -> float:
    return float(f"{ANCHOR * 2.0**k:.6g}")


def initial_grid(default_lr: float, num_points: int = 4) -> list[float]:
    if num_points < 3:
        raise ValueError(f"num_points={num_points}: a grid needs >= 3 points to have an interior.")
    centre = rung(default_lr)
    low = centre - (num_points - 1) // 2
    return [lr_of(k) for k in range(low, low + num_points)]


def best_index(losses: Sequence[float]) -> int:
    """Index of the smallest loss (NaN counts as +inf; ties go to the smaller LR)."""
    clean = [math.inf if math.isnan(x) else x for x in losses]
    return min(range(len(clean)), key=lambda i: (clean[i], i))


def is_interior(grid: Sequence[float], losses: Sequence[float]) -> bool:
    i = best_index(losses)
    return 0 < i < len(grid) - 1 and math.isfinite(losses[i])


def widen(grid: Sequence[float], losses: Sequence[float]) -> list[float] | None:
    """The grid with one more rung beyond the best edge, or None if the best point is interior."""
    if is_interior(grid, losses):
        return None
    ks = sorted(rung(lr) for lr in grid)
    i = best_index(losses)
    if not math.isfinite(losses[i]) or i == 0:  # everything diverged, or best at the low edge
        return [lr_of(ks[0] - 1)] + [lr_of(k) for k in ks]
    return [lr_of(k) for k in ks] + [lr_of(ks[-1] + 1)]


def tune(
    default_lr: float,
    loss_at: Callable[[float], float],
    *,
    num_points: int = 4,
    max_widen: int = 4,
) -> dict:
    """Runs `loss_at(lr)` over the initial grid, widening while the best point is on an edge.

    Returns {"grid", "losses", "best_lr", "best_loss", "interior", "widened"} with the grid sorted.
    """
    grid = initial_grid(default_lr, num_points)
    widened = 0
    while True:
        losses = [loss_at(lr) for lr in grid]
        new = widen(grid, losses)
        if new is None or widened >= max_widen:
            break
        grid, widened = new, widened + 1
    i = best_index(losses)
    return dict(
        grid=list(grid),
        losses=list(losses),
        best_lr=grid[i],
        best_loss=losses[i],
        interior=is_interior(grid, losses),
        widened=widened,
    )

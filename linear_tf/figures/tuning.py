"""Learning-rate grids that bracket the optimum.

A grid's best point must be interior: a worse (or diverged) learning rate evaluated on each side of
it. When the best point sits on an edge, the grid is widened past that edge with the grid's own log
spacing, and only the new points are run; this repeats up to a fixed number of times. The score of a
learning rate is the seed-mean minibatch training loss over the last steps of the run (the paper's
"best of the grid"); a diverged run scores +inf.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def log_step(lrs) -> float:
    """The grid's log spacing: the median ratio of neighbouring points (3.0 for a 1-point grid)."""
    x = np.sort(np.asarray(lrs, np.float64))
    return float(np.median(x[1:] / x[:-1])) if x.size > 1 else 3.0


def best_index(scores) -> int:
    """Index of the lowest score (first of ties); scores are ordered by learning rate."""
    s = np.asarray(scores, np.float64)
    s = np.where(np.isfinite(s), s, np.inf)
    return int(np.argmin(s))


def is_interior(scores) -> bool:
    """Whether the best score has an evaluated learning rate on both sides."""
    return 0 < best_index(scores) < len(scores) - 1


def widen(lrs, scores, n_new: int = 1) -> list[float]:
    """The learning rates to add so the optimum can be bracketed, or [] when it already is.

    `lrs` and `scores` are aligned (any order). If every run diverged the grid grows downwards.
    """
    order = np.argsort(np.asarray(lrs, np.float64))
    x = np.asarray(lrs, np.float64)[order]
    s = np.asarray(scores, np.float64)[order]
    if x.size == 0:
        raise ValueError("widen() needs at least one evaluated learning rate.")
    step = log_step(x)
    if not np.any(np.isfinite(s)):
        return [float(x[0] / step**k) for k in range(1, n_new + 1)]
    i = best_index(s)
    if 0 < i < x.size - 1:
        return []
    if i == 0:
        return [float(x[0] / step**k) for k in range(1, n_new + 1)]
    return [float(x[-1] * step**k) for k in range(1, n_new + 1)]


@dataclasses.dataclass
class GridRecord:
    """Every learning rate tried for one optimiser, with its score and where its runs live."""

    lrs: list = dataclasses.field(default_factory=list)
    scores: list = dataclasses.field(default_factory=list)
    where: list = dataclasses.field(default_factory=list)  # (sweep result, index) per lr
    widenings: int = 0

    def add(self, lrs, scores, result) -> None:
        for i, (lr, sc) in enumerate(zip(lrs, scores, strict=True)):
            self.lrs.append(float(lr))
            self.scores.append(float(sc))
            self.where.append((result, i))

    def sorted(self):
        order = np.argsort(self.lrs)
        return [self.lrs[i] for i in order], [self.scores[i] for i in order], order

    def best(self):
        """(lr, (sweep result, index)) of the best learning rate."""
        _, scores, order = self.sorted()
        j = order[best_index(scores)]
        return self.lrs[j], self.where[j]

    def interior(self) -> bool:
        return is_interior(self.sorted()[1])

    def table(self) -> list[tuple[float, float]]:
        lrs, scores, _ = self.sorted()
        return list(zip(lrs, scores, strict=True))

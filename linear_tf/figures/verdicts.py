"""Verdicts computed from numbers, never typed: one rule for every claim of the reproduction.

A claim is "statistic > threshold", evaluated on one value per seed (or per bootstrap resample for
single-run measurements such as the gradient-noise histograms, which the paper takes at one
initialisation). Ratios of positive quantities (losses, condition numbers) enter as logarithms, so a
ratio claim "A/B > 1" is "log A − log B > 0" and one outlying seed cannot dominate the mean.

With mean m and unbiased std s over the n finite values and k of them above the threshold:
  reproduced    m > thr, k/n >= 0.8 and m − s > thr (for n = 1: the one value is above thr);
  weak          m > thr, but fewer than 80% of the values or m − s does not clear thr;
  mixed         m <= thr, but more than half of the values are above thr;
  contradicted  m <= thr and at most half of the values are above thr.
A row of the reproduction table takes the weakest label among its claims.
"""

from __future__ import annotations

import dataclasses

import numpy as np

LABELS = ("reproduced", "weak", "mixed", "contradicted")
MIN_FRACTION = 0.8
RULE = (
    "per-seed statistic x, claim x > threshold; mean m, unbiased std s, fraction f of seeds with "
    "x > threshold: reproduced if m > thr, f >= 0.8 and m − s > thr; weak if m > thr otherwise; mixed "
    "if m <= thr but f > 0.5; contradicted if m <= thr and f <= 0.5"
)


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: str
    label: str
    mean: float
    std: float
    n: int
    fraction: float  # fraction of seeds (or resamples) for which the claim holds
    threshold: float
    statistic: str  # what x is, e.g. "log(SGDM/Adam final loss)"
    unit: str = "seeds"
    undefined: int = 0  # values left out as NaN (e.g. a seed on which both optimisers diverged)

    def summary(self) -> str:
        held = int(round(self.fraction * self.n))
        std = "n/a" if not np.isfinite(self.std) else f"{self.std:.3g}"
        left_out = f"; {self.undefined} left out, undefined" if self.undefined else ""
        return (
            f"{self.claim}: {self.label.upper()} ({self.statistic} = {self.mean:.3g} ± {std}, "
            f"> {self.threshold:g} for {held}/{self.n} {self.unit}{left_out})"
        )

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"summary": self.summary()}


def judge(
    values, claim: str, statistic: str, threshold: float = 0.0, unit: str = "seeds"
) -> Verdict:
    """The verdict on "x > threshold" from per-seed values x (NaN values are left out and counted;
    an infinite value, e.g. a diverged run's log loss, counts with its sign)."""
    x = np.asarray(values, np.float64).ravel()
    undefined = int(np.isnan(x).sum())
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Verdict(
            claim, "contradicted", np.nan, np.nan, 0, 0.0, threshold, statistic, unit, undefined
        )
    with np.errstate(invalid="ignore"):
        mean = float(np.mean(x))
        std = float(np.std(x, ddof=1)) if n > 1 else float("nan")
    frac = float(np.mean(x > threshold))
    if mean > threshold:
        clear = n == 1 or (np.isfinite(std) and mean - std > threshold)
        label = "reproduced" if frac >= MIN_FRACTION and clear else "weak"
    else:
        label = "mixed" if frac > 0.5 else "contradicted"
    return Verdict(claim, label, mean, std, n, frac, threshold, statistic, unit, undefined)


def log_ratio(numerator, denominator) -> np.ndarray:
    """log(a/b) elementwise; a non-finite numerator (diverged run) gives +inf, a non-finite
    denominator −inf, so divergence counts against the optimiser that diverged."""
    a = np.asarray(numerator, np.float64)
    b = np.asarray(denominator, np.float64)
    a = np.where(np.isfinite(a), a, np.inf)
    b = np.where(np.isfinite(b), b, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(a) - np.log(b)
    out = np.where(np.isinf(a) & np.isinf(b), np.nan, out)
    return out


def weakest(verdicts) -> str:
    """The row label: the weakest of its claims' labels."""
    labels = [v.label for v in verdicts]
    return max(labels, key=LABELS.index) if labels else "contradicted"


def bootstrap(stat_fn, samples: list, resamples: int = 200, seed: int = 0) -> np.ndarray:
    """stat_fn(*resampled) for `resamples` bootstrap draws of each sample array (independently)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        draws = [s[rng.integers(0, len(s), len(s))] for s in samples]
        out.append(stat_fn(*draws))
    return np.asarray(out, np.float64)

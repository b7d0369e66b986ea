"""Per-seed numbers to mean ± std, paired differences and verdicts.

The verdict rule: a paired difference d_s = x_s - baseline_s over n >= 2 seeds (the same seed gives
both runs the same initialisation key and data order) lies outside seed noise when the two-sided
95% t-interval, mean(d) ± t_{0.975, n-1} * std(d) / sqrt(n), excludes 0. Then the arm is "worse"
(d > 0 for a loss) or "better"; otherwise the two are "level" within seed noise. With one seed there
is no noise estimate and the rule answers "unknown".

A claim compares the observed relation with the paper's:
  expected "level":     level -> reproduced; worse or better -> contradicted
  expected "not_worse": level or better -> reproduced; worse -> contradicted
  expected "not_better": level or worse -> reproduced; better -> contradicted
  expected "worse" / "better": that relation -> reproduced; level -> inconclusive (within noise);
                               the opposite -> contradicted
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _scipy_stats

RELATIONS = ("worse", "better", "level", "unknown")  # worse = higher (a loss, a step time)
EXPECTATIONS = ("level", "not_worse", "not_better", "worse", "better")
VERDICTS = ("reproduced", "contradicted", "inconclusive")


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    xs = [float(x) for x in xs]
    if not xs:
        return math.nan, math.nan
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var)


def paired(xs: Sequence[float], baseline: Sequence[float]) -> dict:
    """Paired difference x - baseline: mean, std, the 95% half-width and the relation."""
    if len(xs) != len(baseline):
        raise ValueError(f"paired needs equal lengths, got {len(xs)} and {len(baseline)}")
    diffs = [float(a) - float(b) for a, b in zip(xs, baseline, strict=True)]
    n = len(diffs)
    m, s = mean_std(diffs)
    if not all(math.isfinite(d) for d in diffs):
        # A diverged run on one side: the sign of the infinite differences decides.
        bad = [d for d in diffs if not math.isfinite(d)]
        relation = (
            "worse"
            if all(d > 0 for d in bad)
            else "better"
            if all(d < 0 for d in bad)
            else "unknown"
        )
        return dict(diffs=diffs, mean=m, std=s, halfwidth=math.inf, n=n, relation=relation)
    if n < 2:
        return dict(diffs=diffs, mean=m, std=s, halfwidth=math.inf, n=n, relation="unknown")
    half = float(_scipy_stats.t.ppf(0.975, n - 1)) * s / math.sqrt(n)
    if m - half > 0:
        relation = "worse"
    elif m + half < 0:
        relation = "better"
    else:
        relation = "level"
    return dict(diffs=diffs, mean=m, std=s, halfwidth=half, n=n, relation=relation)


def verdict(expected: str, relation: str) -> str:
    """The claim's verdict given the paper's expected relation and the observed one."""
    if expected not in EXPECTATIONS:
        raise ValueError(f"expected={expected!r}; valid: {', '.join(EXPECTATIONS)}")
    if relation not in RELATIONS:
        raise ValueError(f"relation={relation!r}; valid: {', '.join(RELATIONS)}")
    if relation == "unknown":
        return "inconclusive"
    if expected == "level":
        return "reproduced" if relation == "level" else "contradicted"
    if expected == "not_worse":
        return "contradicted" if relation == "worse" else "reproduced"
    if expected == "not_better":
        return "contradicted" if relation == "better" else "reproduced"
    if relation == expected:
        return "reproduced"
    return "inconclusive" if relation == "level" else "contradicted"


def fmt_pm(mean: float, std: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "diverged" if mean > 0 else f"{mean}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_diff(p: dict, digits: int = 3) -> str:
    """'+0.123 ± 0.045 (worse)': mean paired difference ± its 95% half-width, and the relation."""
    if not math.isfinite(p["mean"]):
        return f"diverged ({p['relation']})"
    half = "n/a" if not math.isfinite(p["halfwidth"]) else f"{p['halfwidth']:.{digits}f}"
    return f"{p['mean']:+.{digits}f} ± {half} ({p['relation']})"

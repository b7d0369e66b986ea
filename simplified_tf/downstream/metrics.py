"""GLUE's official metrics, a task's score, and the suite average.

Metrics take predictions and labels (numpy) and return a fraction (accuracy, F1) or a correlation
(MCC, Pearson, Spearman); tables show them x 100.

Degenerate cases follow scikit-learn / SciPy where those define a value and 0 where they do not:
- MCC of a constant predictor (or constant labels) is 0: the denominator vanishes and there is no
  association to measure (scikit-learn returns 0 too).
- F1 with no predicted and no true positives is 0 (scikit-learn's zero_division default).
- Pearson / Spearman of a constant prediction is 0 (SciPy returns NaN with a warning). A NaN in a
  table therefore always means non-finite model outputs, never a degenerate but finite predictor.

Task score: the mean of the task's official metrics (MRPC and QQP: (F1 + accuracy) / 2; STS-B:
(Pearson + Spearman) / 2), the GLUE leaderboard convention. The GLUE average is the mean of the 9
scores MNLI-m, MNLI-mm, SST-2, STS-B, RTE, QNLI, QQP, MRPC and CoLA (WNLI is left out, as in
Cramming and He & Hofmann (2024), Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman")


def accuracy(pred, label) -> float:
    pred, label = np.asarray(pred), np.asarray(label)
    return float(np.mean(pred == label)) if len(label) else math.nan


def f1(pred, label, positive: int = 1) -> float:
    """Binary F1 of class `positive` (GLUE: MRPC "equivalent", QQP "duplicate")."""
    p, t = np.asarray(pred) == positive, np.asarray(label) == positive
    tp = np.sum(p & t)
    denom = 2 * tp + np.sum(p & ~t) + np.sum(~p & t)
    return float(2 * tp / denom) if denom else 0.0


def mcc(pred, label) -> float:
    """Matthews correlation coefficient (multi-class form; for two classes the usual
    (tp·tn − fp·fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)))."""
    pred, label = np.asarray(pred), np.asarray(label)
    classes = np.union1d(pred, label)
    p_k = np.array([np.sum(pred == k) for k in classes], np.float64)  # predicted per class
    t_k = np.array([np.sum(label == k) for k in classes], np.float64)  # true per class
    s, c = float(len(label)), float(np.sum(pred == label))
    denom = math.sqrt((s * s - p_k @ p_k) * (s * s - t_k @ t_k))
    return float((c * s - p_k @ t_k) / denom) if denom else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return float(xc @ yc / denom) if denom else 0.0


def spearman(x, y) -> float:
    """Pearson correlation of the ranks (ties get their average rank)."""
    return pearson(rankdata(x), rankdata(y))


_FNS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman}


def compute(names: Sequence[str], pred, label) -> dict[str, float]:
    """{metric: value} for the metric `names`; all NaN when any prediction is non-finite."""
    pred = np.asarray(pred)
    if pred.dtype.kind == "f" and not np.all(np.isfinite(pred)):
        return dict.fromkeys(names, math.nan)
    return {n: _FNS[n](pred, label) for n in names}


def score(metric_values: Mapping[str, float]) -> float:
    """A task's score x 100: the mean of its official metrics."""
    values = list(metric_values.values())
    return 100.0 * float(np.mean(values)) if values else math.nan


def average(scores: Sequence[float]) -> float:
    """The suite average: the plain mean of the scores (NaN if any score is NaN)."""
    return float(np.mean(scores)) if len(scores) else math.nan

"""Tables of fine-tuning results: per task and on average, mean ± std over seeds.

Input: the `results.json` dicts of `finetune.run`, grouped by row (a block, a model). For every
score column (one per task and eval split, e.g. "MNLI-m") a row gets the mean and the sample
standard deviation (ddof=1) over its seeds. The average is computed per seed (the mean of that
seed's scores over the average's columns) and then summarised the same way, as in He & Hofmann
(2024), Table 1. A NaN run (non-finite fine-tuning) is shown as "NaN (k/n)", k of n seeds non-finite,
and makes its seed's average NaN; the JSON also keeps the mean over the finite seeds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np


def _stats(values: Sequence[float]) -> dict:
    arr = np.asarray(values, np.float64)
    finite = arr[np.isfinite(arr)]
    return dict(
        values=[float(v) for v in arr],
        n=len(arr),
        nan=int(len(arr) - len(finite)),
        mean=float(arr.mean()) if len(arr) else math.nan,
        std=float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        finite_mean=float(finite.mean()) if len(finite) else math.nan,
    )


def columns_of(runs: Iterable[dict]) -> list[str]:
    """Score columns in order of first appearance."""
    return list(dict.fromkeys(name for r in runs for name in r["scores"]))


def summarize_row(runs: Sequence[dict], average_of: Sequence[str] | None = None) -> dict:
    """{"columns": {name: stats}, "average": stats, "average_of": names} of one row's runs.

    `average_of`: the columns of the average (default: every column of a task with
    `in_average`); those missing from the runs are left out and listed in "average_missing".
    """
    by_seed: dict[int, dict[str, float]] = defaultdict(dict)
    for r in runs:
        by_seed[int(r["seed"])].update(r["scores"])
    names = columns_of(runs)
    if average_of is None:
        average_of = [n for r in runs if r.get("in_average", True) for n in r["scores"]]
        average_of = list(dict.fromkeys(average_of))
    present = [n for n in average_of if n in names]
    seeds = sorted(by_seed)
    columns = {
        n: _stats([by_seed[s][n] for s in seeds if n in by_seed[s]]) for n in names
    }  # fmt: skip
    per_seed = [
        float(np.mean([by_seed[s][n] for n in present]))
        for s in seeds
        if present and all(n in by_seed[s] for n in present)
    ]
    return dict(
        columns=columns,
        average=_stats(per_seed),
        average_of=present,
        average_missing=[n for n in average_of if n not in names],
        seeds=seeds,
    )


def cell(stats: dict, digits: int = 1) -> str:
    if stats["n"] == 0:
        return "—"
    if stats["nan"]:
        return f"NaN ({stats['nan']}/{stats['n']})"
    if stats["n"] == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def markdown(rows: dict[str, dict], columns: Sequence[str], label: str = "block") -> str:
    """A markdown table: one line per row, the average first, then every column."""
    head = f"| {label} | average | " + " | ".join(columns) + " |"
    lines = [head, "|---" * (len(columns) + 2) + "|"]
    for name, row in rows.items():
        cells = [cell(row["columns"][c]) if c in row["columns"] else "—" for c in columns]
        lines.append(f"| {name} | {cell(row['average'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""The shape every downstream task is brought into: labelled text (pairs) plus a task spec.

A GLUE task read from TSV, one from the hub, and a task of the offline code suite all become a
`TaskData`: train `Examples`, one `Examples` per evaluation split, and a `TaskSpec` that says how
many labels there are (1 = regression), which metrics are official, and which score enters the
suite average.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Examples:
    """Texts (`text_b` is None for single-sentence tasks) and labels (int class ids, or float
    targets for regression), in a fixed order. `sources` optionally names where each example's
    text(s) came from (the offline suite: the source file of each snippet)."""

    text_a: tuple[str, ...]
    text_b: tuple[str, ...] | None
    labels: np.ndarray
    sources: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self):
        n = len(self.text_a)
        if self.text_b is not None and len(self.text_b) != n or len(self.labels) != n:
            raise ValueError("text_a, text_b and labels must have the same length.")

    def __len__(self) -> int:
        return len(self.text_a)

    def take(self, n: int) -> Examples:
        """The first `n` examples (all if n <= 0)."""
        if n <= 0 or n >= len(self):
            return self
        b = None if self.text_b is None else self.text_b[:n]
        src = None if self.sources is None else self.sources[:n]
        return Examples(self.text_a[:n], b, self.labels[:n], src)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task is scored on.

    Attributes:
      name: config name ("cola", "mnli", "topic").
      display: table name ("CoLA", "MNLI").
      num_labels: classes, or 1 for regression (mean-squared-error loss, scalar output).
      metrics: official metrics, names of `simplified_tf.downstream.metrics.METRICS`. The task's
        score is their mean (e.g. MRPC: (F1 + accuracy) / 2), the GLUE leaderboard convention.
      eval_splits: evaluation splits; each gives one score (MNLI: matched and mismatched).
      label_names: names of the class ids (empty for regression).
      in_average: whether the task's scores enter the suite average (GLUE: WNLI does not).
    """

    name: str
    display: str
    num_labels: int
    metrics: tuple[str, ...]
    eval_splits: tuple[str, ...] = ("validation",)
    label_names: tuple[str, ...] = ()
    in_average: bool = True

    @property
    def regression(self) -> bool:
        return self.num_labels == 1

    def score_name(self, split: str) -> str:
        """Column name of the score of `split`: "MNLI-m" / "MNLI-mm", or just the display name."""
        if len(self.eval_splits) == 1:
            return self.display
        return f"{self.display}-{SPLIT_SUFFIX.get(split, split)}"

    @property
    def score_names(self) -> tuple[str, ...]:
        return tuple(self.score_name(s) for s in self.eval_splits)


SPLIT_SUFFIX = {"matched": "m", "mismatched": "mm"}


@dataclasses.dataclass(frozen=True)
class TaskData:
    spec: TaskSpec
    train: Examples
    evals: dict[str, Examples]  # split name -> examples, in spec.eval_splits order

"""Console output of a run (process 0 only): the progress bar (step, loss, throughput, ETA) and
`announce` lines."""

from __future__ import annotations

import sys

import jax
from absl import logging


def announce(message: str) -> None:
    """A line for the user on stderr (process 0) and in the log, whatever the log verbosity."""
    logging.info(message)
    if jax.process_index() == 0:
        print(message, file=sys.stderr, flush=True)


class Progress:
    def __init__(self, total: int, initial: int, enabled: bool = True):
        self._bar = None
        if enabled and jax.process_index() == 0:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=1.0,
            )
        self._postfix: dict[str, str] = {}
        self._last = initial

    def update(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._last)
        self._last = step

    def show(self, metrics: dict) -> None:
        if self._bar is None:
            return
        short = {
            "train/loss": "loss",
            "eval/loss": "eval",
            "train/tokens_per_sec": "tok/s",
            "train/examples_per_sec": "ex/s",
        }
        for key, name in short.items():
            if key in metrics:
                v = metrics[key]
                self._postfix[name] = f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
        if "tok/s" in self._postfix:
            self._postfix.pop("ex/s", None)
        self._bar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

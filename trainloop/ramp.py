"""A linear batch-size ramp in microbatches, as in Crammed BERT (Geiping & Goldstein 2023).

Cramming grows the batch linearly with training progress, in whole microbatches, from one
microbatch to the full batch (8192 sequences = 128 microbatches of 64), reaching it at 60% of the
budget (their `TorchEngine.schedule_batch_size`, JonasGeiping/cramming); the learning-rate schedule
advances once per microbatch, so it too is a function of the data consumed, not of optimizer steps.
Progress there is wall-clock time, which for fixed-size microbatches is proportional to the
microbatches consumed; here it is the microbatch count itself, so the ramp is deterministic.

With A microbatches in a full batch and a ramp over R microbatches, the optimizer step that starts
after m consumed microbatches accumulates

    a(m) = min(A, floor(m * A / R) + 1)

microbatches. Step k's m and a are a pure function of k (`BatchRamp.table`), so a resumed run takes
the same batches. (As written, Cramming's fractional-ramp formula multiplies by the ramp fraction
where dividing reaches the full batch at that fraction; this follows the paper's description,
full batch at 60%.)

How the step stays one compiled program: the jitted step always takes the full batch shape
(A microbatches) and skips microbatches i >= a(step) with a `lax.cond` inside the accumulation scan
(`trainloop.step.accumulate`), so they cost no device compute and carry no weight; a(step) comes
from a small table indexed by the traced step. The alternatives were worse: one shape per
accumulation count compiles up to A programs (128 for the paper's BERT), and rounding to a few
shape buckets changes the ramp itself. The price is host memory and transfer for the unused rows
of early steps, which the data pipeline fills with padding rather than data.

The learning-rate schedule is evaluated at the full-batch equivalent of the data consumed,
`consumed(k) / A` optimizer steps (`schedule_position`), so that its warmup and decay land where
the budget says, however many optimizer steps the ramp adds.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import ml_collections
import numpy as np

from trainloop.config_util import ConfigError, check_min


@dataclasses.dataclass(frozen=True)
class BatchRamp:
    """A linear ramp from 1 to `max_microbatches` microbatches over `ramp_microbatches` consumed."""

    max_microbatches: int
    ramp_microbatches: int

    def __post_init__(self):
        if self.max_microbatches < 2:
            raise ConfigError(
                f"A batch ramp needs grad_accum_steps >= 2 (got {self.max_microbatches}): it ramps "
                "the number of accumulated microbatches."
            )
        check_min("batch_ramp_microbatches", self.ramp_microbatches, 1)

    def microbatches_after(self, consumed: int) -> int:
        """a(m): microbatches of the step that starts after `consumed` microbatches."""
        a, r = self.max_microbatches, self.ramp_microbatches
        return min(a, consumed * a // r + 1)

    @functools.cached_property
    def _ramp_phase(self) -> tuple[np.ndarray, np.ndarray]:
        """(consumed before step k, microbatches of step k) for the steps before the full batch."""
        consumed, micro, m = [0], [], 0
        while (a := self.microbatches_after(m)) < self.max_microbatches:
            micro.append(a)
            m += a
            consumed.append(m)
        return np.asarray(consumed, np.int64), np.asarray(micro, np.int64)

    def at(self, steps) -> tuple[np.ndarray, np.ndarray]:
        """(microbatches consumed before step k, microbatches of step k) for steps k (any shape)."""
        consumed, micro = self._ramp_phase
        k = np.asarray(steps, np.int64)
        n, full = len(micro), self.max_microbatches
        inside = np.minimum(k, n)
        before = np.where(k <= n, consumed[inside], consumed[n] + (k - n) * full)
        return before, np.append(micro, full)[inside]

    def table(self, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(consumed before step k for k in [0, num_steps], microbatches of step k < num_steps)."""
        consumed, _ = self.at(np.arange(num_steps + 1))
        return consumed, self.at(np.arange(num_steps))[1]

    def steps_for(self, total_microbatches: int) -> int:
        """Optimizer steps that consume at least `total_microbatches` microbatches."""
        consumed, _ = self._ramp_phase
        n = len(consumed) - 1
        if total_microbatches <= consumed[n]:
            return int(np.searchsorted(consumed, total_microbatches))
        return n + -(-(total_microbatches - int(consumed[n])) // self.max_microbatches)


def from_config(config: ml_collections.ConfigDict) -> BatchRamp | None:
    """The ramp of `config.batch_ramp_microbatches` (0 or absent: no ramp)."""
    r = int(config.get("batch_ramp_microbatches", 0) or 0)
    if r == 0:
        return None
    return BatchRamp(int(config.grad_accum_steps), r)


class StepTable:
    """`BatchRamp.table` as device constants for the jitted step and the schedule."""

    def __init__(self, ramp: BatchRamp, num_steps: int):
        consumed, micro = ramp.table(num_steps)
        self.ramp, self.num_steps = ramp, num_steps
        self.consumed, self.micro = consumed, micro
        self._micro = jnp.asarray(np.append(micro, ramp.max_microbatches), jnp.int32)
        self._position = jnp.asarray(consumed / ramp.max_microbatches, jnp.float32)

    @property
    def schedule_steps(self) -> int:
        """The run's length in full-batch equivalents (what the LR schedule spans)."""
        return max(1, int(round(self.consumed[-1] / self.ramp.max_microbatches)))

    def active(self, step):
        """Microbatches of (traced) `step`."""
        return self._micro[jnp.minimum(step, self.num_steps)]

    def schedule_position(self, count):
        """Full-batch-equivalent steps consumed before optimizer step `count` (traced)."""
        return self._position[jnp.minimum(count, self.num_steps)]

"""The contract between a model package and the training loop.

`trainloop` knows no model. A task hands it pure functions over pytrees of arrays (nested dicts whose
leaves are `jax.Array`s); the loop owns sharding, the jitted step, the optimiser, checkpoints and
metrics. Parameter paths ("block/attn/w_qk", joined with "/") are what optimiser rules (weight-decay
mask, frozen parameters) and FSDP sharding match against.

Exactly one of `host_batch` and `device_batch` is given:
- `host_batch(step, process_index, process_count)` returns this process's share of the global batch
  for `step` as numpy arrays (leading axis = examples). It must be a pure function of its arguments so
  that resuming needs no iterator state. Under a batch ramp (`trainloop.ramp`) the shape stays the
  full batch; rows of the microbatches a step does not use may hold padding.
- `device_batch(rng)` builds the whole global batch on device inside the jitted step (synthetic data,
  e.g. fresh regression prompts); the loop passes `fold_in(data_key, step)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax

PyTree = Any
Params = PyTree  # nested dict of arrays
Batch = PyTree  # nested dict of arrays, leading axis = examples
Metrics = Mapping[str, jax.Array]  # scalar arrays


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything the loop needs from a model package.

    Attributes:
      init: rng -> params. Traced under `jax.jit` with sharded outputs, so it must be jittable.
      loss: (params, batch, rng) -> (scalar loss, metrics). Metrics are scalar arrays logged under
        `train/<name>` (and `eval/<name>` in evaluation). A metric named `num_tokens` drives
        `train/tokens_per_sec`; a metric named `weight` weights the eval average across batches
        (e.g. the number of predicted tokens); otherwise eval batches are averaged uniformly.
      host_batch: (step, process_index, process_count) -> process-local numpy batch, or None.
      device_batch: rng -> global batch built on device, or None.
      global_batch_size: examples per optimiser step across all processes.
      eval_batches: () -> iterable of global batches (numpy or jax arrays) for evaluation, or None.
        Called at every evaluation, so it must return the same batches each time.
      eval_loss: (params, batch) -> (loss, metrics) used in evaluation; defaults to `loss` with a
        fixed rng.
      eval_summary: aggregated eval metrics (names without the `eval/` prefix, e.g. "loss") ->
        extra metrics derived from the whole evaluation, e.g. perplexity = exp(loss), which cannot be
        averaged over batches.
      name: short human-readable task name for logs.
    """

    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, Batch, jax.Array], tuple[jax.Array, Metrics]]
    global_batch_size: int
    host_batch: Callable[[int, int, int], Batch] | None = None
    device_batch: Callable[[jax.Array], Batch] | None = None
    eval_batches: Callable[[], Iterable[Batch]] | None = None
    eval_loss: Callable[[Params, Batch], tuple[jax.Array, Metrics]] | None = None
    eval_summary: Callable[[dict[str, float]], dict[str, float]] | None = None
    name: str = "task"

    def __post_init__(self):
        if (self.host_batch is None) == (self.device_batch is None):
            raise ValueError("A Task needs exactly one of `host_batch` and `device_batch`.")

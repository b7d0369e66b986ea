"""Per-device memory of the compiled train and eval steps, from abstract inputs (nothing allocated).

`compiled_memory` lowers and compiles exactly the programs `train_and_evaluate` runs (the same
`make_train_step` with donated, sharded state, and the same `make_eval_step`) for a mesh of the
given devices, and reads XLA's buffer assignment (`compiled.memory_analysis()`). On a CPU host the
devices can be simulated (`XLA_FLAGS=--xla_force_host_platform_device_count=8`), so the numbers for
an 8-chip slice are known before renting one. They are XLA's static buffer sizes for the CPU
backend: a TPU compiler lays out and fuses differently, so treat them as close estimates rather
than exact TPU figures, and keep a margin.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections

from trainloop import mesh as mesh_lib
from trainloop.step import build_programs, eval_accum_steps, make_eval_step
from trainloop.task import Task

GiB = 2**30

# HBM per chip and TensorCores per chip (a slice is named by its TensorCores on v4 and v5p, by its
# chips on v5e), from the Cloud TPU system-architecture pages: v4 "32 GiB", v5e "16 GB",
# v5p "95 GB". The decimal GB figures are taken as decimal, which leaves a small margin.
TPU_CHIPS = {
    "v4": (32 * GiB, 2, "v4-{cores}"),
    "v5e": (16 * 10**9, 1, "v5litepod-{chips}"),
    "v5p": (95 * 10**9, 2, "v5p-{cores}"),
}


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """XLA's per-device buffer sizes of one compiled program, in bytes."""

    arguments: int
    outputs: int
    aliased: int  # outputs written into donated arguments
    temporaries: int

    @property
    def peak(self) -> int:
        """Live bytes at the program's high-water mark: inputs, new outputs and temporaries."""
        return self.arguments + self.outputs - self.aliased + self.temporaries

    @classmethod
    def of(cls, compiled) -> StepMemory:
        m = compiled.memory_analysis()
        return cls(
            int(m.argument_size_in_bytes),
            int(m.output_size_in_bytes),
            int(m.alias_size_in_bytes),
            int(m.temp_size_in_bytes),
        )


def compiled_memory(
    config: ml_collections.ConfigDict, task: Task, train_batch, eval_batch, devices
) -> dict[str, StepMemory]:
    """{"train": ..., "eval": ...}: per-device memory of the steps for `config` on `devices`.

    `train_batch` / `eval_batch` are pytrees of `jax.ShapeDtypeStruct` (global shapes).
    """
    programs = build_programs(config, task, devices)
    batch_sharding = mesh_lib.batch_sharding(programs.mesh)
    sharded = lambda batch: jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=batch_sharding), batch
    )
    eval_fn = make_eval_step(task, programs.eval_key, eval_accum_steps(config))
    evaluate = jax.jit(eval_fn, in_shardings=(programs.shardings["params"], batch_sharding))
    train = programs.train_step.lower(programs.abstract_state, sharded(train_batch))
    return {
        "train": StepMemory.of(train.compile()),
        "eval": StepMemory.of(
            evaluate.lower(programs.abstract_state["params"], eval_batch).compile()
        ),
    }


def fitting_slices(peak_bytes: int, num_devices: int) -> dict[str, tuple[str, bool]]:
    """{generation: (slice name with `num_devices` chips, whether `peak_bytes` fits one chip)}."""
    out = {}
    for gen, (hbm, cores, pattern) in TPU_CHIPS.items():
        name = pattern.format(cores=cores * num_devices, chips=num_devices)
        out[gen] = (name, peak_bytes <= hbm)
    return out

"""Budgets of the two protocols: `QUICK` (every figure in under 40 minutes on 2 CPU cores) and
`FULL` (size=small, 2000 steps; hours on a CPU, minutes on an accelerator)."""

from __future__ import annotations

import dataclasses

ALL_BLOCKS = ("pre_ln", "parallel", "v_skipinit", "sas", "sas_p", "sas_p_nonorm")


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    size: str  # model size preset of every figure (decoder and BERT)
    steps: int  # parity / bert / gains budget per run
    seeds: tuple[int, ...]
    eval_every: int
    grid_points: int  # initial LR grid per arm (widened while its best point is on an edge)
    depth_layers: tuple[int, int]  # L and 4L at the same width (paper Fig. 6: 18 and 72)
    depth_steps: int
    depth_blocks: tuple[str, ...]
    reparam_steps: int
    reparam_betas: tuple[float, ...]  # fixed beta_V = beta_P of paper Fig. 3
    longer_factor: int  # paper Fig. 8: 3x the tokens
    bert_eval_batches: int  # MLM evaluates only the masked quarter of the tokens: more batches
    timing_rounds: int
    timing_steps: int
    data: tuple[tuple[str, object], ...] = ()  # config.data overrides for every run (e.g. a corpus)

    def with_seeds(self, n: int) -> Protocol:
        return dataclasses.replace(self, seeds=tuple(range(n)))


QUICK = Protocol(
    name="quick",
    size="quick",
    steps=300,
    seeds=(0, 1, 2),
    eval_every=25,
    grid_points=4,
    depth_layers=(2, 8),
    depth_steps=200,
    depth_blocks=("pre_ln", "v_skipinit", "sas", "sas_p"),
    reparam_steps=200,
    reparam_betas=(0.0, 0.2, 1.0),
    longer_factor=3,
    bert_eval_batches=16,
    timing_rounds=5,
    timing_steps=5,
)

FULL = Protocol(
    name="full",
    size="small",
    steps=2000,
    seeds=(0, 1, 2),
    eval_every=100,
    grid_points=4,
    depth_layers=(6, 24),
    depth_steps=2000,
    depth_blocks=("pre_ln", "v_skipinit", "sas", "sas_p", "sas_p_nonorm"),
    reparam_steps=2000,
    reparam_betas=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    longer_factor=3,
    bert_eval_batches=16,
    timing_rounds=7,
    timing_steps=5,
)

"""Is one compiled program over R runs (jax.vmap over stacked train states) faster per run than R
separate runs on this machine? Measured on the loop's own train step, for the speed figure.

A sweep would only be vectorised where this ratio is clearly above 1; the figures run their seeds
and learning rates one after another, and this measurement says why (or when that should change).
"""

from __future__ import annotations

import statistics
import time

from simplified_tf.repro.runs import RunSpec


def per_run_step_seconds(spec: RunSpec, num_runs: int, *, steps: int = 5, warmup: int = 2) -> float:
    """Median seconds per train step per run, with `num_runs` runs vmapped into one program."""
    import jax

    from simplified_tf.tasks import make_task_and_data
    from trainloop.step import build_programs

    config = spec.config()
    task = make_task_and_data(config, spec.arm.kind)[0]
    programs = build_programs(config, task)
    init_state, step_fn = programs.init_state, programs.step_fn
    batch = task.host_batch(0, 0, 1)
    init_keys = jax.random.split(programs.init_key, num_runs)
    if num_runs == 1:
        state = jax.jit(init_state)(init_keys[0])
        fn = jax.jit(step_fn, donate_argnums=(0,))
    else:
        state = jax.jit(jax.vmap(init_state))(init_keys)
        batch = jax.tree.map(lambda x: jax.numpy.stack([x] * num_runs), batch)
        fn = jax.jit(jax.vmap(step_fn), donate_argnums=(0,))
    for _ in range(warmup):
        state, metrics = fn(state, batch)
    jax.block_until_ready((state, metrics))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = fn(state, batch)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    jax.clear_caches()
    return statistics.median(times) / num_runs


def measure(spec: RunSpec, num_runs: int, *, rounds: int = 3, steps: int = 5) -> dict:
    """Per-run step time, sequential vs vmapped, alternating per round; the ratio > 1 means the
    vmapped program is faster per run."""
    seq, vec = [], []
    for r in range(rounds):
        pair = [(seq, 1), (vec, num_runs)]
        for out, n in pair if r % 2 == 0 else pair[::-1]:
            out.append(per_run_step_seconds(spec, n, steps=steps))
    ratios = [s / v for s, v in zip(seq, vec, strict=True)]
    return dict(
        num_runs=num_runs, sequential_s=seq, vmapped_per_run_s=vec, ratio=ratios,
        ratio_median=statistics.median(ratios),
    )  # fmt: skip

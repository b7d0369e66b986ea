"""Per-step time of several arms, measured interleaved in one process.

Wall-clock curves need each arm's step time on the same machine under the same load. Training runs
happen at different times (and a sweep may be resumed on another day), so their own step rates are
not comparable. Instead every arm's jitted train step (the loop's own, same batch) is timed here,
round by round in alternating order, and the median of individually synchronised steps is used.
Results are cached in a JSON file next to the figure, keyed by the arms' configs.
"""

from __future__ import annotations

import json
import os
import statistics

from simplified_tf.repro.runs import RunSpec, write_atomic


def measure(specs: dict[str, RunSpec], *, rounds: int = 3, steps: int = 5, warmup: int = 2) -> dict:
    """{name: {"step_s": median seconds, "samples": [...], "tokens_per_step": n}} plus the load."""
    import jax

    from simplified_tf import compare
    from simplified_tf.tasks import make_task_and_data

    programs, tokens = {}, {}
    for name, spec in specs.items():
        config = spec.config()
        task = make_task_and_data(config, spec.arm.kind)[0]
        programs[name] = compare.timing_program(config, task)
        tokens[name] = int(config.batch_size) * int(config.data.seq_len)
    load_before = os.getloadavg()
    times = compare.time_interleaved(programs, rounds=rounds, steps=steps, warmup=warmup)
    load_after = os.getloadavg()
    del programs
    jax.clear_caches()
    arms = {
        name: dict(step_s=statistics.median(ts), samples=list(ts), tokens_per_step=tokens[name])
        for name, ts in times.items()
    }
    return dict(
        arms=arms,
        rounds=rounds,
        steps_per_round=steps,
        warmup=warmup,
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in load_after],
    )


def cached(path: str, specs: dict[str, RunSpec], *, refresh: bool = False, **kwargs) -> dict:
    """`measure`, reusing `path` when it holds a measurement of exactly these arms' configs."""
    key = {name: spec.run_id for name, spec in sorted(specs.items())}
    if not refresh and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("key") == key:
            return old
    result = dict(measure(specs, **kwargs), key=key)
    write_atomic(path, json.dumps(result, indent=1, sort_keys=True))
    return result

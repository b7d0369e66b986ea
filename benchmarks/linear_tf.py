"""Wall time of the linear-Transformer training step and of the full Setting-1 protocol.

  python benchmarks/linear_tf.py            # full protocol: 2 optimisers x 6 seeds x 10,000 steps, B=1000
  python benchmarks/linear_tf.py --quick    # same program, 500 steps (10k-step time extrapolated from the
                                            # steady-state rate after compilation)

1. One jitted training step (L=3, d=5, n=20, B=1000, Adam, fresh prompts): median of 30 after warm-up.
2. The Setting-1 protocol through the sweep runner (both optimisers and all seeds in one program).
Writes benchmarks/linear_tf.json and prints markdown table rows. The machine load average is recorded
because the 2-core machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from linear_tf import data, model, sweep  # noqa: E402
from linear_tf.hparams import optimizer_config  # noqa: E402
from trainloop.optim import make_optimizer  # noqa: E402


def bench_step(repeats: int = 30) -> dict:
    mspec, dspec = model.ModelSpec(), data.make_data_spec("1")
    params = model.init_params(mspec, jax.random.key(0))
    tx, _ = make_optimizer(optimizer_config("adam", 0.02, 1.0), 10)
    state = tx.init(params)

    @jax.jit
    def step(params, state, key):
        batch = data.sample(dspec, key, 1000)
        loss, g = jax.value_and_grad(lambda p: model.mse_loss(mspec, p, batch))(params)
        upd, state = tx.update(g, state, params)
        return jax.tree_util.tree_map(lambda a, b: a + b, params, upd), state, loss

    key = jax.random.key(1)
    for i in range(3):
        params, state, loss = step(params, state, jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        params, state, loss = step(params, state, jax.random.fold_in(key, 100 + i))
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t)
    return {"median_ms": 1e3 * float(np.median(times)), "repeats": repeats}


def bench_protocol(steps: int) -> dict:
    mspec, dspec = model.ModelSpec(), data.make_data_spec("1")
    cfg = sweep.SweepConfig(steps=steps, batch=1000, clip=1.0)
    marks = []  # wall time at the end of each 250-step chunk (the first includes compilation)

    def log(msg):
        marks.append(time.perf_counter())
        print(msg, flush=True)

    t = time.perf_counter()
    res = sweep.run_sweep(mspec, dspec, {"sgdm": [0.02], "adam": [0.02]}, range(6), cfg, log=log)
    secs = time.perf_counter() - t
    steady = (
        12 * cfg.snapshot_stride * (len(marks) - 1) / (marks[-1] - marks[0])
        if len(marks) > 1
        else float("nan")
    )
    return {
        "steps": steps,
        "runs": 12,
        "seconds": secs,
        "run_steps_per_sec": 12 * steps / secs,
        "first_chunk_seconds": marks[0] - t,  # compile + the first 250 steps
        "steady_run_steps_per_sec": steady,  # after compilation
        "final_eval_sgdm": float(res.groups["sgdm"].eval_loss[0, :, -1].mean()),
        "final_eval_adam": float(res.groups["adam"].eval_loss[0, :, -1].mean()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500-step protocol instead of 10,000")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "linear_tf.json"))
    args = ap.parse_args()
    steps = 500 if args.quick else 10_000
    load0 = os.getloadavg()[0]
    step = bench_step()
    proto = bench_protocol(steps)
    result = {
        "step": step,
        "protocol": proto,
        "quick": args.quick,
        "load_average_1min": [load0, os.getloadavg()[0]],
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "platform": platform.platform(),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    extrap = proto["first_chunk_seconds"] + 120_000 / proto["steady_run_steps_per_sec"]
    print("| Benchmark | Result |")
    print("|---|---|")
    print(
        f"| one jitted training step (L=3, d=5, n=20, B=1000, Adam; median of {step['repeats']}) | {step['median_ms']:.1f} ms |"
    )
    print(
        f"| Setting-1 protocol via sweep runner (2 optimisers x 6 seeds x {steps} steps, B=1000) | "
        f"{proto['seconds']:.0f} s ({proto['run_steps_per_sec']:.0f} run-steps/s; 10k-step estimate {extrap / 60:.1f} min) |"
    )
    print(
        f"| same, after compilation (first 250-step chunk incl. compile: {proto['first_chunk_seconds']:.0f} s) | "
        f"{proto['steady_run_steps_per_sec']:.0f} run-steps/s (10k steps: {120_000 / proto['steady_run_steps_per_sec'] / 60:.1f} min) |"
    )
    print(
        f"| final fixed-batch loss SGDM / Adam | {proto['final_eval_sgdm']:.3g} / {proto['final_eval_adam']:.3g} |"
    )
    print(
        f"| load average (1 min) before / after | {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores |"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

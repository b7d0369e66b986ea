"""Wall time of the linear-Transformer training step and of the full Setting-1 protocol.

  python benchmarks/linear_tf.py --figure_dir=results/linear_tf_full_s1   # full protocol, measured
  python benchmarks/linear_tf.py --quick                                  # 500 steps (smoke run)

1. One jitted training step (L=3, d=5, n=20, B=1000, Adam, fresh prompts): median of 30 after warm-up.
2. The Setting-1 protocol through the sweep runner (2 optimisers x 6 seeds x 10,000 steps, B=1000, both
   optimisers and all seeds in one program), timed end to end (compilation included), with the elapsed
   time at the end of every 250-step chunk. Nothing is extrapolated.
3. With --torch_steps=K > 0: the plain PyTorch loop of the same model and data
   (benchmarks/torch_linear_tf.py, one run at a time) for the same 12 runs x K steps, timed end to end, next
   to the elapsed time of our sweep at step K (same number of steps; ours includes its compilation).
With --figure_dir the protocol's sweep also yields the full-protocol Setting-1 loss-curve figure (D1),
so the CPU time is spent once. Writes benchmarks/linear_tf.json and prints markdown table rows; the load
average is recorded because the 2-core machine is shared.
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


SEEDS = tuple(range(6))
LRS = {"sgdm": [0.02], "adam": [0.02]}  # reference Setting-1 learning rates, clip 1


def bench_protocol(steps: int, keep_result: bool = False) -> dict:
    mspec, dspec = model.ModelSpec(), data.make_data_spec("1")
    cfg = sweep.SweepConfig(steps=steps, batch=1000, clip=1.0)
    marks = []  # wall time at the end of each 250-step chunk (the first includes compilation)

    def log(msg):
        marks.append(time.perf_counter())
        print(msg, flush=True)

    t = time.perf_counter()
    res = sweep.run_sweep(mspec, dspec, LRS, SEEDS, cfg, log=log)
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
        "elapsed_at_step": {
            int(min((i + 1) * cfg.snapshot_stride, steps)): m - t for i, m in enumerate(marks)
        },
        **({"result": res} if keep_result else {}),
    }


def bench_torch(steps_per_run: int) -> dict:
    """The plain PyTorch loop for the 12 runs (2 optimisers x 6 seeds) of `steps_per_run` steps each."""
    from benchmarks import torch_linear_tf, torch_peers

    skipped = torch_peers.missing(need_transformers=False)
    if skipped:
        return {"skipped": skipped}
    t = time.perf_counter()
    finals = {}
    for name in LRS:
        for seed in SEEDS:
            loop = torch_linear_tf.NotebookLoop(name, seed=seed)
            for _ in range(steps_per_run):
                loop.step()
            finals.setdefault(name, []).append(loop.eval_losses[-1])
    secs = time.perf_counter() - t
    return {
        "steps_per_run": steps_per_run,
        "runs": len(LRS) * len(SEEDS),
        "seconds": secs,
        "run_steps_per_sec": len(LRS) * len(SEEDS) * steps_per_run / secs,
        "last_logged_eval": {k: float(np.mean(v)) for k, v in finals.items()},
    }


def write_figure(res, out_dir: str) -> list[str]:
    """D1 Setting-1 panel of the full protocol from the benchmark's own sweep (+ numbers as JSON)."""
    from linear_tf import phenomena, plots

    os.makedirs(out_dir, exist_ok=True)
    curves = phenomena.loss_curves(res)
    a, g = curves["adam"], curves["sgdm"]
    steps = res.eval_steps
    cap = (
        f"D1 (Adam vs SGD, linear Transformer, Setting 1), full protocol: L=3, d=5, n=20, B=1000, sparse B/C, "
        f"init std 0.05, reference lrs SGDM {g['lr']:g} / Adam {a['lr']:g}, clip 1, {int(steps[-1])} iterations, "
        f"seeds {list(SEEDS)}. Loss on the fixed eval batch every 50 steps; mean over seeds, band ± std/4 "
        "(unbiased), log axis. Produced by benchmarks/linear_tf.py (the timed run)."
    )
    png = plots.curve_panels(
        {"Setting 1": curves},
        os.path.join(out_dir, "loss_curves_s1_full.png"),
        cap,
        "Loss (fixed batch)",
    )
    at = lambda c, t: float(c["mean"][list(steps).index(t)])
    nums = {
        "caption": cap,
        "final_mean": {"sgdm": g["final_mean"], "adam": a["final_mean"]},
        "final_std": {"sgdm": g["final_std"], "adam": a["final_std"]},
        "mean_at": {
            str(t): {"sgdm": at(g, t), "adam": at(a, t)}
            for t in (500, 1000, 2000, 4000, 6000, 8000, 10_000)
            if t in list(steps)
        },
        "frac_adam_below_sgdm_t_ge_300": float(
            np.mean(a["mean"][steps >= 300] < g["mean"][steps >= 300])
        ),
        "per_seed_final": {k: res.groups[k].eval_loss[0, :, -1].tolist() for k in ("sgdm", "adam")},
    }
    np.savez(  # the curves themselves, so the figure can be redrawn without rerunning
        os.path.join(out_dir, "loss_curves_s1_full.npz"),
        steps=steps,
        **{f"eval_loss_{k}": res.groups[k].eval_loss[0] for k in ("sgdm", "adam")},
    )
    js = os.path.join(out_dir, "loss_curves_s1_full.json")
    with open(js, "w") as f:
        json.dump(nums, f, indent=1)
    return [png, js]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500-step protocol instead of 10,000")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "linear_tf.json"))
    ap.add_argument(
        "--figure_dir", default=None, help="also write the Setting-1 loss-curve figure here"
    )
    ap.add_argument(
        "--torch_steps", type=int, default=500, help="PyTorch loop steps per run (0: skip)"
    )
    args = ap.parse_args()
    steps = 500 if args.quick else 10_000
    load0 = os.getloadavg()[0]
    step = bench_step()
    proto = bench_protocol(steps, keep_result=bool(args.figure_dir))
    res = proto.pop("result", None)
    figs = write_figure(res, args.figure_dir) if res is not None else []
    torch = bench_torch(args.torch_steps) if args.torch_steps > 0 else None
    if torch and "seconds" in torch:
        ours = proto["elapsed_at_step"].get(args.torch_steps)
        torch["ours_seconds_same_steps"] = ours
        torch["ratio_same_steps"] = torch["seconds"] / ours if ours else None
        torch["ratio_steady_rate"] = proto["steady_run_steps_per_sec"] / torch["run_steps_per_sec"]
        # The full protocol (12 runs x 10,000 steps) from these rates: ours = first chunk (compile +
        # 250 steps) + the rest at the steady rate; PyTorch = all steps at its measured rate.
        full = 12 * 10_000
        ours_full = (
            proto["first_chunk_seconds"] + (full - 12 * 250) / proto["steady_run_steps_per_sec"]
        )
        torch["full_protocol_estimate"] = {
            "ours_seconds": ours_full,
            "torch_seconds": full / torch["run_steps_per_sec"],
            "ratio": full / torch["run_steps_per_sec"] / ours_full,
            "measured": steps == 10_000,
        }
    result = {
        "command": "python benchmarks/linear_tf.py " + " ".join(sys.argv[1:]),
        "step": step,
        "protocol": proto,
        "torch": torch,
        "figures": figs,
        "quick": args.quick,
        "load_average_1min": [load0, os.getloadavg()[0]],
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "platform": platform.platform(),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("| Benchmark | Result |")
    print("|---|---|")
    print(
        f"| one jitted training step (L=3, d=5, n=20, B=1000, Adam; median of {step['repeats']}) | {step['median_ms']:.1f} ms |"
    )
    print(
        f"| Setting-1 protocol via sweep runner (2 optimisers x 6 seeds x {steps} steps, B=1000), measured end to end | "
        f"{proto['seconds']:.0f} s = {proto['seconds'] / 60:.1f} min ({proto['run_steps_per_sec']:.0f} run-steps/s) |"
    )
    print(
        f"| same, after compilation (first 250-step chunk incl. compile: {proto['first_chunk_seconds']:.0f} s) | "
        f"{proto['steady_run_steps_per_sec']:.0f} run-steps/s |"
    )
    if torch and "seconds" in torch:
        k = torch["steps_per_run"]
        ours = torch["ours_seconds_same_steps"]
        print(
            f"| plain PyTorch loop (benchmarks/torch_linear_tf.py), 12 runs x {k} steps, measured | "
            f"{torch['seconds']:.0f} s ({torch['run_steps_per_sec']:.0f} run-steps/s) |"
        )
        if ours:
            print(
                f"| ours, the same 12 runs x {k} steps (elapsed in the sweep above, compilation included) | "
                f"{ours:.0f} s: PyTorch / ours = {torch['ratio_same_steps']:.2f}x |"
            )
        print(f"| steady-state throughput ours / PyTorch | {torch['ratio_steady_rate']:.2f}x |")
        fe = torch["full_protocol_estimate"]
        how = "ours measured" if fe["measured"] else "both extrapolated from the rates above"
        print(
            f"| full Setting-1 protocol (12 x 10,000 steps), {how} | ours {fe['ours_seconds']:.0f} s vs "
            f"PyTorch {fe['torch_seconds']:.0f} s: PyTorch / ours = {fe['ratio']:.1f}x |"
        )
    elif torch:
        print(f"| plain PyTorch loop | skipped: {torch['skipped']} |")
    print(
        f"| final fixed-batch loss SGDM / Adam | {proto['final_eval_sgdm']:.3g} / {proto['final_eval_adam']:.3g} |"
    )
    print(
        f"| load average (1 min) before / after | {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores |"
    )
    print(f"wrote {args.out}" + "".join(f", {x}" for x in figs))


if __name__ == "__main__":
    main()

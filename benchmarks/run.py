"""Throughput benchmarks of the suite (`make bench`); writes results.json and RESULTS.md.

  .venv/bin/python benchmarks/run.py                  # full: < 15 min on 2 cores
  .venv/bin/python benchmarks/run.py --quick          # ~2-3 min smoke run (size=small, few steps)
  .venv/bin/python benchmarks/run.py --only=decoder   # or peer | linear | compile (comma list)
  .venv/bin/python benchmarks/run.py --malloc=default # glibc's allocator defaults (see below)

Sections:
  decoder  every block at size=small and size=medium: the real jitted train step (see
           benchmarks/decoder.py), interleaved round-robin (order rotated per round) so machine
           noise hits all blocks alike; median step time over >= 20 timed steps after warm-up,
           tokens/s, analytic FLOPs/s, MFU against a 2048x2048 float32 matmul peak sampled between
           the rounds, compile time, memory. Ratios are to pre_ln of the same size and run, paired
           per round (median over rounds of the two round-median step times), robust to drift.
  peer     PyTorch peers at the same config, timed inside the same rounds as the blocks: HF GPT-2
           eager and under torch.compile (benchmarks/torch_peers.py), and a pre_ln / SAS-P decoder
           written from the paper (benchmarks/torch_decoder.py). Needs the `bench` extra (skipped
           with a message otherwise).
  linear   linear_tf's Setting-1 protocol: the authors' notebook loop and our algorithm in PyTorch
           (benchmarks/torch_linear_tf.py, one run at a time, a few hundred steps extrapolated), and
           ours in JAX (one run per step; all 12 runs in one program, benchmarks/linear_tf.py).
  compile  compile time of the scanned deep config: 72 vs 18 layers (abstract shapes only),
           alternating, fastest of each kept.

Host allocator: by default glibc is told (trainloop/host_alloc.py) to keep freed memory mapped, so
XLA's temporary buffer of each step is not mmapped and page-faulted in anew every step; it applies
to the whole process, PyTorch peers included. Where the time goes and what bounds each target:
benchmarks/profiler.py (writes PROFILE.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
# `python benchmarks/run.py` puts benchmarks/ first on sys.path, where benchmarks/linear_tf.py would
# shadow the linear_tf package: use the repository root instead.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, _REPO)

from trainloop import host_alloc  # noqa: E402  (imports no jax)

# Before jax starts its threads (glibc fixes the arena limit at the second arena): keep freed host
# memory mapped so XLA's per-step temporary buffer is not page-faulted in again every step
# (trainloop/host_alloc.py). `--malloc=default` keeps glibc's defaults.
host_alloc.apply_from_argv(sys.argv, flag="malloc")

from benchmarks import machine, report, torch_peers  # noqa: E402
from benchmarks.decoder import DecoderBench, compile_only  # noqa: E402
from simplified_tf.model_config import BLOCKS as ALL_BLOCKS  # noqa: E402

BLOCKS = tuple(b for b in ALL_BLOCKS if b != "post_ln")  # Table 1 blocks; pre_ln first
SECTIONS = ("decoder", "peer", "linear", "compile")

# name -> per-size batch, rounds x steps per round, warm-up; linear steps; compile batch.
MODES = {
    "full": dict(
        sizes=("small", "medium"),
        batch={"small": 4, "medium": 1},
        rounds=7,
        steps_per_round=3,
        peer_steps_per_round=1,
        warmup=3,  # 1 left the first block's heap unsettled (page faults in its first rounds)
        linear_jax_steps=750,
        linear_torch_steps=100,
        compile_batch=8,
        compile_repeats=2,
    ),
    "quick": dict(
        sizes=("small",),
        batch={"small": 2},
        rounds=3,
        steps_per_round=2,
        peer_steps_per_round=1,
        warmup=1,
        linear_jax_steps=500,
        linear_torch_steps=50,
        compile_batch=2,
        compile_repeats=1,
    ),
}
PROTOCOL = dict(optimizers=2, seeds=6, steps=10_000)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- decoder (+ peer)


PEERS = ("hf_gpt2", "hf_gpt2_compiled", "torch_pre_ln", "torch_sas_p")


def build_peers(model_cfg, host_batch: dict, batch_size: int, warmup: int) -> dict:
    """The PyTorch peers of one size (same config and batch as our steps), warmed up."""
    from benchmarks import torch_decoder

    peers = {}
    for name in PEERS:
        log(f"{name}: build" + (" + torch.compile" if name.endswith("compiled") else ""))
        if name.startswith("hf_gpt2"):
            peer = torch_peers.GPT2Peer(
                model_cfg, host_batch, batch_size, compiled=name.endswith("compiled")
            )
        else:
            block = name.removeprefix("torch_")
            peer = torch_decoder.TorchDecoderPeer(model_cfg, block, host_batch, batch_size)
        rss0 = machine.host_memory()["rss"]
        peer.warmup(warmup)
        peer.host_rss_delta = machine.host_memory()["rss"] - rss0
        peers[name] = peer
    return peers


def measure_decoder(
    size: str,
    batch_size: int,
    blocks=BLOCKS,
    rounds: int = 4,
    steps_per_round: int = 5,
    warmup: int = 2,
    peer: bool = False,
    peer_steps_per_round: int = 1,
    devices=None,
    peak: machine.MatmulPeak | None = None,
) -> dict:
    """Builds every block's step (and the PyTorch peers), then times them round-robin.

    Returns {"configs": {name: result}, "peak": matmul summary, "peer_skipped": reason or None};
    derived ratios/MFU come from `summarise`.
    """
    peak = peak or machine.MatmulPeak(device=(devices or [None])[0])
    benches = {}
    for block in blocks:
        log(f"{size}/{block}: build + compile")
        benches[block] = DecoderBench(block, size, batch_size, {}, devices=devices)
        benches[block].warmup(warmup)
    skipped = None
    if peer:
        skipped = torch_peers.missing()
        if skipped is None:
            ref = benches[blocks[0]]
            benches |= build_peers(ref.model_cfg, jax_to_numpy(ref.batch), batch_size, warmup)
        else:
            log(skipped)
    names = list(benches)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    peak.sample(3)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        log(f"{size}: round {r + 1}/{rounds} ({steps_per_round} steps each)")
        for name in order:
            n = peer_steps_per_round if name in PEERS else steps_per_round
            before = len(benches[name].times)
            benches[name].run(n)
            per_round[name].append(machine.median(benches[name].times[before:]))
        peak.sample(2)
    configs = {name: b.result() for name, b in benches.items()}
    for name in names:
        configs[name]["round_median_step_s"] = per_round[name]
        if name in PEERS:
            configs[name]["host_rss_delta_bytes"] = benches[name].host_rss_delta
    del benches
    gc.collect()
    return {"configs": configs, "peak": peak.summary(), "peer_skipped": skipped}


def paired_ratio(base_rounds: list[float], rounds: list[float]) -> float:
    """Median over rounds of (baseline step time / this step time) within the same round.

    Machine load drifts on a time scale of seconds to minutes; a round takes a few seconds per
    block, so pairing inside a round cancels the drift that a ratio of overall medians keeps.
    """
    return machine.median([b / t for b, t in zip(base_rounds, rounds, strict=True)])


def jax_to_numpy(tree):
    import jax
    import numpy as np

    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def summarise(section: dict, baseline: str = "pre_ln") -> dict:
    """Adds FLOPs/s, MFU and ratios to `baseline` (tokens/s, step time, parameters) in place."""
    peak = section["peak"]["gflops_per_sec"] * 1e9
    configs = section["configs"]
    base = configs.get(baseline)
    for r in configs.values():
        if "flops_per_step" in r:
            r["model_flops_per_sec"] = r["flops_per_step"] / r["step_time_s"]
            r["mfu"] = r["model_flops_per_sec"] / peak
        if base is not None:
            r["tokens_per_sec_ratio_of_medians"] = r["tokens_per_sec"] / base["tokens_per_sec"]
            r["step_time_ratio"] = r["step_time_s"] / base["step_time_s"]
            if r.get("round_median_step_s") and base.get("round_median_step_s"):
                # tokens/s ratio from step times paired within each round (tokens/step may differ
                # for the peer only if its batch differs; it does not)
                tok = r["tokens_per_step"] / base["tokens_per_step"]
                r["tokens_per_sec_ratio"] = tok * paired_ratio(
                    base["round_median_step_s"], r["round_median_step_s"]
                )
            else:
                r["tokens_per_sec_ratio"] = r["tokens_per_sec_ratio_of_medians"]
            if "analytic" in r:
                r["params_ratio"] = r["analytic"]["n_params"] / base["analytic"]["n_params"]
    # ours / peer, paired per round: (ours, peer) pairs
    pairs = {
        "pre_ln_vs_hf_gpt2": ("pre_ln", "hf_gpt2"),
        "pre_ln_vs_hf_gpt2_compiled": ("pre_ln", "hf_gpt2_compiled"),
        "sas_p_vs_torch_sas_p": ("sas_p", "torch_sas_p"),
        "torch_sas_p_vs_torch_pre_ln": ("torch_sas_p", "torch_pre_ln"),
    }
    section["vs_peers"] = {
        key: paired_ratio(configs[b]["round_median_step_s"], configs[a]["round_median_step_s"])
        for key, (a, b) in pairs.items()
        if a in configs and b in configs
    }
    return section


# ----------------------------------------------------------------------------- linear_tf


def measure_linear(jax_steps: int, torch_steps: int) -> dict:
    """Paper B's Setting-1 protocol three ways: the authors' notebook loop and our algorithm, both in
    PyTorch with one run at a time (benchmarks/torch_linear_tf.py), and ours in JAX (one run per
    step, and all 12 runs in one program; benchmarks/linear_tf.py)."""
    out: dict = {"protocol": dict(PROTOCOL)}
    runs = PROTOCOL["optimizers"] * PROTOCOL["seeds"]
    total_run_steps = runs * PROTOCOL["steps"]
    from benchmarks import linear_tf as lt

    log("linear_tf: JAX step (one run)")
    out["jax_step"] = lt.bench_step(repeats=30)
    log(f"linear_tf: JAX Setting-1 protocol, {jax_steps} steps")
    proto = lt.bench_protocol(jax_steps)
    # compile + first chunk as measured, the remaining run-steps at the steady rate
    first_steps = proto["runs"] * min(jax_steps, 250)
    proto["extrapolated_full_s"] = (
        proto["first_chunk_seconds"]
        + (total_run_steps - first_steps) / proto["steady_run_steps_per_sec"]
    )
    out["jax"] = proto
    skipped = torch_peers.missing(need_transformers=False)
    if skipped:
        out["torch_skipped"] = skipped
        log(skipped)
        return out
    from benchmarks import torch_linear_tf

    for name, cls in (
        ("notebook", torch_linear_tf.NotebookLoop),
        ("stats", torch_linear_tf.StatsLoop),
    ):
        log(f"linear_tf: PyTorch {name} loop, {torch_steps} steps per optimiser")
        per_opt = {}
        for opt in ("sgdm", "adam"):
            loop = cls(opt, seed=0)
            for _ in range(5):
                loop.step()
            times = [loop.step() for _ in range(torch_steps)]
            per_opt[opt] = dict(
                median_step_ms=1e3 * machine.median(times),
                mean_step_ms=1e3 * sum(times) / len(times),
                last_eval_loss=loop.eval_losses[-1],
            )
        mean_step = sum(v["mean_step_ms"] for v in per_opt.values()) / len(per_opt) / 1e3
        median_step = sum(v["median_step_ms"] for v in per_opt.values()) / len(per_opt) / 1e3
        out[f"torch_{name}"] = dict(
            per_optimizer=per_opt,
            median_step_s=median_step,
            extrapolated_full_s=mean_step * total_run_steps,
        )
    ours_step = out["jax_step"]["median_ms"] / 1e3
    ours_full = proto["extrapolated_full_s"]
    nb, st = out["torch_notebook"], out["torch_stats"]
    out["speedups"] = dict(
        single_run=nb["median_step_s"] / ours_step,  # per step, one run
        protocol=nb["extrapolated_full_s"] / ours_full,  # 12 runs x 10,000 steps
        algorithm=nb["median_step_s"] / st["median_step_s"],  # torch: notebook -> statistics
        framework=st["median_step_s"] / ours_step,  # statistics: torch -> JAX, one run
        batching=ours_step * total_run_steps / ours_full,  # JAX: 12 runs one by one -> one program
    )
    return out


# ----------------------------------------------------------------------------- compile depth


def measure_compile(batch_size: int, block: str = "pre_ln", repeats: int = 1) -> dict:
    """Lower + compile time at 18 and 72 layers, alternating `repeats` times; the fastest of each
    is kept (compile time only grows under load, so the minimum is the least disturbed sample)."""
    samples: dict[str, list[dict]] = {"deep18": [], "deep": []}
    for i in range(repeats):
        for size in samples:
            log(f"compile: {block} {size} (abstract) {i + 1}/{repeats}")
            samples[size].append(compile_only(block, size, batch_size))
    out = {}
    for size, runs in samples.items():
        out[size] = dict(min(runs, key=lambda c: c["total_s"]))
        out[size]["total_s_samples"] = [c["total_s"] for c in runs]
    out["ratio_72_vs_18"] = out["deep"]["total_s"] / out["deep18"]["total_s"]
    return out


# ----------------------------------------------------------------------------- main


def parse_only(value: str | None) -> tuple[str, ...]:
    if not value:
        return SECTIONS
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    bad = [p for p in parts if p not in SECTIONS]
    if bad:
        raise SystemExit(
            f"--only={value!r}: unknown section(s) {bad}; valid: {', '.join(SECTIONS)}"
        )
    return parts


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~2-minute smoke version")
    ap.add_argument("--only", default="", help=f"comma list of {'|'.join(SECTIONS)}")
    ap.add_argument("--out-dir", default=_HERE, help="where results.json and RESULTS.md go")
    ap.add_argument(
        "--malloc",
        default="keep",
        choices=("keep", "default"),
        help="host allocator: keep freed memory mapped (default) or glibc defaults",
    )
    args = ap.parse_args(argv)
    only = parse_only(args.only)
    # torch.compile's cache in a fresh directory: the reported compile time is a first (cold) one.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_inductor_"))
    mode = "quick" if args.quick else "full"
    m = MODES[mode]
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t_start = time.perf_counter()
    results = dict(
        mode=mode,
        command=command.strip(),
        machine=machine.machine_info(),
        load_average_before=machine.load_average(),
        settings=dict(m, sizes=list(m["sizes"])),
        malloc=dict(requested=args.malloc, applied=host_alloc.applied()),
        decoder={},
    )
    log(f"mode={mode} sections={','.join(only)} load={results['load_average_before']}")
    peak = machine.MatmulPeak()
    if "decoder" in only or "peer" in only:
        blocks = BLOCKS if "decoder" in only else ("pre_ln",)
        for size in m["sizes"]:
            sec = measure_decoder(
                size,
                m["batch"][size],
                blocks=blocks,
                rounds=m["rounds"],
                steps_per_round=m["steps_per_round"],
                peer_steps_per_round=m["peer_steps_per_round"],
                warmup=m["warmup"],
                peer="peer" in only,
                peak=peak,
            )
            results["decoder"][size] = summarise(sec)
    if "linear" in only:
        results["linear_tf"] = measure_linear(m["linear_jax_steps"], m["linear_torch_steps"])
    if "compile" in only:
        results["compile"] = measure_compile(m["compile_batch"], repeats=m["compile_repeats"])
    results["load_average_after"] = machine.load_average()
    results["wall_time_s"] = time.perf_counter() - t_start
    results["targets"] = report.targets(results)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    with open(os.path.join(args.out_dir, "RESULTS.md"), "w") as f:
        f.write(report.render(results))
    log(
        f"done in {results['wall_time_s']:.0f} s; wrote results.json and RESULTS.md in {args.out_dir}"
    )
    return results


if __name__ == "__main__":
    main()

"""Where the decoder train step's time goes: per-op profiles of ours and of HF GPT-2, GEMM efficiency.

  .venv/bin/python benchmarks/profile_step.py                       # small + medium, ~3-4 min
  .venv/bin/python benchmarks/profile_step.py --sizes=small --blocks=pre_ln,sas_p
  .venv/bin/python benchmarks/profile_step.py --malloc=default      # glibc defaults (see below)

Writes benchmarks/profile.json and benchmarks/PROFILE.md (regenerated; do not edit by hand).

1. Our compiled train step (benchmarks/decoder.py, the step `make bench` times) under
   `jax.profiler`: per-HLO-op self times grouped into matmul / zero-fill / copy-slice / loop control /
   layernorm / attention / loss / optimizer / mlp activation / other (benchmarks/hlo_profile.py), the
   achieved GFLOP/s of the matmul ops, and page faults per step.
2. HF `GPT2LMHeadModel` (benchmarks/torch_peers.py) under `torch.profiler`: self CPU time per aten op,
   grouped the same way (matmul = mm/addmm/bmm/baddbmm).
3. GEMMs at the model's own shapes (tokens x width x {2d, d, 4d, vocab}, forward and weight-gradient
   forms) and at 2048^2: `torch.mm` vs a jitted `jnp.dot`, interleaved in one process, float32, all
   cores on both sides.
4. The bounds: for each throughput target of RESULTS.md, what limits it, from 1-3 and results.json.

`--malloc=keep` (default, as in `make bench`) applies trainloop/host_alloc.py before jax starts:
glibc keeps freed memory mapped, so XLA's per-step temporary buffer is not page-faulted in again on
every step. `--malloc=default` shows the cost of not doing so (the page-fault column).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, _REPO)

from trainloop import host_alloc  # noqa: E402  (no jax import: must run before jax starts)

BATCH = {"small": 4, "medium": 1}  # as in `make bench` (benchmarks/run.py MODES["full"])
TORCH_MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm")


def log(msg: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- ours (XLA)


def profile_jax(
    size: str, blocks: list[str], batch: int, rounds: int, peer: bool
) -> tuple[dict, dict]:
    """Per-op breakdown of every block's step, traced one step per block per round, round-robin.

    Each op's time is the median over rounds (so a load spike in one round does not move it);
    an untraced step precedes each traced one. With `peer`, the HF GPT-2 step is traced in the same
    rounds (torch.profiler). Returns ({block: breakdown}, peer breakdown or None).
    """
    import jax

    from benchmarks import hlo_profile
    from benchmarks.decoder import DecoderBench

    benches = {}
    for block in blocks:
        log(f"{size}/{block}: build + compile")
        benches[block] = DecoderBench(block, size, batch)
        benches[block].warmup(2)
    first = benches[blocks[0]]
    tp = None
    if peer:
        log(f"{size}/hf_gpt2_torch: build")
        tp = TorchProfile(first.model_cfg, jax_host(first.batch), batch)
    per_round: dict[str, list[tuple[dict, dict]]] = {b: [] for b in blocks}
    faults: dict[str, list[int]] = {b: [] for b in blocks}
    traced: dict[str, list[float]] = {b: [] for b in blocks}
    for r in range(rounds):
        log(f"{size}: round {r + 1}/{rounds}")
        for block in blocks[r % len(blocks) :] + blocks[: r % len(blocks)]:
            bench = benches[block]
            f0 = host_alloc.page_faults()
            bench.run(1)
            faults[block].append(host_alloc.page_faults() - f0)
            with tempfile.TemporaryDirectory() as d:
                jax.profiler.start_trace(d)
                traced[block].append(bench.step())
                jax.profiler.stop_trace()
                per_round[block].append(hlo_profile.op_self_times(d))
        if tp is not None:
            tp.trace_step()
    out = {}
    for block, bench in benches.items():
        times = {
            name: _median([t.get(name, 0.0) for t, _ in per_round[block]])
            for name in set().union(*(t for t, _ in per_round[block]))
        }
        counts = {name: max(c.get(name, 0) for _, c in per_round[block]) for name in times}
        index = hlo_profile.HloIndex(bench.compiled.as_text())
        res = hlo_profile.breakdown(index, times, counts, 1)
        res.update(
            block=block,
            size=size,
            batch_size=batch,
            rounds=rounds,
            step_time_s=_median(bench.times),
            traced_step_time_s=_median(traced[block]),
            page_faults_per_step=_median(faults[block]),
            model_flops_per_step=bench.analytic["flops"],
            xla_temp_bytes=bench.memory.get("temp_size_in_bytes"),
        )
        out[block] = res
    return out, (None if tp is None else tp.result())


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


# ----------------------------------------------------------------------------- HF GPT-2 (torch)


def _torch_category(name: str) -> str:
    if name in TORCH_MATMUL:
        return "matmul"
    low = name.lower()
    if (
        "scaled_dot_product" in low
        or "flash_attention" in low
        or "softmax" in low
        and "log" not in low
    ):
        return "attention"
    if "layer_norm" in low:
        return "layernorm"
    if "log_softmax" in low or "nll_loss" in low or "cross_entropy" in low:
        return "loss"
    if "_foreach" in low or "optimizer" in low or "adam" in low or "clip" in low:
        return "optimizer"
    # AdamW (per-tensor loop) and clipping: in-place updates, sqrt of v, the gradient norms
    inplace = name.endswith("_") and not any(m in low for m in ("copy_", "fill_", "zero_"))
    if inplace or low in ("aten::sqrt", "aten::linalg_vector_norm", "aten::stack", "aten::norm"):
        return "optimizer"
    if "relu" in low or "threshold" in low:
        return "mlp activation"
    moves = ("copy_", "clone", "contiguous", "cat", "split", "slice", "view", "transpose",
             "aten::t", "permute", "expand", "as_strided", "empty", "zero", "fill_", "reshape",
             "embedding_dense_backward", "index_select", "embedding")  # fmt: skip
    if any(m in low for m in moves):
        return "copy/slice"
    if not name.startswith("aten::"):
        return "framework"
    return "other"


class TorchProfile:
    """HF GPT-2 peer whose steps are traced one at a time (`trace_step`), summarised by `result`."""

    def __init__(self, model_cfg, host_batch: dict, batch: int):
        from benchmarks import torch_peers

        self.model_cfg, self.batch = model_cfg, batch
        self.peer = torch_peers.GPT2Peer(model_cfg, host_batch, batch)
        self.peer.warmup(2)
        self.rounds: list[dict[str, tuple[float, int]]] = []
        self.traced: list[float] = []

    def trace_step(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.peer.run(1)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            self.peer.step()
            self.traced.append(time.perf_counter() - t0)
        self.rounds.append(
            {e.key: (e.self_cpu_time_total * 1e-6, e.count) for e in prof.key_averages()}
        )

    def result(self) -> dict:
        import torch

        names = set().union(*self.rounds)
        cats: dict[str, float] = {}
        ops = []
        for name in names:
            s = _median([r.get(name, (0.0, 0))[0] for r in self.rounds])
            cat = _torch_category(name)
            cats[cat] = cats.get(cat, 0.0) + s
            calls = max(r.get(name, (0.0, 0))[1] for r in self.rounds)
            ops.append(dict(name=name, category=cat, seconds_per_step=s, calls_per_step=calls))
        ops.sort(key=lambda o: -o["seconds_per_step"])
        # dense matmul FLOPs of the GPT-2 step: 3 x the forward matmuls (fwd, dX, dW)
        cfg = self.model_cfg
        d, L = int(cfg.width), int(cfg.num_layers)
        T, V, F = int(cfg.seq_len), int(cfg.vocab_size), int(cfg.d_ff)
        mm_flops = 6 * self.batch * T * (L * (4 * d * d + 2 * d * F) + d * V)
        total = sum(cats.values())
        return dict(
            rounds=len(self.rounds),
            step_time_s=_median(self.peer.times),
            traced_step_time_s=_median(self.traced),
            seconds_per_step=cats,
            share={c: v / total for c, v in cats.items()},
            op_seconds_per_step=total,
            dense_matmul_flops_per_step=mm_flops,
            matmul_gflops_per_sec=mm_flops / cats["matmul"] / 1e9 if cats.get("matmul") else None,
            threads=torch.get_num_threads(),
            top_ops=ops[:20],
        )


# ----------------------------------------------------------------------------- GEMMs


def gemm_shapes(model_cfg, batch: int) -> list[tuple[str, int, int, int]]:
    """(label, M, K, N) of the step's GEMMs: M tokens, forward X W and weight-gradient Xᵀ dY."""
    d, F, V = int(model_cfg.width), int(model_cfg.d_ff), int(model_cfg.vocab_size)
    M = batch * int(model_cfg.seq_len)
    return [
        ("qk (fused) X·W_qk", M, d, 2 * d),
        ("value/proj X·W", M, d, d),
        ("mlp up X·W_1", M, d, F),
        ("mlp down H·W_2", M, F, d),
        ("head X·Eᵀ", M, d, V),
        ("head dX = dY·E", M, V, d),
        ("mlp up dW = Xᵀ·dY", d, M, F),
        ("head dE = dYᵀ·X", V, M, d),
    ]


def _timed_block(fn, repeats: int) -> list[float]:
    """`repeats` timings of `fn` after two untimed calls (which absorb the other library's tail)."""
    fn()
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    time.sleep(0.05)
    return out


def time_gemms(shapes, repeats: int) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    dot = jax.jit(jnp.dot)
    rows = []
    for label, M, K, N in shapes:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        ja, jb = jax.device_put(a), jax.device_put(b)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        jax.block_until_ready(dot(ja, jb))
        torch.mm(ta, tb)
        tj, tt = [], []
        # Blocks of repeats per library, alternating: torch's OpenMP workers keep spinning for a
        # while after an op, which would steal a core from an XLA call timed right after it.
        for _ in range(2):
            tj += _timed_block(lambda a=ja, b=jb: jax.block_until_ready(dot(a, b)), repeats)
            tt += _timed_block(lambda a=ta, b=tb: torch.mm(a, b), repeats)
        flops = 2.0 * M * K * N
        xla, tor = flops / float(np.median(tj)) / 1e9, flops / float(np.median(tt)) / 1e9
        rows.append(
            dict(
                label=label,
                M=M,
                K=K,
                N=N,
                xla_gflops=xla,
                torch_gflops=tor,
                torch_over_xla=tor / xla,
            )
        )
    return rows


# ----------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="small,medium")
    ap.add_argument("--blocks", default="pre_ln,sas,sas_p")
    ap.add_argument("--rounds", type=int, default=3, help="traced steps per block (round-robin)")
    ap.add_argument("--gemm-repeats", type=int, default=7)
    ap.add_argument("--malloc", default="keep", choices=("keep", "default"))
    ap.add_argument("--no-peer", action="store_true", help="skip the HF GPT-2 profile")
    ap.add_argument("--out-dir", default=_HERE)
    ap.add_argument("--results", default=os.path.join(_HERE, "results.json"),
                    help="make-bench results used for the bounds section")  # fmt: skip
    args = ap.parse_args(argv)
    if args.malloc == "keep":
        host_alloc.keep_host_memory()

    from benchmarks import machine, profile_report, torch_peers
    from benchmarks.decoder import decoder_config

    t_start = time.perf_counter()
    out = dict(
        command="python benchmarks/profile_step.py " + " ".join(argv or sys.argv[1:]),
        machine=machine.machine_info(),
        load_average_before=machine.load_average(),
        malloc=args.malloc,
        rounds=args.rounds,
        sizes={},
    )
    peak = machine.MatmulPeak()
    for size in [s for s in args.sizes.split(",") if s]:
        batch = BATCH[size]
        blocks = [b for b in args.blocks.split(",") if b]
        peer = not args.no_peer and torch_peers.missing() is None
        sec: dict = {}
        sec["jax"], sec["peer"] = profile_jax(size, blocks, batch, args.rounds, peer)
        peak.sample(3)
        log(f"{size}: GEMMs at the model's shapes")
        cfg = decoder_config(blocks[0], size, batch).model
        sec["gemm"] = time_gemms(gemm_shapes(cfg, batch), args.gemm_repeats)
        out["sizes"][size] = sec
    if torch_peers.missing(need_transformers=False) is None:
        log("2048^2 peak: XLA vs torch")
        out["peak_2048"] = time_gemms([("2048²", 2048, 2048, 2048)], args.gemm_repeats)[0]
    out["xla_peak_gflops_between_profiles"] = peak.summary()["gflops_per_sec"]
    out["load_average_after"] = machine.load_average()
    out["wall_time_s"] = time.perf_counter() - t_start
    bench_results = None
    if os.path.exists(args.results):
        with open(args.results) as f:
            bench_results = json.load(f)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "profile.json"), "w") as f:
        json.dump(out, f, indent=1, default=float)
    with open(os.path.join(args.out_dir, "PROFILE.md"), "w") as f:
        f.write(profile_report.render(out, bench_results))
    log(f"done in {out['wall_time_s']:.0f} s; wrote profile.json and PROFILE.md")
    return out


def jax_host(tree):
    import jax
    import numpy as np

    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


if __name__ == "__main__":
    main()

"""PROFILE.md from a profile (the dict benchmarks/profiler.py writes to profile.json).

Per size: the per-category step breakdown of every traced block (and of HF GPT-2), the GEMMs at the
model's shapes, and for each throughput target of RESULTS.md the numbers that bound it, with the
ratios `make bench` measured (benchmarks/results.json) beside the profiled ones. Pure text: it
imports no jax, so the profiler can load it before jax starts.
"""

from __future__ import annotations

import statistics

# The buckets an op's time falls into (see benchmarks/profiler.py), in the order of the tables.
CATEGORIES = ("matmul", "zero-fill", "copy/slice", "loop control", "layernorm", "attention",
              "loss", "optimizer", "mlp activation", "other")  # fmt: skip


def _ms(x) -> str:
    return "–" if x is None or x != x else f"{1e3 * x:.1f}"


def _f(x, nd=2) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def _pct(x) -> str:
    return "–" if x is None or x != x else f"{100 * x:.0f}%"


def _breakdown_table(sec: dict) -> list[str]:
    runs = dict(sec["jax"]) | ({"HF GPT-2 (torch)": sec["peer"]} if sec.get("peer") else {})
    L = ["| category | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for cat in CATEGORIES:
        cells = [f"{_ms(r['seconds_per_step'][cat])} ({_pct(r['seconds_per_step'][cat] / r['op_seconds_per_step'])})"
                 for r in runs.values()]  # fmt: skip
        L.append(f"| {cat} | " + " | ".join(cells) + " |")
    for label, key in (("**sum of op self times**", "op_seconds_per_step"),
                       ("step time, untraced (median)", "step_time_s")):  # fmt: skip
        L.append(f"| {label} | " + " | ".join(_ms(r[key]) for r in runs.values()) + " |")
    gf = [_f(r.get("matmul_gflops_per_sec"), 1) for r in runs.values()]
    return L + ["| matmul GFLOP/s | " + " | ".join(gf) + " |"]


def _bounds(prof: dict, bench: dict | None) -> list[str]:
    """One line per throughput target with the numbers that bound it."""
    out, peak = [], prof.get("xla_peak_gflops")
    for size, sec in prof["sizes"].items():
        base = sec["jax"].get("pre_ln")
        if base is None:
            continue
        made = (bench or {}).get("decoder", {}).get(size, {})
        cfgs, vs = made.get("configs", {}), made.get("vs_peers", {})
        mm0, tot0 = base["seconds_per_step"]["matmul"], base["op_seconds_per_step"]
        out.append(f"### size={size}")
        for block, target in (("sas_p", 1.15), ("sas", 1.08)):
            r = sec["jax"].get(block)
            if r is None:
                continue
            mm, tot = r["seconds_per_step"]["matmul"], r["op_seconds_per_step"]
            fl = r["matmul_flops_per_step"] / base["matmul_flops_per_step"]
            out.append(
                f"- **{block} >= {target}x pre_ln** (make bench: "
                f"{_f(cfgs.get(block, {}).get('tokens_per_sec_ratio'), 3)}x). Its matmuls run "
                f"{_f(fl, 3)}x pre_ln's FLOPs in {_ms(mm)} vs {_ms(mm0)} ms; its other ops take "
                f"{_ms(tot - mm)} vs {_ms(tot0 - mm0)} ms. Were only the matmul time to shrink by "
                f"the FLOP ratio: {_f(tot0 / (mm0 * fl + tot0 - mm0), 3)}x; profiled: "
                f"{_f(tot0 / tot, 3)}x."
            )
        peer, gemm = sec.get("peer"), sec.get("gemm")
        if peer and gemm:
            mm_t, tot_t = peer["seconds_per_step"]["matmul"], peer["op_seconds_per_step"]
            out.append(
                f"- **pre_ln >= 1.0x HF GPT-2** (make bench: eager "
                f"{_f(vs.get('pre_ln_vs_hf_gpt2'), 3)}x, compiled "
                f"{_f(vs.get('pre_ln_vs_hf_gpt2_compiled'), 3)}x; profiled eager "
                f"{_f(tot_t / tot0, 3)}x). Matmuls: ours {_ms(mm0)} ms at "
                f"{_f(base['matmul_gflops_per_sec'], 1)} GFLOP/s, torch {_ms(mm_t)} ms at "
                f"{_f(peer['matmul_gflops_per_sec'], 1)} GFLOP/s (standalone GEMMs at these shapes: "
                f"torch.mm / jnp.dot = {_f(statistics.median([g['torch_over_xla'] for g in gemm]))}x, median "
                f"of {len(gemm)}). Other ops: ours {_ms(tot0 - mm0)} ms, torch {_ms(tot_t - mm_t)} "
                f"ms. With torch's matmul time we would be at {_f(tot_t / (mm_t + tot0 - mm0))}x; "
                f"with torch's other ops at {_f(tot_t / (tot_t - mm_t + mm0))}x."
            )
        if peak and base.get("matmul_gflops_per_sec"):
            eff, share = base["matmul_gflops_per_sec"] / peak, mm0 / tot0
            out.append(
                f"- **MFU** (pre_ln; make bench: {_pct(cfgs.get('pre_ln', {}).get('mfu'))}) = "
                f"matmul share of the step {_pct(share)} x matmul efficiency {_pct(eff)} "
                f"({_f(base['matmul_gflops_per_sec'], 1)} of {_f(peak, 1)} GFLOP/s at 2048²) x "
                f"model / executed matmul FLOPs "
                f"{_f(base['model_flops_per_step'] / base['matmul_flops_per_step'], 3)}; with no "
                f"non-matmul time it would be {_pct(eff)}."
            )
    return out


def render(prof: dict, bench: dict | None) -> str:
    m, v = prof["machine"], prof["machine"]["versions"]
    L = [
        "# Step profiles and bounds",
        "",
        f"Regenerated by `{prof['command'].strip()}`; do not edit by hand. Per train step, float32, "
        "one XLA CPU device on all cores (torch on all cores too). Op times are *self* times; ops "
        "run one after another here, so shares are shares of the step. Each op's time is its "
        f"median over {prof['rounds']} traced steps (round-robin over the configs).",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores; jax {v.get('jax')}, torch {v.get('torch')}, "
        f"transformers {v.get('transformers')}; {m['date']}; commit {m.get('commit', 'unknown')}; "
        f"wall {prof['wall_time_s']:.0f} s",
        f"- Load average before {prof['load_average_before']}, after {prof['load_average_after']}",
        "- Host allocator: glibc keeps freed memory mapped (trainloop/host_alloc.py), as in "
        "`make bench`",
        "",
    ]
    if "peak_2048" in prof:
        p = prof["peak_2048"]
        L += [f"Matmul peak, 2048² float32: XLA `jnp.dot` {p['xla_gflops']:.1f} GFLOP/s, "
              f"`torch.mm` {p['torch_gflops']:.1f} GFLOP/s (torch / XLA {p['torch_over_xla']:.2f}).",
              ""]  # fmt: skip
    for size, sec in prof["sizes"].items():
        L += [f"## size={size}", "", "ms per step (share of the summed op time):", ""]
        L += _breakdown_table(sec) + [""]
        if sec.get("gemm"):
            L += ["GEMMs at this size's shapes (median of repeats, interleaved):", "",
                  "| GEMM | M x K x N | `jnp.dot` GFLOP/s | `torch.mm` GFLOP/s | torch / XLA |",
                  "|---|---|---|---|---|"]  # fmt: skip
            for g in sec["gemm"]:
                L.append(f"| {g['label']} | {g['M']}x{g['K']}x{g['N']} | {g['xla_gflops']:.1f} | "
                         f"{g['torch_gflops']:.1f} | {g['torch_over_xla']:.2f} |")  # fmt: skip
            L.append("")
    L += ["## Bounds of the throughput targets", "",
          "Ratios from benchmarks/results.json (`make bench`); the split from the profiles above.",
          ""] + _bounds(prof, bench) + [""]  # fmt: skip
    return "\n".join(L)

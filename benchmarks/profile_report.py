"""PROFILE.md rendering for benchmarks/profile_step.py: breakdown tables and the bounds of each target."""

from __future__ import annotations

import math

from benchmarks.hlo_profile import CATEGORIES

PEER_CATEGORIES = CATEGORIES + ("framework",)


def _ms(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{1e3 * x:.1f}"


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def _f(x, nd=2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def breakdown_table(sec: dict) -> list[str]:
    jx, peer = sec["jax"], sec.get("peer")
    names = list(jx) + (["HF GPT-2 (torch)"] if peer else [])
    lines = [
        "| category | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for cat in PEER_CATEGORIES:
        cells = []
        for b in jx.values():
            v = b["seconds_per_step"].get(cat)
            cells.append("" if v is None else f"{_ms(v)} ({_pct(b['share'][cat])})")
        if peer:
            v = peer["seconds_per_step"].get(cat)
            cells.append("–" if not v else f"{_ms(v)} ({_pct(peer['share'][cat])})")
        if cat == "framework" and not peer:
            continue
        lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    rows = [
        ("**sum of op self times**", lambda r: _ms(r["op_seconds_per_step"])),
        ("step time, traced", lambda r: _ms(r["traced_step_time_s"])),
        ("step time, untraced (median)", lambda r: _ms(r["step_time_s"])),
        ("matmul achieved GFLOP/s", lambda r: _f(r.get("matmul_gflops_per_sec"), 1)),
        ("page faults / step", lambda r: f"{r['page_faults_per_step']:.0f}"
         if "page_faults_per_step" in r else "–"),
    ]  # fmt: skip
    for label, fn in rows:
        cells = [fn(b) for b in jx.values()] + ([fn(peer)] if peer else [])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def top_ops_table(run: dict, n: int = 10) -> list[str]:
    lines = [
        "| op | category | ms/step | calls/step | shape | GFLOP/s |",
        "|---|---|---|---|---|---|",
    ]
    for o in run["top_ops"][:n]:
        shape = o.get("shape", "")
        shape = shape if len(shape) < 40 else shape[:37] + "..."
        lines.append(
            f"| `{o['name']}` | {o['category']} | {_ms(o['seconds_per_step'])} | "
            f"{o['calls_per_step']:.0f} | `{shape}` | {_f(o.get('gflops_per_sec'), 1)} |"
        )
    return lines


def gemm_table(rows: list[dict]) -> list[str]:
    lines = [
        "| GEMM | M x K x N | XLA `jnp.dot` GFLOP/s | `torch.mm` GFLOP/s | torch / XLA |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['M']}x{r['K']}x{r['N']} | {r['xla_gflops']:.1f} | "
            f"{r['torch_gflops']:.1f} | {r['torch_over_xla']:.2f} |"
        )
    return lines


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return math.nan if not n else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def bounds(prof: dict, bench: dict | None) -> list[str]:
    """One paragraph per throughput target with the numbers that bound it."""
    out = []
    dec = (bench or {}).get("decoder", {})
    peak = prof.get("xla_peak_gflops_between_profiles")
    for size, sec in prof["sizes"].items():
        jx = sec["jax"]
        base = jx.get("pre_ln")
        if base is None:
            continue
        out.append(f"### size={size}")
        bcfg = dec.get(size, {}).get("configs", {})
        mm0, tot0 = base["seconds_per_step"]["matmul"], base["op_seconds_per_step"]
        for block, target in (("sas_p", 1.15), ("sas", 1.08)):
            r = jx.get(block)
            if r is None:
                continue
            measured = bcfg.get(block, {}).get("tokens_per_sec_ratio")
            flop_cap = None
            if block in bcfg and "pre_ln" in bcfg:
                flop_cap = bcfg["pre_ln"]["flops_per_step"] / bcfg[block]["flops_per_step"]
            mm, tot = r["seconds_per_step"]["matmul"], r["op_seconds_per_step"]
            mm_ratio = r["matmul_flops_per_step"] / base["matmul_flops_per_step"]
            only_mm = tot0 / (mm0 * mm_ratio + (tot0 - mm0))
            out.append(
                f"- **{block} >= {target}x pre_ln** (make bench: {_f(measured, 3)}x). Analytic FLOP "
                f"ratio pre_ln/{block} = {_f(flop_cap, 3)} -> at most {_f(flop_cap, 3)}x if time "
                f"were proportional to FLOPs. Profile: matmuls are {_pct(mm0 / tot0)} of pre_ln's "
                f"op time ({_ms(mm0)} of {_ms(tot0)} ms); {block} executes {_f(mm_ratio, 3)}x the "
                f"matmul FLOPs and its matmuls take {_ms(mm)} ms, its non-matmul ops "
                f"{_ms(tot - mm)} ms vs pre_ln's {_ms(tot0 - mm0)} ms. If only the matmul time "
                f"shrank (by the FLOP ratio) and everything else stayed at pre_ln's, the ratio "
                f"would be {_f(only_mm, 3)}x; profiled op-time ratio {_f(tot0 / tot, 3)}x."
            )
        peer = sec.get("peer")
        if peer:
            ours_vs_peer = dec.get(size, {}).get("ours_vs_peer")
            med = _median([g["torch_over_xla"] for g in sec["gemm"]])
            mm_t, tot_t = peer["seconds_per_step"].get("matmul", 0.0), peer["op_seconds_per_step"]
            rest0, rest_t = tot0 - mm0, tot_t - mm_t
            out.append(
                f"- **our pre_ln >= 1.2x HF GPT-2** (make bench: {_f(ours_vs_peer, 3)}x; profiled "
                f"op-time ratio {_f(tot_t / tot0, 3)}x). Matmuls: ours {_ms(mm0)} ms/step at "
                f"{_f(base['matmul_gflops_per_sec'], 1)} GFLOP/s, torch {_ms(mm_t)} ms at "
                f"{_f(peer['matmul_gflops_per_sec'], 1)} GFLOP/s; standalone GEMMs at the model's "
                f"shapes: torch.mm / jnp.dot = {_f(med, 2)}x (median of {len(sec['gemm'])} shapes). "
                f"Everything else: ours {_ms(rest0)} ms, torch {_ms(rest_t)} ms. With torch's "
                f"matmul time and our other ops we would be at {_f(tot_t / (mm_t + rest0), 2)}x; "
                f"with our matmuls and torch's other ops at {_f(tot_t / (mm0 + rest_t), 2)}x."
            )
        if peak and base.get("matmul_gflops_per_sec"):
            eff = base["matmul_gflops_per_sec"] / peak
            share = mm0 / tot0
            flops_ratio = base["model_flops_per_step"] / base["matmul_flops_per_step"]
            mfu_op = base["model_flops_per_step"] / tot0 / (peak * 1e9)
            out.append(
                f"- **MFU** (pre_ln; make bench: {_pct(bcfg.get('pre_ln', {}).get('mfu'))}). "
                f"MFU over op time = matmul share of time {_pct(share)} x matmul efficiency "
                f"{_pct(eff)} ({_f(base['matmul_gflops_per_sec'], 1)} of {_f(peak, 1)} GFLOP/s "
                f"at 2048²) x model/executed matmul FLOPs {_f(flops_ratio, 3)} = {_pct(mfu_op)}. "
                f"With zero non-matmul time MFU would be {_pct(eff * flops_ratio)} (the step's "
                f"GEMMs, M = {sec['gemm'][0]['M']} tokens, relative to the 2048² peak); the "
                f"non-matmul {_pct(1 - share)} of the step is what separates the two."
            )
    return out


def render(prof: dict, bench: dict | None) -> str:
    m = prof["machine"]
    v = m["versions"]
    lines = [
        "# Step profiles and bounds",
        "",
        f"Regenerated by `{prof['command'].strip()}` (benchmarks/profile_step.py); do not edit by "
        "hand. Times are per train step, float32, one XLA CPU device using all cores; torch uses "
        "all cores too. Op times are *self* times summed over ops; they are serial here (their sum "
        "is close to the traced step time), so shares are shares of the step.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores; jax {v.get('jax')}, torch {v.get('torch')}, "
        f"transformers {v.get('transformers')}; date {m['date']}; wall {prof['wall_time_s']:.0f} s",
        f"- Load average before {prof['load_average_before']}, after {prof['load_average_after']}",
        f"- Host allocator: `--malloc={prof['malloc']}` "
        + (
            "(glibc keeps freed memory mapped: trainloop/host_alloc.py, as in `make bench`)"
            if prof["malloc"] == "keep"
            else "(glibc defaults: XLA's temp buffer is mmapped and page-faulted every step)"
        ),
        f"- Rounds: {prof['rounds']}; per round every config runs one untimed-for-profile step and "
        "one traced step, round-robin (the order rotates); each op's time is its median over rounds",
        "",
    ]
    if "peak_2048" in prof:
        p = prof["peak_2048"]
        lines += [
            f"Matmul peak, 2048² float32 in this run: XLA `jnp.dot` {p['xla_gflops']:.1f} GFLOP/s, "
            f"`torch.mm` {p['torch_gflops']:.1f} GFLOP/s (torch / XLA {p['torch_over_xla']:.2f}).",
            "",
        ]
    for size, sec in prof["sizes"].items():
        lines += [f"## size={size}", "", "ms per step (share of the summed op time):", ""]
        lines += breakdown_table(sec) + [""]
        if "pre_ln" in sec["jax"]:
            lines += ["Top ops of pre_ln (XLA):", ""] + top_ops_table(sec["jax"]["pre_ln"]) + [""]
        if sec.get("peer"):
            lines += ["Top ops of HF GPT-2 (torch self CPU time):", ""]
            lines += ["| op | category | ms/step | calls/step |", "|---|---|---|---|"]
            for o in sec["peer"]["top_ops"][:10]:
                lines.append(
                    f"| `{o['name']}` | {o['category']} | {_ms(o['seconds_per_step'])} | "
                    f"{o['calls_per_step']:.0f} |"
                )
            lines.append("")
        lines += ["GEMMs at this size's shapes (median of repeats, interleaved):", ""]
        lines += gemm_table(sec["gemm"]) + [""]
    lines += [
        "## Bounds of the throughput targets",
        "",
        "Measured ratios are from benchmarks/results.json (`make bench`); the decomposition is from "
        "the profiles above.",
        "",
    ]
    lines += bounds(prof, bench) + [""]
    return "\n".join(lines)

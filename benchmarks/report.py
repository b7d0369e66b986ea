"""Target checks and the RESULTS.md rendering of a benchmark results dict (see benchmarks/run.py)."""

from __future__ import annotations

import math

# (description, threshold) of each target; the check functions below read results.json fields.
TARGETS = {
    "sas_p_speed": ("SAS-P tokens/s >= 1.15x Pre-LN (each size)", 1.15),
    "sas_speed": ("SAS tokens/s >= 1.08x Pre-LN (each size)", 1.08),
    "param_formula": ("parameter counts equal the spec §5 formula (every block, size)", None),
    "peer": ("our Pre-LN >= 1.2x HF GPT-2 PyTorch tokens/s (same config)", 1.2),
    "linear_tf": ("linear_tf Setting-1 protocol >= 10x faster than the PyTorch loop", 10.0),
    "mfu_medium": ("MFU >= 50% of the measured matmul peak at size=medium (Pre-LN)", 0.5),
    "compile_depth": ("compile time at 72 layers <= 1.5x at 18 layers", 1.5),
}


def _status(values: list[float], threshold: float, higher_is_better: bool = True) -> str:
    if not values or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return "not measured"
    ok = all((v >= threshold) if higher_is_better else (v <= threshold) for v in values)
    return "hit" if ok else "missed"


def targets(results: dict) -> dict:
    """{target: {description, values, status}} from a results dict (missing sections: not measured)."""
    dec = results.get("decoder", {})
    out = {}

    def ratio_of(block):
        return {
            size: sec["configs"][block]["tokens_per_sec_ratio"]
            for size, sec in dec.items()
            if block in sec["configs"] and "tokens_per_sec_ratio" in sec["configs"][block]
        }

    for key, block in (("sas_p_speed", "sas_p"), ("sas_speed", "sas")):
        vals = ratio_of(block)
        desc, thr = TARGETS[key]
        out[key] = dict(description=desc, values=vals, status=_status(list(vals.values()), thr))

    exact = {
        f"{size}/{name}": r["analytic"]["n_params_excl_gains"]
        == r["analytic"]["n_params_spec_formula"]
        for size, sec in dec.items()
        for name, r in sec["configs"].items()
        if "analytic" in r
    }
    out["param_formula"] = dict(
        description=TARGETS["param_formula"][0],
        values=exact,
        status=("hit" if all(exact.values()) else "missed") if exact else "not measured",
    )

    peer = {size: sec["ours_vs_peer"] for size, sec in dec.items() if "ours_vs_peer" in sec}
    out["peer"] = dict(
        description=TARGETS["peer"][0],
        values=peer,
        status=_status(list(peer.values()), TARGETS["peer"][1]),
    )

    lin = results.get("linear_tf") or {}
    speed = [lin["speedup"]] if "speedup" in lin else []
    out["linear_tf"] = dict(
        description=TARGETS["linear_tf"][0],
        values={"speedup": speed[0]} if speed else {},
        status=_status(speed, TARGETS["linear_tf"][1]),
    )

    mfu = {}
    if "medium" in dec and "pre_ln" in dec["medium"]["configs"]:
        mfu = {"medium/pre_ln": dec["medium"]["configs"]["pre_ln"].get("mfu")}
    out["mfu_medium"] = dict(
        description=TARGETS["mfu_medium"][0],
        values=mfu,
        status=_status(list(mfu.values()), TARGETS["mfu_medium"][1]),
    )

    comp = results.get("compile") or {}
    cvals = [comp["ratio_72_vs_18"]] if "ratio_72_vs_18" in comp else []
    out["compile_depth"] = dict(
        description=TARGETS["compile_depth"][0],
        values={"ratio": cvals[0]} if cvals else {},
        status=_status(cvals, TARGETS["compile_depth"][1], higher_is_better=False),
    )
    return out


# ----------------------------------------------------------------------------- markdown


def _f(x, fmt="{:.2f}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fmt.format(x)


def _mb(x) -> str:
    return "–" if not x else f"{x / 2**20:.0f}"


def _decoder_table(size: str, sec: dict) -> list[str]:
    lines = [
        "| block | params | params / pre_ln | step ms (median) | tokens/s | tokens/s / pre_ln "
        "| GFLOP/step analytic (XLA) | GFLOP/s | MFU | compile s | XLA temp MB | RSS Δ MB "
        "| page faults / step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sec["configs"].items():
        if name == "hf_gpt2_torch":
            continue
        xla = r.get("xla_flops_per_step")
        mem = r.get("memory", {})
        lines.append(
            f"| {name} | {r['analytic']['n_params']:,} | {_f(r.get('params_ratio'), '{:.3f}')} "
            f"| {_f(1e3 * r['step_time_s'], '{:.0f}')} | {_f(r['tokens_per_sec'], '{:,.0f}')} "
            f"| **{_f(r.get('tokens_per_sec_ratio'), '{:.3f}')}** "
            f"| {r['flops_per_step'] / 1e9:.1f} ({_f(None if xla is None else xla / 1e9, '{:.1f}')}) "
            f"| {_f(r.get('model_flops_per_sec', 0) / 1e9, '{:.1f}')} "
            f"| {_f(100 * r.get('mfu', math.nan), '{:.0f}%')} | {r['compile_time_s']:.1f} "
            f"| {_mb(mem.get('xla', {}).get('temp_size_in_bytes'))} "
            f"| {_mb(mem.get('host_rss_delta_bytes'))} "
            f"| {_f(r.get('page_faults_per_step'), '{:,.0f}')} |"
        )
    return lines


def render(results: dict) -> str:
    mach = results["machine"]
    v = mach["versions"]
    s = results["settings"]
    L = [
        "# Benchmark results",
        "",
        "Regenerated by `make bench` (`benchmarks/run.py`); do not edit by hand. **Ratios are the "
        "numbers to quote**; absolute numbers hold only for the machine below, which is shared with "
        "other jobs (see the load average): treat them as noisy.",
        "",
        "## Machine and run",
        "",
        f"- Command: `{results['command']}` (mode `{results['mode']}`), wall time "
        f"{results.get('wall_time_s', 0):.0f} s, date {mach['date']}",
        f"- CPU: {mach['cpu']}, {mach['cores']} cores; JAX platform {mach['platform']} "
        f"({mach['num_devices']} device(s))",
        f"- Load average (1/5/15 min) before: {results['load_average_before']}, after: "
        f"{results.get('load_average_after')}",
        f"- Versions: python {mach['python']}, "
        + ", ".join(f"{k} {v[k] or 'not installed'}" for k in v),
        f"- Protocol: per size every block is compiled, warmed up ({s['warmup']} step(s)), then "
        f"timed round-robin: {s['rounds']} rounds x {s['steps_per_round']} steps "
        f"({s.get('peer_steps_per_round', s['steps_per_round'])} for the PyTorch peer; block order "
        "rotated each round). Step time = median over all timed steps; **ratios to pre_ln are "
        "paired per round** (median over rounds of pre_ln's round-median step time / the block's), "
        "so load drifting between rounds cancels. float32, one XLA CPU device using all cores; "
        "torch uses `torch.set_num_threads(cores)`.",
        "- FLOPs: analytic 6·N_matmul·tokens + 12·L·T·d·tokens (attention over the full T×T) is used "
        "for GFLOP/s and MFU; XLA's `cost_analysis()` is in parentheses and undercounts scanned "
        "layers (a `while` body is counted once). MFU is against the median of a 2048×2048 float32 "
        "`jnp.dot` timed between the rounds.",
        "- Memory: `XLA temp` is the compiled step's temporary buffers (memory_analysis); `RSS Δ` is "
        "the host resident-set growth while building and warming up that config (CPU); page faults "
        "are the process's minor faults per timed step.",
        _malloc_line(results.get("malloc")),
        "",
    ]
    for size, sec in results.get("decoder", {}).items():
        cfg = next(iter(sec["configs"].values()))
        L += [
            f"## Decoder train step, size={size}",
            "",
            f"batch {cfg['batch_size']} x seq {cfg['seq_len']}"
            + (f", {cfg['num_layers']} layers x {cfg['width']}" if "num_layers" in cfg else "")
            + f"; matmul peak {sec['peak']['gflops_per_sec']:.1f} GFLOP/s "
            f"({sec['peak']['samples']} samples).",
            "",
        ]
        L += _decoder_table(size, sec)
        peer = sec["configs"].get("hf_gpt2_torch")
        if peer:
            base = sec["configs"].get("pre_ln", {})
            L += [
                "",
                f"Peer (same rounds): HF `GPT2LMHeadModel` (transformers {peer['transformers']}, "
                f"torch {peer['torch']}, {peer['threads']} threads, attention "
                f"`{peer['attn_implementation']}`), {peer['n_params']:,} params: "
                f"{peer['tokens_per_sec']:,.0f} tokens/s ({1e3 * peer['step_time_s']:.0f} ms/step); "
                f"our pre_ln {base.get('tokens_per_sec', math.nan):,.0f} tokens/s -> "
                f"**{_f(sec.get('ours_vs_peer'))}x**.",
            ]
        elif sec.get("peer_skipped"):
            L += ["", f"Peer: {sec['peer_skipped']}"]
        L.append("")

    lin = results.get("linear_tf")
    if lin:
        L += [
            "## linear_tf: Setting-1 protocol (2 optimisers x 6 seeds x 10,000 steps, B=1000)",
            "",
        ]
        L += ["| implementation | measured | full protocol (extrapolated) |", "|---|---|---|"]
        jx = lin.get("jax")
        if jx:
            L.append(
                f"| JAX sweep runner (one program, vmapped runs) | {jx['steps']} steps in "
                f"{jx['seconds']:.1f} s | {jx['extrapolated_full_s']:.0f} s |"
            )
            if lin.get("jax_step"):
                L.append(
                    f"| JAX single jitted step (one run) | {lin['jax_step']['median_ms']:.1f} ms "
                    "median | – |"
                )
        else:
            L.append(f"| JAX | {lin.get('todo', 'not measured')} | – |")
        th = lin.get("torch")
        if th:
            per = th["per_optimizer"]
            L.append(
                "| PyTorch plain loop (runs sequential) | "
                + ", ".join(f"{k} {v['median_step_ms']:.1f} ms/step" for k, v in per.items())
                + f" | {th['extrapolated_full_s']:.0f} s |"
            )
            L += [
                "",
                th["note"]
                + " JAX extrapolation: "
                + (jx or {}).get("extrapolation", "linear in steps (incl. compile)")
                + ".",
            ]
        else:
            L.append(f"| PyTorch | {lin.get('torch_skipped', 'not measured')} | – |")
        if "speedup" in lin:
            L += [
                "",
                f"Speed-up of the JAX protocol over the PyTorch loop: **{lin['speedup']:.1f}x**.",
            ]
        L.append("")

    comp = results.get("compile")
    if comp:
        L += ["## Compile time vs depth (scan over layers, abstract shapes)", ""]
        L += ["| config | layers | lower s | compile s | total s |", "|---|---|---|---|---|"]
        for key in ("deep18", "deep"):
            c = comp[key]
            L.append(
                f"| {c['block']} {key} | {c['num_layers']} | {c['lower_time_s']:.1f} "
                f"| {c['compile_time_s']:.1f} | {c['total_s']:.1f} |"
            )
        samples = comp["deep"].get("total_s_samples")
        if samples and len(samples) > 1:
            L += [
                "",
                "Each config compiled "
                f"{len(samples)} times, alternating; the fastest is kept (samples: "
                + "; ".join(
                    f"{k} " + ", ".join(f"{x:.1f}" for x in comp[k]["total_s_samples"])
                    for k in ("deep18", "deep")
                )
                + " s).",
            ]
        L += ["", f"72 / 18 layers: **{comp['ratio_72_vs_18']:.2f}x**.", ""]

    L += ["## Targets", "", "| target | measured | status |", "|---|---|---|"]
    for t in results.get("targets", {}).values():
        vals = ", ".join(
            f"{k}: {v}" if isinstance(v, bool) else f"{k}: {_f(v, '{:.3g}')}"
            for k, v in t["values"].items()
        )
        if t["description"].startswith("parameter"):
            vals = f"{sum(t['values'].values())}/{len(t['values'])} exact"
        L.append(f"| {t['description']} | {vals or '–'} | {t['status']} |")
    L += [
        "",
        "What bounds each missed target (per-op profiles of our step and of HF GPT-2, GEMM "
        "efficiency at the model's shapes): benchmarks/PROFILE.md, regenerated by "
        "`python benchmarks/profile_step.py` after this run.",
        "",
    ]
    return "\n".join(L)


def _malloc_line(malloc: dict | None) -> str:
    if not malloc:
        return "- Host allocator: glibc defaults."
    if malloc.get("applied"):
        return (
            "- Host allocator: glibc keeps freed memory mapped (one arena, no mmap, no trimming; "
            "trainloop/host_alloc.py), process-wide, the PyTorch peer included; without it XLA's "
            "per-step temporary buffer is mmapped and page-faulted in anew every step "
            "(`--malloc=default`)."
        )
    return f"- Host allocator: glibc defaults (`--malloc={malloc.get('requested')}`)."

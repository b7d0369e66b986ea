"""Where the decoder train step's time goes; writes benchmarks/profile.json and PROFILE.md.

  .venv/bin/python benchmarks/profiler.py                          # small + medium, ~3-4 min
  .venv/bin/python benchmarks/profiler.py --sizes=small --blocks=pre_ln,sas_p --no-peer

1. Our compiled step (benchmarks/decoder.py, the step `make bench` times) traced with `jax.profiler`:
   XLA's CPU runtime records one event per executed HLO instruction (nested inside `while` loops);
   self times per instruction are grouped by what the instruction runs, read from the optimised HLO
   text (fused contents, `op_name`, and the Python stack of its source):
     matmul          dots (YNNPACK `ynn_fusion`s included)      zero-fill   broadcasts of constants
     copy/slice      data movement only (scan stacking, carries) loop control while/call/conditional
     layernorm       from `Norm.__call__`                         attention   softmax and shaped terms
     loss            `weighted_cross_entropy`                     optimizer   outside the autodiff
     mlp activation  from `MLP`                                   other       the rest
2. HF GPT-2 (benchmarks/torch_peers.py) under `torch.profiler`: self CPU time per aten op, same buckets.
3. GEMMs at the model's shapes, `jnp.dot` vs `torch.mm`, interleaved, float32, all cores.
4. Bounds: for each throughput target of RESULTS.md, what limits it (from 1-3 and results.json).
Each config is traced once per round, round-robin; an op's time is its median over rounds.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import math
import os
import re
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from benchmarks.profile_report import CATEGORIES, render  # noqa: E402
from trainloop import host_alloc  # noqa: E402  (no jax: must run before jax starts)

BATCH = {"small": 4, "medium": 1}  # as in `make bench`
_MOVE = {"copy", "dynamic-slice", "dynamic-update-slice", "slice", "transpose", "concatenate",
         "pad", "bitcast", "reshape", "tuple", "get-tuple-element", "parameter", "constant",
         "broadcast", "iota", "convert"}  # fmt: skip
_FILL = {"broadcast", "constant", "parameter", "bitcast", "reshape"}
_INSTR = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) ([a-z][a-z0-9\-]*)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY )?%(\S+) \(.*\{$")
_TABLES = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")


def log(msg: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return math.nan if not n else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


# ----------------------------------------------------------------------------- XLA trace + HLO


def op_self_times(trace_dir: str) -> tuple[dict[str, float], dict[str, int]]:
    """Self time (s) and execution count of every HLO instruction in a `jax.profiler` trace."""
    from jax.profiler import ProfileData

    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    if not files:
        raise RuntimeError(f"no xplane.pb under {trace_dir}")
    total, count = collections.Counter(), collections.Counter()
    for plane in ProfileData.from_file(files[0]).planes:
        for line in plane.lines:
            evs = sorted(
                ((e.start_ns, e.duration_ns, e.name) for e in line.events
                 if any(k == "hlo_op" for k, _ in e.stats)),
                key=lambda e: (e[0], -e[1]),
            )  # fmt: skip
            own, stack = [d for _, d, _ in evs], []
            for i, (start, _, _) in enumerate(evs):
                while stack and evs[stack[-1]][0] + evs[stack[-1]][1] <= start:
                    stack.pop()
                if stack:  # nested in the enclosing op (a while body): not the parent's own time
                    own[stack[-1]] -= evs[i][1]
                stack.append(i)
            for (_, _, name), s in zip(evs, own, strict=True):
                total[name] += s * 1e-9
                count[name] += 1
    return dict(total), dict(count)


def _ints(pattern: str, text: str) -> list[int]:
    m = re.search(pattern, text)
    return [int(x) for x in m.group(1).split(",") if x] if m else []


def _dims(shape: str) -> list[int]:
    """Dimensions of an HLO array shape such as 'f32[64,32]{1,0}'."""
    return _ints(r"^\w+\[([0-9,]*)\]", shape)


class HloIndex:
    """Instructions, fused computations and source stacks of an optimised HLO module (its text)."""

    def __init__(self, text: str):
        self.instr: dict[str, dict] = {}
        self.comps: dict[str, list[str]] = collections.defaultdict(list)
        self.tables: dict[str, dict[int, str]] = {t: {} for t in _TABLES}
        section = comp = None
        for line in text.splitlines():
            if line in _TABLES:
                section = line
            elif section is not None:
                key, _, val = line.strip().partition(" ")
                if key.isdigit():
                    self.tables[section][int(key)] = val.strip().strip('"')
                else:
                    section = None
            elif m := _COMP.match(line):
                comp = m.group(1)
            elif m := _INSTR.match(line):
                name, shape, opcode, rest = m.groups()
                called = re.search(r"(?:calls|body)=%([\w.\-]+)", rest)
                op_name = re.search(r'op_name="([^"]*)"', rest)
                self.instr[name] = dict(
                    opcode=opcode, shape=shape, calls=called and called.group(1),
                    op_name=op_name.group(1) if op_name else "",
                    frame=(_ints(r"stack_frame_id=(\d+)", rest) or [0])[0],
                    operands=re.findall(r"%([\w.\-]+)", rest.split(")", 1)[0]),
                    contract=_ints(r"lhs_contracting_dims=\{([0-9,]*)\}", rest),
                )  # fmt: skip
                self.comps[comp].append(name)

    def functions(self, frame: int) -> set[str]:
        """Python function names on the source stack of a `stack_frame_id`."""
        t, out, seen = self.tables, set(), set()
        while frame and frame in t["StackFrames"] and frame not in seen:
            seen.add(frame)
            entry = t["StackFrames"][frame]
            loc = t["FileLocations"].get(_ints(r"file_location_id=(\d+)", entry)[0], "")
            fn = _ints(r"function_name_id=(\d+)", loc)
            if fn:
                out.add(t["FunctionNames"].get(fn[0], ""))
            frame = _ints(r"parent_frame_id=(\d+)", entry)[0] - 1
        return out

    def fused(self, name: str) -> list[str]:
        """The instruction itself, or for a fusion every instruction it runs (recursively)."""
        ins = self.instr.get(name)
        if ins is None or ins["opcode"] != "fusion" or not ins["calls"]:
            return [name] if ins else []
        return [n for sub in self.comps.get(ins["calls"], []) for n in self.fused(sub)]

    def dot_flops(self, name: str) -> float:
        flops = 0.0
        for n in self.fused(name):
            ins = self.instr[n]
            lhs = self.instr.get(ins["operands"][0]) if ins["operands"] else None
            if ins["opcode"] == "dot" and lhs is not None:
                k = math.prod(_dims(lhs["shape"])[i] for i in ins["contract"])
                flops += 2.0 * math.prod(_dims(ins["shape"])) * k
        return flops

    def categorise(self, name: str) -> str:
        ins = self.instr.get(name)
        if ins is None:
            return "other"
        ops = {self.instr[n]["opcode"] for n in self.fused(name)}
        if ops & {"dot", "convolution"}:
            return "matmul"
        if ins["opcode"] in ("while", "call", "conditional"):
            return "loop control"
        if ops <= _FILL and "broadcast" in ops:
            return "zero-fill"
        if ops <= _MOVE:
            return "copy/slice"
        src = [self.instr[n] for n in [name] + self.fused(name) if self.instr[n]["op_name"]]
        op_name, frame = (src[-1]["op_name"], src[-1]["frame"]) if src else ("", 0)
        funcs = self.functions(frame)
        if "jvp(" not in op_name:
            return "optimizer"
        for cat, fns in (("layernorm", {"Norm.__call__"}), ("loss", {"weighted_cross_entropy"}),
                         ("attention", {"Attention.__call__", "dot_product_attention"}),
                         ("mlp activation", {"MLP.__call__", "MLP.from_hidden"})):  # fmt: skip
            if funcs & fns and not (cat == "attention" and funcs & {"Attention._qkv"}):
                return cat
        return "other"


def breakdown(index: HloIndex, times: dict, counts: dict) -> dict:
    """Per-category seconds per step, and the matmul FLOPs and GFLOP/s."""
    cat_s = dict.fromkeys(CATEGORIES, 0.0)
    mm_flops = 0.0
    for name, t in times.items():
        cat = index.categorise(name)
        cat_s[cat] += t
        mm_flops += index.dot_flops(name) * counts[name] if cat == "matmul" else 0.0
    total = sum(cat_s.values())
    return dict(
        seconds_per_step=cat_s,
        op_seconds_per_step=total,
        matmul_flops_per_step=mm_flops,
        matmul_gflops_per_sec=mm_flops / cat_s["matmul"] / 1e9 if cat_s["matmul"] else None,
    )


# ----------------------------------------------------------------------------- torch


def torch_category(name: str) -> str:
    low = name.lower()
    if low.removeprefix("aten::") in ("mm", "addmm", "bmm", "baddbmm", "addbmm"):
        return "matmul"
    if "scaled_dot_product" in low or ("softmax" in low and "log" not in low):
        return "attention"
    if "layer_norm" in low:
        return "layernorm"
    if "log_softmax" in low or "nll_loss" in low or "cross_entropy" in low:
        return "loss"
    inplace = name.endswith("_") and not any(m in low for m in ("copy_", "fill_", "zero_"))
    if inplace or any(m in low for m in ("_foreach", "optimizer", "adam", "clip", "sqrt", "norm")):
        return "optimizer"  # AdamW's per-tensor updates and the gradient-norm clipping
    if "relu" in low or "threshold" in low:
        return "mlp activation"
    moves = ("copy", "clone", "contiguous", "cat", "split", "slice", "view", "transpose", "aten::t",
             "permute", "expand", "as_strided", "empty", "zero", "fill_", "reshape", "embedding")  # fmt: skip
    if any(m in low for m in moves):
        return "copy/slice"
    return "other" if name.startswith("aten::") else "loop control"  # Python / framework


def trace_torch(peer) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    peer.run(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        peer.step()
    return {e.key: e.self_cpu_time_total * 1e-6 for e in prof.key_averages()}


def torch_breakdown(rounds: list[dict[str, float]], model_cfg, batch: int) -> dict:
    cat_s = dict.fromkeys(CATEGORIES, 0.0)
    for name in set().union(*rounds):
        cat_s[torch_category(name)] += median([r.get(name, 0.0) for r in rounds])
    d, L, F = int(model_cfg.width), int(model_cfg.num_layers), int(model_cfg.d_ff)
    T, V = int(model_cfg.seq_len), int(model_cfg.vocab_size)
    mm_flops = 6 * batch * T * (L * (4 * d * d + 2 * d * F) + d * V)  # fwd, dX, dW
    return dict(
        seconds_per_step=cat_s,
        op_seconds_per_step=sum(cat_s.values()),
        matmul_gflops_per_sec=mm_flops / cat_s["matmul"] / 1e9 if cat_s["matmul"] else None,
    )


# ----------------------------------------------------------------------------- GEMMs


def gemm_shapes(model_cfg, batch: int) -> list[tuple[str, int, int, int]]:
    d, F, V = int(model_cfg.width), int(model_cfg.d_ff), int(model_cfg.vocab_size)
    M = batch * int(model_cfg.seq_len)
    return [("X·W_qk", M, d, 2 * d), ("X·W_v", M, d, d), ("X·W_1", M, d, F), ("H·W_2", M, F, d),
            ("X·Eᵀ (head)", M, d, V), ("dY·E (head dX)", M, V, d), ("Xᵀ·dY (W_1 grad)", d, M, F),
            ("dYᵀ·X (E grad)", V, M, d)]  # fmt: skip


def time_gemms(shapes, repeats: int) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    dot = jax.jit(jnp.dot)
    rows = []
    for label, M, K, N in shapes:
        a, b = (np.random.default_rng(0).standard_normal(s, dtype=np.float32) for s in
                ((M, K), (K, N)))  # fmt: skip
        ja, jb, ta, tb = (
            jax.device_put(a),
            jax.device_put(b),
            torch.from_numpy(a),
            torch.from_numpy(b),
        )
        fns = {
            "xla": lambda ja=ja, jb=jb: jax.block_until_ready(dot(ja, jb)),
            "torch": lambda ta=ta, tb=tb: torch.mm(ta, tb),
        }
        t = {k: [] for k in fns}
        for _ in range(2):  # blocks per library: torch's spinning workers would steal a core
            for k, fn in fns.items():
                fn(), fn()
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    fn()
                    t[k].append(time.perf_counter() - t0)
                time.sleep(0.05)
        g = {k: 2.0 * M * K * N / median(v) / 1e9 for k, v in t.items()}
        rows.append(dict(label=label, M=M, K=K, N=N, xla_gflops=g["xla"],
                         torch_gflops=g["torch"], torch_over_xla=g["torch"] / g["xla"]))  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- run


def profile_size(size: str, blocks: list[str], rounds: int, peer: bool) -> dict:
    import jax

    from benchmarks.decoder import DecoderBench
    from benchmarks.run import jax_to_numpy

    batch = BATCH[size]
    benches = {}
    for block in blocks:
        log(f"{size}/{block}: build + compile")
        benches[block] = DecoderBench(block, size, batch)
        benches[block].warmup(2)
    gpt2, torch_rounds = None, []
    if peer:
        from benchmarks import torch_peers

        first = benches[blocks[0]]
        gpt2 = torch_peers.GPT2Peer(first.model_cfg, jax_to_numpy(first.batch), batch)
        gpt2.warmup(2)
    traces: dict[str, list] = {b: [] for b in blocks}
    for r in range(rounds):
        log(f"{size}: round {r + 1}/{rounds}")
        for block in blocks[r % len(blocks) :] + blocks[: r % len(blocks)]:
            benches[block].run(1)
            with tempfile.TemporaryDirectory() as d:
                jax.profiler.start_trace(d)
                benches[block].step()
                jax.profiler.stop_trace()
                traces[block].append(op_self_times(d))
        if gpt2 is not None:
            torch_rounds.append(trace_torch(gpt2))
    out = {"jax": {}, "peer": None}
    for block, bench in benches.items():
        names = set().union(*(t for t, _ in traces[block]))
        times = {n: median([t.get(n, 0.0) for t, _ in traces[block]]) for n in names}
        counts = {n: max(c.get(n, 0) for _, c in traces[block]) for n in names}
        res = breakdown(HloIndex(bench.compiled.as_text()), times, counts)
        res.update(step_time_s=median(bench.times), model_flops_per_step=bench.analytic["flops"])
        out["jax"][block] = res
    if gpt2 is not None:
        out["peer"] = torch_breakdown(torch_rounds, benches[blocks[0]].model_cfg, batch)
        out["peer"]["step_time_s"] = median(gpt2.times)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="small,medium")
    ap.add_argument("--blocks", default="pre_ln,sas,sas_p")
    ap.add_argument("--rounds", type=int, default=3, help="traced steps per block (round-robin)")
    ap.add_argument("--gemm-repeats", type=int, default=7)
    ap.add_argument("--no-peer", action="store_true", help="skip HF GPT-2 and the torch GEMMs")
    ap.add_argument("--out-dir", default=_HERE)
    ap.add_argument("--results", default=os.path.join(_HERE, "results.json"),
                    help="make-bench results quoted in the bounds")  # fmt: skip
    args = ap.parse_args(argv)
    host_alloc.set_xla_cpu_flags()  # as `make bench` does (jax has not started yet)
    host_alloc.keep_host_memory()

    from benchmarks import machine, torch_peers
    from benchmarks.decoder import decoder_config

    t0 = time.perf_counter()
    peer = not args.no_peer and torch_peers.missing() is None
    out = dict(
        command="python benchmarks/profiler.py " + " ".join(sys.argv[1:] if argv is None else argv),
        machine=machine.machine_info(), load_average_before=machine.load_average(),
        rounds=args.rounds, sizes={},
    )  # fmt: skip
    peak = machine.MatmulPeak()
    blocks = [b for b in args.blocks.split(",") if b]
    for size in [s for s in args.sizes.split(",") if s]:
        sec = profile_size(size, blocks, args.rounds, peer)
        peak.sample(3)
        if peer:
            log(f"{size}: GEMMs at the model's shapes")
            cfg = decoder_config(blocks[0], size, BATCH[size]).model
            sec["gemm"] = time_gemms(gemm_shapes(cfg, BATCH[size]), args.gemm_repeats)
        out["sizes"][size] = sec
    if peer:
        out["peak_2048"] = time_gemms([("2048²", 2048, 2048, 2048)], args.gemm_repeats)[0]
    out["xla_peak_gflops"] = peak.summary()["gflops_per_sec"]
    out["load_average_after"] = machine.load_average()
    out["wall_time_s"] = time.perf_counter() - t0
    bench = None
    if os.path.exists(args.results):
        with open(args.results) as f:
            bench = json.load(f)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "profile.json"), "w") as f:
        json.dump(out, f, indent=1, default=float)
    with open(os.path.join(args.out_dir, "PROFILE.md"), "w") as f:
        f.write(render(out, bench))
    log(f"done in {out['wall_time_s']:.0f} s; wrote profile.json and PROFILE.md")
    return out


if __name__ == "__main__":
    main()

"""Per-op time breakdown of a compiled XLA CPU program, from a `jax.profiler` trace + its HLO text.

XLA's CPU thunk runtime (jaxlib 0.10.2) records one trace event per executed HLO instruction (stat
`hlo_op`), nested inside its `while` loops. `op_self_times` parses the trace (the xplane protobuf via
`jax.profiler.ProfileData`) into *self* times per instruction (a `while` event minus the ops it
ran), and `HloIndex` reads the optimised HLO text of the same executable (`compiled.as_text()`):
opcode, shape, fused computation, `op_name` and the Python stack of every instruction (the text
carries FileNames / FunctionNames / FileLocations / StackFrames tables). `categorise` puts each op
into one bucket:

  matmul            dot / convolution, or a fusion containing one (YNNPACK `ynn_fusion`s)
  zero-fill         broadcasts of a constant: scan output buffers initialised before the loop
  copy/slice        copies, (dynamic-)slices, dynamic-update-slices, transposes, concatenates, pads,
                    and fusions made only of those (scan carries, stacking per-layer values)
  loop control      self time of `while` / `call` / `conditional` (loop bookkeeping)
  layernorm         compute fused from `Norm.__call__`
  attention         softmax / masking / shaped-attention terms from `Attention.__call__` and
                    `jax.nn.dot_product_attention`
  loss              the cross-entropy over the vocabulary (`weighted_cross_entropy`)
  optimizer         everything outside the autodiff (no `jvp(` in op_name): AdamW, clipping, norms
  mlp activation    from `MLP.__call__`
  other             the rest (residual adds, gains, embedding lookup/scatter, ...)

Matmul ops also get their FLOPs (2 x output elements x contracted size) so their achieved GFLOP/s can
be compared with the matmul peak.
"""

from __future__ import annotations

import collections
import glob
import math
import re

CATEGORIES = (
    "matmul",
    "zero-fill",
    "copy/slice",
    "loop control",
    "layernorm",
    "attention",
    "loss",
    "optimizer",
    "mlp activation",
    "other",
)

_MOVE_OPS = {
    "copy",
    "dynamic-slice",
    "dynamic-update-slice",
    "slice",
    "transpose",
    "concatenate",
    "pad",
    "bitcast",
    "reshape",
    "tuple",
    "get-tuple-element",
    "parameter",
    "constant",
    "broadcast",
    "iota",
    "convert",
}
_FILL_OPS = {"broadcast", "constant", "parameter", "bitcast", "reshape"}
_CONTROL_OPS = {"while", "call", "conditional"}

_INSTR = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) ([a-z][a-z0-9\-]*)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY )?%(\S+) \(.*\{$")


def _dims(shape: str) -> list[int]:
    m = re.match(r"^[a-z0-9]+\[([0-9,]*)\]", shape)
    if not m:
        return []
    return [int(x) for x in m.group(1).split(",") if x]


class HloIndex:
    """Instructions, fused computations and source stacks of one optimised HLO module (text)."""

    def __init__(self, text: str):
        self.instr: dict[str, dict] = {}
        self.comps: dict[str, list[str]] = collections.defaultdict(list)
        tables: dict[str, dict[int, str]] = {}
        section, comp = None, None
        for line in text.splitlines():
            if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
                section = line
                tables[section] = {}
                continue
            if section is not None:
                if not line.strip():
                    section = None
                    continue
                key, _, val = line.partition(" ")
                tables[section][int(key)] = val.strip().strip('"')
                continue
            m = _COMP.match(line)
            if m:
                comp = m.group(1)
                continue
            m = _INSTR.match(line)
            if not m:
                continue
            name, shape, opcode, rest = m.groups()
            calls = re.search(r"calls=%([\w.\-]+)", rest)
            body = re.search(r"body=%([\w.\-]+)", rest)
            op_name = re.search(r'op_name="([^"]*)"', rest)
            frame = re.search(r"stack_frame_id=(\d+)", rest)
            operands = re.findall(r"%([\w.\-]+)", rest.split(")", 1)[0])
            self.instr[name] = dict(
                opcode=opcode,
                shape=shape,
                comp=comp,
                calls=calls.group(1) if calls else (body.group(1) if body else None),
                op_name=op_name.group(1) if op_name else "",
                frame=int(frame.group(1)) if frame else 0,
                operands=operands,
                lhs_contract=_parse_set(rest, "lhs_contracting_dims"),
                lhs_batch=_parse_set(rest, "lhs_batch_dims"),
            )
            self.comps[comp].append(name)
        self._tables = tables

    # -- source stacks
    def stack(self, frame: int) -> list[tuple[str, str]]:
        """[(file, function), ...] innermost first, for a `stack_frame_id`."""
        t = self._tables
        frames, locs = t.get("StackFrames", {}), t.get("FileLocations", {})
        files, funcs = t.get("FileNames", {}), t.get("FunctionNames", {})
        out, seen = [], set()
        while frame and frame in frames and frame not in seen:
            seen.add(frame)
            entry = frames[frame]
            loc = int(re.search(r"file_location_id=(\d+)", entry).group(1))
            parent = int(re.search(r"parent_frame_id=(\d+)", entry).group(1)) - 1
            loc_s = locs.get(loc, "")
            f = re.search(r"file_name_id=(\d+)", loc_s)
            fn = re.search(r"function_name_id=(\d+)", loc_s)
            out.append(
                (
                    files.get(int(f.group(1)), "") if f else "",
                    funcs.get(int(fn.group(1)), "") if fn else "",
                )
            )
            frame = parent
        return out

    # -- fused contents
    def opcodes(self, name: str) -> set[str]:
        """Opcodes an instruction executes: a fusion's fused contents (recursively), else its own."""
        ins = self.instr.get(name)
        if ins is None:
            return set()
        if ins["calls"] and ins["opcode"] == "fusion":
            out: set[str] = set()
            for sub in self.comps.get(ins["calls"], []):
                out |= self.opcodes(sub)
            return out
        return {ins["opcode"]}

    def dot_flops(self, name: str) -> float:
        """FLOPs of the dots/convolutions an instruction executes (0 if none; convs unsupported)."""
        ins = self.instr.get(name)
        if ins is None:
            return 0.0
        if ins["opcode"] == "dot":
            out = math.prod(_dims(ins["shape"]))
            lhs = self.instr.get(ins["operands"][0]) if ins["operands"] else None
            if lhs is None:
                return 0.0
            ld = _dims(lhs["shape"])
            k = math.prod(ld[i] for i in ins["lhs_contract"]) if ins["lhs_contract"] else 1
            return 2.0 * out * k
        if ins["opcode"] == "fusion" and ins["calls"]:
            return sum(self.dot_flops(s) for s in self.comps.get(ins["calls"], []))
        return 0.0

    def source_info(self, name: str) -> tuple[str, list[tuple[str, str]]]:
        """(op_name, stack) of an instruction; a fusion without its own falls back to its root."""
        ins = self.instr[name]
        if (not ins["op_name"] or not ins["frame"]) and ins["calls"]:
            for sub in reversed(self.comps.get(ins["calls"], [])):
                s = self.instr[sub]
                if s["op_name"]:
                    return s["op_name"], self.stack(s["frame"])
        return ins["op_name"], self.stack(ins["frame"])

    def categorise(self, name: str) -> str:
        ins = self.instr.get(name)
        if ins is None:
            return "other"
        ops = self.opcodes(name)
        if ops & {"dot", "convolution"}:
            return "matmul"
        if ins["opcode"] in _CONTROL_OPS:
            return "loop control"
        if ops <= _FILL_OPS and "broadcast" in ops:
            return "zero-fill"
        if ops <= _MOVE_OPS:
            return "copy/slice"
        op_name, stack = self.source_info(name)
        funcs = {fn for _, fn in stack}
        files = {f for f, _ in stack}
        if "jvp(" not in op_name:
            return "optimizer"
        if "Norm.__call__" in funcs:
            return "layernorm"
        if "weighted_cross_entropy" in funcs:
            return "loss"
        if "Attention.__call__" in funcs or any(f.endswith("nn/functions.py") for f in files):
            if not ({"Attention._qkv", "Attention._out"} & funcs):
                return "attention"
        if "MLP.__call__" in funcs:
            return "mlp activation"
        return "other"


def _parse_set(rest: str, key: str) -> list[int]:
    m = re.search(key + r"=\{([0-9,]*)\}", rest)
    return [int(x) for x in m.group(1).split(",") if x] if m else []


def op_self_times(trace_dir: str) -> tuple[dict[str, float], dict[str, int]]:
    """Total self time (s) and execution count of every HLO instruction in a trace directory."""
    from jax.profiler import ProfileData

    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    if not files:
        raise RuntimeError(f"no xplane.pb under {trace_dir}")
    data = ProfileData.from_file(files[0])
    total: dict[str, float] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            evs = [
                (e.start_ns, e.duration_ns, e.name)
                for e in line.events
                if any(k == "hlo_op" for k, _ in e.stats)
            ]
            evs.sort(key=lambda e: (e[0], -e[1]))
            stack: list[int] = []
            self_ns = [d for _, d, _ in evs]
            for i, (start, _, _) in enumerate(evs):
                while stack and evs[stack[-1]][0] + evs[stack[-1]][1] <= start:
                    stack.pop()
                if stack:
                    self_ns[stack[-1]] -= evs[i][1]
                stack.append(i)
            for (_, _, name), s in zip(evs, self_ns, strict=True):
                total[name] += s * 1e-9
                count[name] += 1
    return dict(total), dict(count)


def breakdown(index: HloIndex, times: dict[str, float], counts: dict[str, int], steps: int) -> dict:
    """Per-category seconds per step (+ matmul FLOPs), and the top ops."""
    cat_s: dict[str, float] = {c: 0.0 for c in CATEGORIES}
    mm_flops = 0.0
    ops = []
    for name, t in times.items():
        cat = index.categorise(name)
        cat_s[cat] += t / steps
        fl = index.dot_flops(name) * counts[name] / steps if cat == "matmul" else 0.0
        mm_flops += fl
        ins = index.instr.get(name, {})
        ops.append(
            dict(
                name=name,
                category=cat,
                seconds_per_step=t / steps,
                calls_per_step=counts[name] / steps,
                shape=ins.get("shape", ""),
                op_name=ins.get("op_name", ""),
                gflops_per_sec=(fl / (t / steps) / 1e9) if fl and t else None,
            )
        )
    ops.sort(key=lambda o: -o["seconds_per_step"])
    total = sum(cat_s.values())
    return dict(
        seconds_per_step=cat_s,
        share={c: (v / total if total else math.nan) for c, v in cat_s.items()},
        op_seconds_per_step=total,
        matmul_flops_per_step=mm_flops,
        matmul_gflops_per_sec=mm_flops / cat_s["matmul"] / 1e9 if cat_s["matmul"] else None,
        top_ops=ops[:25],
    )

"""Paired A/B timing of decoder train-step variants in one process (each optimisation's before/after).

  .venv/bin/python benchmarks/ab.py --size=medium --block=pre_ln \\
      --variant base --variant 'region:xla.xla_cpu_copy_insertion_use_region_analysis=true'
  .venv/bin/python benchmarks/ab.py --variant base --variant 'optax:optimizer.fused=false'

A variant is `name:setting,setting,...` (the first one is the baseline; `base` alone = no settings):
  xla.<option>=<value>      an XLA compile option of the step (e.g. xla_cpu_use_onednn=true)
  model.<key>=<value>       a model-config override, including the implementation choices of
                            simplified_tf.model_config.IMPLEMENTATIONS (e.g. model.rmsnorm_grad=autodiff,
                            model.cumsum_impl=xla, model.fuse_parallel_inputs=false)
  optimizer.<key>=<value>   an optimizer-config key (e.g. optimizer.fused=false: optax's AdamW chain)
Every variant is built and warmed up, then timed round-robin (order rotated each round); the ratio of
each variant to the baseline is the median over rounds of the paired round-median step times, so load
drifting between rounds cancels. Prints the load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from trainloop import host_alloc  # noqa: E402  (no jax: must run before jax starts)

host_alloc.apply_from_argv(sys.argv, flag="malloc")

from benchmarks.decoder import DecoderBench  # noqa: E402
from benchmarks.machine import load_average, median  # noqa: E402


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_variant(spec: str) -> tuple[str, dict, dict, dict]:
    """'name:k=v,k=v' -> (name, xla options, model overrides, optimizer overrides)."""
    name, _, rest = spec.partition(":")
    parts = {"xla": {}, "model": {}, "optimizer": {}}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        group, _, field = key.partition(".")
        if not eq or group not in parts or not field:
            raise SystemExit(
                f"--variant {spec!r}: {item!r} is none of xla.<option>=v, model.<key>=v, "
                "optimizer.<key>=v"
            )
        parts[group][field] = _value(val)
    return name or "base", parts["xla"], parts["model"], parts["optimizer"]


def build(size, block, batch, variant, warmup: int) -> DecoderBench:
    name, xla, model, optimizer = variant
    bench = DecoderBench(
        block, size, batch, model, compiler_options=xla or None, optimizer_overrides=optimizer
    )
    bench.warmup(warmup)  # the first call traces nothing more: the step is compiled above
    return bench


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="medium")
    ap.add_argument("--block", default="pre_ln")
    ap.add_argument("--batch", type=int, default=0, help="0: make bench's batch for the size")
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--malloc", default="keep", choices=("keep", "default"))
    args = ap.parse_args(argv)
    batch = args.batch or {"small": 4, "medium": 1}.get(args.size, 4)
    variants = [parse_variant(v) for v in args.variant]
    load0 = load_average()
    benches = {v[0]: build(args.size, args.block, batch, v, args.warmup) for v in variants}
    names = list(benches)
    rounds = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            start = len(benches[n].times)
            benches[n].run(args.steps)
            rounds[n].append(median(benches[n].times[start:]))
    base = names[0]
    print(f"{args.block} size={args.size} batch={batch}: {args.rounds} rounds x {args.steps} steps")
    print("| variant | step ms (median) | speed-up vs " + base + " (paired) | XLA temp MB | loss |")
    print("|---|---|---|---|---|")
    for n in names:
        b = benches[n]
        ratio = median([x / y for x, y in zip(rounds[base], rounds[n], strict=True)])
        temp = b.memory.get("temp_size_in_bytes", 0) / 2**20
        print(
            f"| {n} | {1e3 * median(b.times):.1f} | {ratio:.3f} | {temp:.0f} | {b.losses[-1]:.5f} |"
        )
    print(f"load average before {load0}, after {load_average()}; {time.strftime('%F %T')}")


if __name__ == "__main__":
    main()

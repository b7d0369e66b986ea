"""benchmarks/profiler.py: a traced toy program is parsed into per-op self times, categorised from
its HLO (matmul, zero-fill, loop control, ...), and rendered. No timing assertions beyond self times
being non-negative and bounded by the traced wall time."""

import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import profiler  # noqa: E402


def _toy(x_MD, w_LDD):
    """A scan over layers with a matmul, a norm-like reduction and stacked outputs."""

    def body(h, w):
        h = jnp.tanh(h @ w)
        h = h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + 1e-6)
        return h, h

    h, hs = jax.lax.scan(body, x_MD, w_LDD)
    return jnp.sum(h) + jnp.sum(hs)


def test_trace_is_parsed_and_categorised():
    x = jnp.ones((64, 32))
    w = jnp.ones((3, 32, 32)) * 0.01
    fn = jax.jit(jax.grad(_toy, argnums=1))
    compiled = fn.lower(x, w).compile()
    jax.block_until_ready(compiled(x, w))
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(x, w))
        wall = time.perf_counter() - t0
        jax.profiler.stop_trace()
        times, counts = profiler.op_self_times(d)
    index = profiler.HloIndex(compiled.as_text())
    assert times and all(t >= 0 for t in times.values())
    assert sum(times.values()) <= wall * 1.5  # serial ops; self times never double count
    cats = {name: index.categorise(name) for name in times}
    assert set(cats.values()) <= set(profiler.CATEGORIES)
    assert "matmul" in cats.values()
    # the 3 forward + 6 backward 64x32x32 dots, each 2*64*32*32 FLOPs, run inside the loops
    mm_flops = sum(index.dot_flops(n) * counts[n] for n, c in cats.items() if c == "matmul")
    assert mm_flops == 9 * 2 * 64 * 32 * 32
    # every instruction that ran is known to the HLO index, and loops show up as loop control
    assert all(name in index.instr for name in times)
    assert any(index.instr[n]["opcode"] == "while" and c == "loop control" for n, c in cats.items())
    bd = profiler.breakdown(index, times, counts)
    assert abs(sum(bd["seconds_per_step"].values()) - bd["op_seconds_per_step"]) < 1e-12
    assert bd["matmul_flops_per_step"] == mm_flops


def test_stack_frames_resolve_to_python_functions():
    compiled = jax.jit(_toy).lower(jnp.ones((8, 4)), jnp.ones((2, 4, 4))).compile()
    index = profiler.HloIndex(compiled.as_text())
    funcs = set().union(*(index.functions(ins["frame"]) for ins in index.instr.values()))
    assert "_toy.<locals>.body" in funcs or "body" in {f.split(".")[-1] for f in funcs}


def test_report_renders_bounds_from_a_profile_dict():
    cats = {c: 0.0 for c in profiler.CATEGORIES}
    run = lambda mm, rest, flops: dict(  # noqa: E731
        seconds_per_step=dict(cats, matmul=mm, other=rest),
        op_seconds_per_step=mm + rest,
        matmul_flops_per_step=flops,
        matmul_gflops_per_sec=flops / mm / 1e9,
        model_flops_per_step=flops,
        step_time_s=mm + rest,
    )
    prof = dict(
        command="python benchmarks/profiler.py",
        machine=dict(cpu="cpu", cores=2, versions={}, date="today"),
        load_average_before=[0.0],
        load_average_after=[0.0],
        wall_time_s=1.0,
        rounds=1,
        xla_peak_gflops=100.0,
        sizes={
            "small": dict(
                jax={"pre_ln": run(0.6, 0.4, 60e9), "sas_p": run(0.54, 0.4, 54e9)},
                peer=run(0.3, 0.2, 60e9),
                gemm=[
                    dict(
                        label="g",
                        M=8,
                        K=8,
                        N=8,
                        xla_gflops=1.0,
                        torch_gflops=2.0,
                        torch_over_xla=2.0,
                    )
                ],  # fmt: skip
            )
        },
    )
    md = profiler.render(prof, None)
    # pre_ln 1.0 s; sas_p's matmuls shrink to 0.9 x 0.6 = 0.54 -> (0.6 + 0.4) / (0.54 + 0.4)
    assert f"{1.0 / 0.94:.3f}x" in md
    assert "MFU" in md and "## size=small" in md
    # torch matmuls 0.3 s + our other ops 0.4 s vs torch's 0.5 s step
    assert f"{0.5 / 0.7:.2f}x" in md and "HF GPT-2 (torch)" in md

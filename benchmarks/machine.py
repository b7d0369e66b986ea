"""Machine facts and timing helpers shared by the benchmarks.

Everything here is measurement plumbing: CPU model / core count / load average from /proc, package
versions, host memory from /proc/self/status, a median-of-steps timer, and the matmul peak (a large
float32 `jnp.dot` on the benchmark's devices) that MFU is measured against in the same run.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from simplified_tf.repro import provenance
from simplified_tf.repro.provenance import cpu_model  # one reader of /proc/cpuinfo

_HERE = os.path.dirname(os.path.abspath(__file__))

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "transformers")


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str:
    """HEAD's short hash, "+dirty" when tracked files other than the benchmarks' own outputs
    (benchmarks/*.md, *.json, rewritten by the runs themselves) differ from it."""
    return provenance.git_commit(
        os.path.dirname(_HERE), ignore=("benchmarks/*.md", "benchmarks/*.json")
    )


def machine_info() -> dict:
    """Static facts about the machine and software; the load average is recorded separately."""
    devices = jax.devices()
    return dict(
        cpu=cpu_model(),
        cores=os.cpu_count(),
        python=platform.python_version(),
        platform=devices[0].platform,
        device_kind=devices[0].device_kind,
        num_devices=len(devices),
        versions=versions(),
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        commit=git_commit(),
    )


def host_memory() -> dict[str, int]:
    """Current and peak resident set size of this process in bytes (VmRSS / VmHWM)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"rss": out.get("VmRSS", 0), "peak_rss": out.get("VmHWM", 0)}


def device_peak_memory(device=None) -> int | None:
    """Peak bytes in use on an accelerator (None on CPU, where memory_stats() is unavailable)."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return None if not stats else int(stats.get("peak_bytes_in_use", 0))


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn`, each waited on with block_until_ready."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def median(xs) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


class MatmulPeak:
    """FLOP/s of an n x n float32 matmul on the benchmark's device: the MFU denominator.

    `sample(repeats)` adds timings; call it between other measurements so the peak sees the same
    machine load as the models, then read `flops_per_sec` (median over all samples).
    """

    def __init__(self, n: int = 2048, device=None):
        self.n = n
        device = device or jax.devices()[0]
        key_a, key_b = jax.random.split(jax.random.key(0))
        self.a = jax.device_put(jax.random.normal(key_a, (n, n), jnp.float32), device)
        self.b = jax.device_put(jax.random.normal(key_b, (n, n), jnp.float32), device)
        self.fn = jax.jit(jnp.dot)
        jax.block_until_ready(self.fn(self.a, self.b))  # compile + warm-up
        self.times: list[float] = []

    def sample(self, repeats: int = 3) -> None:
        self.times += timed(lambda: self.fn(self.a, self.b), repeats)

    @property
    def flops(self) -> float:
        return 2.0 * self.n**3

    @property
    def flops_per_sec(self) -> float:
        return self.flops / median(self.times)

    def summary(self) -> dict:
        return dict(
            n=self.n,
            samples=len(self.times),
            median_s=median(self.times),
            gflops_per_sec=self.flops_per_sec / 1e9,
        )

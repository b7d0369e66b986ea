"""Host settings for training scripts and benchmarks, applied before jax starts: glibc keeps freed
memory mapped, and XLA's CPU compiler uses region analysis in copy insertion.

Imports nothing from jax on purpose: it must run before jax starts its worker threads (glibc fixes
the arena limit when the second arena is created) and before XLA reads XLA_FLAGS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource

# With the default (coarser) alias analysis, XLA CPU copies every stacked parameter that the layer
# scan reads before updating it in place (one extra read and write of the parameters per step);
# region analysis proves the copies unnecessary. Only the CPU compiler reads this flag.
XLA_CPU_FLAGS = ("--xla_cpu_copy_insertion_use_region_analysis=true",)


def set_xla_cpu_flags() -> None:
    """Appends XLA_CPU_FLAGS to XLA_FLAGS (a flag the user already set keeps the user's value)."""
    flags = os.environ.get("XLA_FLAGS", "")
    extra = [f for f in XLA_CPU_FLAGS if f.split("=")[0] not in flags]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_STATE = {"applied": False}


def keep_host_memory() -> bool:
    """Make glibc malloc keep freed memory instead of returning it to the OS (call before jax starts).

    XLA CPU allocates each execution's temporary buffer (~120-330 MB for the decoder steps here) with
    malloc from a worker thread. Above glibc's mmap threshold (32 MB at most) a thread arena serves
    that with a fresh `mmap` and `free` unmaps it, so every step first-touches the whole buffer again:
    ~31k page faults and ~0.1 s of kernel time per small step. One arena, no mmap and no trimming
    keep the pages mapped across steps (resident memory stays at its high-water mark). The settings
    are process-wide, so the PyTorch peers in the same process get them too. Returns False where
    glibc is not available (then nothing changes).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_ARENA_MAX, 1) == 1
    ok &= mallopt(_M_MMAP_MAX, 0) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _STATE["applied"] = bool(ok)
    return bool(ok)


def applied() -> bool:
    return _STATE["applied"]


def page_faults() -> int:
    """Minor page faults of this process so far (getrusage)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


FLAG = "host_malloc"


def apply_from_argv(argv: list[str], flag: str = FLAG) -> bool:
    """Sets the XLA CPU flags, and applies `keep_host_memory` unless argv asks for
    `--<flag>=default` (either flag form).

    Scripts call this at import time, before flag parsing and before jax creates any thread.
    """
    set_xla_cpu_flags()
    args = list(argv[1:])
    wants_default = f"--{flag}=default" in args or any(
        a == f"--{flag}" and b == "default" for a, b in zip(args, args[1:], strict=False)
    )
    return False if wants_default else keep_host_memory()


def define_flag():
    """The absl flag documenting the switch (its value was already acted on by apply_from_argv)."""
    from absl import flags

    return flags.DEFINE_enum(
        FLAG,
        "keep",
        ["keep", "default"],
        "Host allocator: 'keep' makes glibc keep freed memory mapped (faster CPU steps, resident "
        "memory stays at its peak); 'default' leaves glibc's settings.",
    )

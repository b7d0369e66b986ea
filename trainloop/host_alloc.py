"""Host allocator setting for training scripts and benchmarks: keep freed memory mapped.

Imports nothing from jax on purpose: it must run before jax starts its worker threads, because glibc
fixes the arena limit when the second arena is created.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource

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
    """Applies `keep_host_memory` unless argv asks for `--<flag>=default` (either flag form).

    Scripts call this at import time, before flag parsing and before jax creates any thread.
    """
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

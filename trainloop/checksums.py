"""Checksums of the arrays of a pytree, computed by XLA on the arrays where they live.

Per array, two 32-bit sums of position-keyed, bijectively mixed words (MurmurHash3's finaliser), so
any change of any bit of any element changes the value, and two independent changes cancel with
probability about 2^-64. Integer sums wrap mod 2^32 and do not depend on the reduction order, so
the value is the same on any device layout (saved on 8 devices, restored on 1) and any number of
processes. `trainloop.checkpoint` records them at save time and verifies them at restore.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from trainloop.errors import CheckpointError
from trainloop.optim import path_str
from trainloop.progress import announce


def _fmix32(h):
    """MurmurHash3's finaliser: a bijection on uint32 that spreads every input bit."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _words(x):
    """The array's bytes as a flat uint32 vector (one word per element, two for 64-bit types)."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    x = x.reshape(-1)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    return jax.lax.bitcast_convert_type(x, unsigned).reshape(-1).astype(jnp.uint32)


def _leaf_checksum(x):
    w = _words(x)
    i = jnp.arange(w.shape[0], dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
    a = _fmix32(w ^ _fmix32(i + jnp.uint32(1)))
    b = _fmix32(w + _fmix32(i ^ jnp.uint32(0x5BD1E995)))
    return jnp.stack([jnp.sum(a, dtype=jnp.uint32), jnp.sum(b, dtype=jnp.uint32)])


_tree_checksum_fn = jax.jit(lambda tree: jax.tree_util.tree_map(_leaf_checksum, tree))


def _host_value(x) -> np.ndarray:
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    return np.asarray(x.addressable_shards[0].data)  # replicated result of a multi-host jit


def tree_checksums(tree) -> dict[str, str]:
    """{leaf path: 16 hex digits} for every array of `tree` (device arrays, any sharding)."""
    sums = _tree_checksum_fn(tree)
    leaves = jax.tree_util.tree_leaves_with_path(sums)
    return {path_str(p): "".join(f"{int(v):08x}" for v in _host_value(x)) for p, x in leaves}


_warned_unverifiable: set[str] = set()


def verify_checksums(tree, meta: dict, step: int, directory: str) -> None:
    """Raises CheckpointError unless every array of `tree` (all or part of a restored state, paths
    relative to the state's root) matches the checksum recorded at save time."""
    recorded = meta.get("checksums")
    if recorded is None:
        key = f"{directory}/{step}"
        if key not in _warned_unverifiable:
            _warned_unverifiable.add(key)
            announce(
                f"WARNING: checkpoint step {step} in {directory} records no checksums (written by "
                "an older version of this code): its arrays cannot be verified."
            )
        return
    actual = tree_checksums(tree)
    bad = sorted(k for k, v in actual.items() if recorded.get(k) != v)
    if bad:
        raise CheckpointError(
            f"checksum mismatch in {len(bad)} of {len(actual)} arrays ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): the data on disk is not what was saved"
        )

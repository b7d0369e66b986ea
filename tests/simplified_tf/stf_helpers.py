"""Shared helpers for the simplified_tf tests: tiny models, tokens, a small text corpus."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from simplified_tf.model_config import model_config
from simplified_tf.models import build_model


def perturb(model: nnx.Module, seed: int = 0, scale: float = 0.1) -> nnx.Module:
    """Adds N(0, scale^2) noise to every nnx.Param in place (so zero-init queries, unit gains etc.
    no longer make the model trivially the identity) and returns the model."""
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [
        x + scale * jax.random.normal(k, x.shape, x.dtype)
        for x, k in zip(leaves, keys, strict=True)
    ]
    nnx.update(model, jax.tree.unflatten(treedef, noisy))
    return model


def tiny(block: str, kind: str = "decoder", seed: int = 0, noisy: bool = True, **overrides):
    """A tiny model; by default with all params perturbed so no init symmetry hides bugs.

    (Eager init is used on purpose: its per-op compile cache is shared by all tests, which is
    cheaper than compiling one init program per config.)"""
    model = build_model(model_config(block, "tiny", kind, **overrides), rngs=nnx.Rngs(seed))
    return perturb(model, seed) if noisy else model


def tokens(batch: int, length: int, vocab: int = 256, seed: int = 1) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (batch, length), 0, vocab)


def padded_valid(batch: int, length: int, lengths) -> jax.Array:
    return jnp.arange(length)[None, :] < jnp.asarray(lengths)[:, None]


WORDS = "def return self import class for while if else None True value data index".split()


def write_corpus(
    root, files: int, *, seed: int = 0, lines=(5, 60), words=(2, 9), name: str = "m{i}.py"
):
    """Writes `files` small pseudo-Python files of random WORDS into the folder `root` (a Path,
    created if needed) and returns it. `lines` is a line count, or a (low, high) range drawn per
    file; `words` the (low, high) range of words per line; `name` the file-name pattern."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(files):
        n = lines if isinstance(lines, int) else rng.integers(*lines)
        text = [" ".join(rng.choice(WORDS, rng.integers(*words))) for _ in range(n)]
        (root / name.format(i=i)).write_text("\n".join(text) + "\n")
    return root

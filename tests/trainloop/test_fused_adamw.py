"""The fused AdamW against optax's chain (clip -> adamw with masks, frozen leaves) on a real tree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simplified_tf import recipes
from simplified_tf.params import model_fns
from trainloop import optim
from trainloop.checkpoint import structure_signature


def _tx(opt, steps, params, fused: bool):
    opt = opt.copy_and_resolve_references()
    opt.fused = fused
    return optim.make_optimizer(opt, steps, params)[0]


@pytest.mark.parametrize("frozen", [False, True])
def test_fused_adamw_matches_optax_chain(frozen):
    # sas with a fixed orthogonal W_init: the tree has decayed matrices, undecayed gains, norm
    # scales and biases, and (frozen=True) fixed leaves that the frozen rules must leave untouched.
    model = {"value": "reparam", "reparam_init": "orth", "reparam_train": False} if frozen else {}
    cfg = recipes.decoder_config("sas", "tiny", batch=2, model=model)
    opt = cfg.optimizer
    opt.warmup_fraction, opt.clip_norm = 0.5, 1.0
    params = model_fns(cfg.model).init(jax.random.key(0))
    frozen_mask = optim.path_mask(params, opt.frozen)
    assert any(jax.tree_util.tree_leaves(frozen_mask)) == frozen
    ref, fused = _tx(opt, 4, params, False), _tx(opt, 4, params, True)

    state_ref = ref.init(params)
    state_fused = fused.init(params)
    assert structure_signature(state_ref) == structure_signature(state_fused)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    p_ref = p_fused = params
    # Gradient scales: clipped (norm >> 1), unclipped, clipped again.
    for step, scale in enumerate((3.0, 1e-3, 0.5)):
        grads = jax.tree_util.tree_unflatten(
            treedef,
            [scale * jax.random.normal(jax.random.fold_in(k, step), x.shape) for k, x in
             zip(keys, leaves, strict=True)],
        )  # fmt: skip
        u_ref, state_ref = jax.jit(ref.update)(grads, state_ref, p_ref)
        u_fused, state_fused = jax.jit(fused.update)(grads, state_fused, p_fused)
        for a, b in zip(jax.tree_util.tree_leaves((u_ref, state_ref)),
                        jax.tree_util.tree_leaves((u_fused, state_fused)), strict=True):  # fmt: skip
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=1e-9)
        p_ref = jax.tree_util.tree_map(jnp.add, p_ref, u_ref)
        p_fused = jax.tree_util.tree_map(jnp.add, p_fused, u_fused)
    # Frozen leaves never move; undecayed leaves with zero gradient would not move either.
    for p0, p1, f in zip(leaves, treedef.flatten_up_to(p_fused),
                         treedef.flatten_up_to(frozen_mask), strict=True):  # fmt: skip
        if f:
            np.testing.assert_array_equal(np.asarray(p1), np.asarray(p0))
    assert structure_signature(state_ref) == structure_signature(state_fused)

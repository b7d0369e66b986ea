"""Acceptance point 1 (slow): one-layer Setting-1 training reaches the closed-form optimum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linear_tf import data, model, sweep, theory


@pytest.mark.slow
def test_one_layer_setting1_reaches_optimum():
    mspec = model.ModelSpec(layers=1)
    dspec = data.make_data_spec("1")
    cfg = sweep.SweepConfig(steps=3000, batch=1000, clip=1.0, snapshot_stride=500)
    res = sweep.run_sweep(mspec, dspec, {"adam": [0.005]}, seeds=(0,), cfg=cfg)
    params = jax.tree_util.tree_map(lambda a: a[0, 0], res.groups["adam"].final_params)
    big = data.sample(dspec, jax.random.key(123), 50_000)
    loss = float(model.mse_loss(mspec, params, big))
    f_star = theory.isotropic_f_star(5, 20)
    c0 = np.asarray(params["attn"]["bc"][0, 0, 1])
    print(f"one-layer Setting 1: loss {loss:.4f} (f* = {f_star:.4f}); diag(C_0) = {np.diag(c0)}")
    print(f"max |offdiag(C_0)| = {np.abs(c0 - np.diag(np.diag(c0))).max():.4f}")
    assert loss == pytest.approx(f_star, rel=0.02)
    np.testing.assert_allclose(c0, -theory.isotropic_a_star(5, 20) * np.eye(5), atol=0.04)
    # The fixed 1000-prompt eval batch is itself a sample: its loss at the optimum is f* ± a few %.
    print(
        f"fixed eval batch (1000 prompts) loss: {float(res.groups['adam'].eval_loss[0, 0, -1]):.4f}"
    )
    assert jnp.isfinite(loss)

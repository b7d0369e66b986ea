"""Orthogonal init: Haar-orthogonal matrices, and jitted inits with several batched QRs terminate.

Regression test: with jaxlib's LAPACK QR, two vmapped orthogonal inits in one jitted program
(v_skipinit's W_V and W_P of the stacked layers) deadlocked on a 2-core CPU. It runs in a subprocess
so a regression fails with a timeout instead of hanging the test run.
"""

import os
import subprocess
import sys

import numpy as np

PROGRAM = """
import jax, numpy as np
from simplified_tf.layers import orthogonal

def init(key):
    k1, k2 = jax.random.split(key)
    w_v = jax.vmap(lambda k: orthogonal(k, 96))(jax.random.split(k1, 5))
    w_p = jax.vmap(lambda k: orthogonal(k, 96))(jax.random.split(k2, 5))
    return w_v, w_p

w_v, w_p = jax.jit(init)(jax.random.key(0))
for w in (w_v, w_p):
    w = np.asarray(w)
    eye = np.einsum("lij,lkj->lik", w, w)
    assert np.abs(eye - np.eye(96)).max() < 1e-5, np.abs(eye - np.eye(96)).max()
assert not np.allclose(np.asarray(w_v)[0], np.asarray(w_v)[1])  # independent per layer
print("ORTH_OK")
"""


def test_jitted_batched_orthogonal_inits_terminate_and_are_orthogonal():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0 and "ORTH_OK" in run.stdout, run.stderr[-2000:]


def test_orthogonal_signs_make_the_distribution_haar():
    from simplified_tf.layers import _haar_orthogonal

    # Without the sign fix, QR of a Gaussian gives diag(R) > 0 conventions that bias Q's diagonal.
    rng = np.random.default_rng(0)
    qs = _haar_orthogonal(rng.normal(size=(4000, 3, 3)))
    np.testing.assert_allclose(qs.mean(axis=0), np.zeros((3, 3)), atol=0.05)
    np.testing.assert_allclose(
        np.einsum("bij,bkj->bik", qs, qs), np.broadcast_to(np.eye(3), qs.shape), atol=1e-5
    )

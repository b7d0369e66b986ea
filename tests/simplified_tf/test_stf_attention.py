"""Shaped attention: identity at init, efficient == materialised reference, masks, decoding."""

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from stf_helpers import padded_valid, perturb, tiny

from simplified_tf import attention, layers
from simplified_tf.model_config import model_config
from simplified_tf.models import build_model

D, H = 64, 2


def _rand_qkv(seed, B=2, T=9, K=D // H):
    ks = jax.random.split(jax.random.key(seed), 3)
    return [jax.random.normal(k, (B, T, H, K)) for k in ks]


def _rand_gains(seed):
    return list(jax.random.uniform(jax.random.key(seed), (3, H), minval=0.3, maxval=1.7))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("terms", ["all", "no_identity", "no_centre"])
def test_efficient_matches_materialised(causal, padded, terms):
    q, k, v = _rand_qkv(0)
    alpha, beta, gamma = _rand_gains(1)
    alpha = None if terms == "no_identity" else alpha
    gamma = None if terms == "no_centre" else gamma
    valid = padded_valid(2, 9, [9, 5]) if padded else None
    kw = dict(alpha=alpha, beta=beta, gamma=gamma, causal=causal, valid_BT=valid)
    eff = attention.shaped_efficient(q, k, v, **kw)
    ref = attention.shaped_reference(q, k, v, **kw)
    if valid is not None:  # the module zeroes padded query rows; compare the valid rows
        eff = eff * valid[:, :, None, None]
        ref = ref * valid[:, :, None, None]
    chex.assert_trees_all_close(eff, ref, atol=2e-5, rtol=2e-5)


def test_centring_mean_matches_matrix_rows():
    _, _, v = _rand_qkv(3)
    valid = padded_valid(2, 9, [9, 4])
    for causal in (True, False):
        C = attention.centring_matrix(9, causal=causal, valid_BT=valid)
        want = jnp.einsum("bts,bshk->bthk", C, v)
        got = attention.centring_mean(v, causal=causal, valid_BT=valid)
        chex.assert_trees_all_close(got, want, atol=1e-5)
    # Causal rows average over j <= i: row i of C sums to 1 and has i + 1 equal entries.
    C = attention.centring_matrix(5, causal=True, valid_BT=None)[0]
    chex.assert_trees_all_close(C[3], jnp.array([0.25, 0.25, 0.25, 0.25, 0.0]))


@pytest.mark.parametrize("block", ["sas_p", "sas", "v_skipinit"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_identity_at_init(block, causal, padded):
    """At init the attention sub-block maps its (normalised) input h to h (sas, sas_p, in every
    layer incl. W_V_0) or to h W_V W_P (v_skipinit), whatever the key weights are."""
    model = build_model(model_config(block, "tiny", num_layers=3), rngs=nnx.Rngs(0))
    B, T = 2, 12
    h = jax.random.normal(jax.random.key(5), (B, T, D))
    valid = padded_valid(B, T, [12, 7]) if padded else None
    rest = nnx.merge(*nnx.split(model.blocks.rest))  # a copy, then take layer 1 out of the stack
    layer1 = jax.tree.map(lambda a: a[0], nnx.state(rest))
    gd1 = nnx.graphdef(rest)
    for blk in (model.blocks.first, nnx.merge(gd1, layer1)):
        attn = blk.attn
        # Random keys and key bias must not matter: the queries are zero.
        attn.w_qk[...] = attn.w_qk[...].at[:, D:].set(jax.random.normal(jax.random.key(7), (D, D)))
        attn.b_qk[...] = attn.b_qk[...].at[D:].set(1.0)
        out, _ = attn(h, causal=causal, valid_BT=valid)
        want = h
        if block == "v_skipinit":
            want = h @ attn.value.w[...] @ attn.proj.w[...]
        if valid is not None:
            want = want * valid[:, :, None]
        chex.assert_trees_all_close(out, want, atol=1e-5, rtol=1e-5)


def test_sas_p_branch_is_normalised_input():
    """Identity at init (paper Sec. 4.1): the sas_p attention branch at init equals RMS1(X)."""
    model = build_model(model_config("sas_p", "tiny"), rngs=nnx.Rngs(0))
    blk = model.blocks.first
    x = 3.0 * jax.random.normal(jax.random.key(2), (2, 10, D)) + 1.0
    h = blk.norm1(x)
    chex.assert_trees_all_close(
        jnp.sqrt(jnp.mean(h**2, -1)), jnp.ones((2, 10)), atol=1e-4
    )  # really normalised
    for causal in (True, False):
        out, _ = blk.attn(h, causal=causal)
        chex.assert_trees_all_close(out, h, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_module_efficient_matches_reference_impl(causal):
    """Same (random) params, attn_impl efficient vs reference, padding included."""
    eff = tiny("sas", kind="decoder" if causal else "bert")
    ref = tiny("sas", kind="decoder" if causal else "bert", attn_impl="reference")
    nnx.update(ref, nnx.state(eff))
    h = jax.random.normal(jax.random.key(4), (2, 11, D))
    valid = padded_valid(2, 11, [11, 6])
    a, _ = eff.blocks.first.attn(h, causal=causal, valid_BT=valid)
    b, _ = ref.blocks.first.attn(h, causal=causal, valid_BT=valid)
    chex.assert_trees_all_close(a, b, atol=2e-5, rtol=2e-5)
    chex.assert_trees_all_close(a[1, 6:], jnp.zeros_like(a[1, 6:]))  # padded query rows


def test_gain_switches_create_only_what_is_used():
    def attn_params(**kw):
        m = build_model(model_config("sas", "tiny", **kw), rngs=nnx.Rngs(0))
        return nnx.to_pure_dict(nnx.state(m.blocks.first.attn, nnx.Param))

    full = attn_params()
    assert {"alpha", "beta", "gamma"} <= set(full) and full["alpha"].shape == (H,)
    assert "gamma" not in attn_params(attn_centre=False)
    assert "alpha" not in attn_params(attn_identity=False)
    vskip = attn_params(attn_matrix="vskipinit")
    assert "gamma" not in vskip and float(jnp.abs(vskip["beta"]).max()) == 0.0
    assert attn_params(attn_gains="scalar")["alpha"].shape == ()
    assert not {"alpha", "beta", "gamma"} & set(attn_params(train_attn_gains=False))


def test_decode_step_matches_full_attention():
    model = perturb(build_model(model_config("sas", "tiny"), rngs=nnx.Rngs(0)))
    attn = model.blocks.first.attn
    h = jax.random.normal(jax.random.key(9), (2, 7, D))
    full, _ = attn(h, causal=True)
    cache = attn.init_cache(2, 16, jnp.float32)
    for p in range(7):
        step, cache = attn.decode(h[:, p : p + 1], cache, p)
        chex.assert_trees_all_close(step[:, 0], full[:, p], atol=2e-5)


def test_rmsnorm_eps_placement():
    x = jnp.array([[3.0, 4.0]])
    out = layers.Norm("rmsnorm", 2, 1.0, "outside")(x)  # x / (sqrt(12.5) + 1)
    chex.assert_trees_all_close(out, x / (jnp.sqrt(12.5) + 1.0), atol=1e-6)
    inside = layers.Norm("rmsnorm", 2, 1.0, "inside")(x)  # x / sqrt(12.5 + 1)
    chex.assert_trees_all_close(inside, x / jnp.sqrt(13.5), atol=1e-6)


@pytest.mark.parametrize("T", [1, 7, 12, 256])
def test_token_cumsum_equals_cumsum(T):
    # The blocked cumulative sum (about sqrt(T) tokens per block) against jnp.cumsum, with gradient.
    x = jax.random.normal(jax.random.key(T), (2, T, 3, 4), jnp.float32)
    w = jnp.arange(T, dtype=jnp.float32)[None, :, None, None]
    chex.assert_trees_all_close(
        attention.token_cumsum(x), jnp.cumsum(x, axis=1), rtol=1e-5, atol=1e-5
    )
    grad = lambda fn: jax.grad(lambda x: jnp.sum(jnp.sin(fn(x)) * w))(x)
    g, g_ref = grad(attention.token_cumsum), grad(lambda y: jnp.cumsum(y, axis=1))
    # float32 sums of up to T terms in another order: errors relative to the largest entry
    chex.assert_trees_all_close(g, g_ref, atol=1e-5 * float(jnp.abs(g_ref).max()))


def test_implementation_choices_are_config_keys_held_only_when_set():
    from simplified_tf.model_config import IMPLEMENTATIONS, implementation, model_config
    from trainloop.config_util import ConfigError

    default = model_config("sas_p", "tiny")
    assert not set(IMPLEMENTATIONS) & set(default)  # default configs (and run ids) unchanged
    assert implementation(default, "cumsum_impl") == "blocked"
    xla = model_config("sas_p", "tiny", cumsum_impl="xla")
    assert implementation(xla, "cumsum_impl") == "xla"
    with pytest.raises(ConfigError, match=r"model.cumsum_impl='scan'. Valid choices: blocked, xla"):
        model_config("sas_p", "tiny", cumsum_impl="scan")
    # the choice reaches the traced program: jnp.cumsum over all T tokens vs the blocked form
    x = jnp.ones((1, 16, 2, 4))
    for cfg, blocked in ((default, True), (xla, False)):
        impl = implementation(cfg, "cumsum_impl")
        jaxpr = str(jax.make_jaxpr(lambda v, impl=impl: attention.token_cumsum(v, impl))(x))
        assert ("reshape" in jaxpr) == blocked

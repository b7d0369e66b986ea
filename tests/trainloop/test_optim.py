"""Optimiser, schedule and path-rule mask builders."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from trainloop.config_util import ConfigError, apply_overrides, check_choice, check_min, parse_arg
from trainloop.defaults import base_config
from trainloop.optim import make_optimizer, make_schedule, path_mask

PARAMS = {
    "blocks": {"attn": {"w_qk": jnp.ones((4, 8)), "b_qk": jnp.ones(8), "alpha": jnp.ones(2)}},
    "ln_f": {"scale": jnp.ones(4)},
    "embed": jnp.ones((10, 4)),
}


def _opt(**kw):
    o = base_config().optimizer
    for k, v in kw.items():
        o[k] = v
    return o


def test_warmup_linear_schedule_shape():
    s = make_schedule(_opt(lr=1.0, schedule="warmup_linear", warmup_fraction=0.1), 100)
    np.testing.assert_allclose(
        [s(0), s(5), s(10), s(55), s(100)], [0, 0.5, 1.0, 0.5, 0.0], atol=1e-6
    )


def test_warmup_cosine_schedule_shape():
    s = make_schedule(
        _opt(lr=2.0, schedule="warmup_cosine", warmup_steps=10, end_lr_fraction=0.1), 110
    )
    np.testing.assert_allclose([s(10), s(60), s(110)], [2.0, 1.1, 0.2], atol=1e-5)
    assert make_schedule(_opt(lr=3.0), 10)(7) == 3.0


def test_path_mask_matches_regexes():
    mask = path_mask(PARAMS, [r"(^|/)b_", r"ln_", r"/alpha$"])
    assert mask == {
        "blocks": {"attn": {"w_qk": False, "b_qk": True, "alpha": True}},
        "ln_f": {"scale": True},
        "embed": False,
    }


def test_adamw_no_decay_mask_exempts_matched_params():
    opt = _opt(name="adamw", lr=0.1, weight_decay=0.5, no_decay=(r"b_qk", r"ln_f", r"alpha"))
    tx, _ = make_optimizer(opt, 10, PARAMS)
    zero_grads = jax.tree_util.tree_map(jnp.zeros_like, PARAMS)
    updates, _ = tx.update(zero_grads, tx.init(PARAMS), PARAMS)
    # With zero gradients only weight decay moves parameters: -lr * wd * p.
    chex.assert_trees_all_close(updates["embed"], -0.05 * PARAMS["embed"])
    chex.assert_trees_all_close(updates["blocks"]["attn"]["w_qk"], -0.05 * jnp.ones((4, 8)))
    for leaf in (updates["ln_f"]["scale"], updates["blocks"]["attn"]["b_qk"]):
        chex.assert_trees_all_close(leaf, jnp.zeros_like(leaf))


def test_frozen_params_never_move():
    tx, _ = make_optimizer(_opt(name="sgd", lr=1.0, frozen=(r"^embed$",)), 10, PARAMS)
    grads = jax.tree_util.tree_map(jnp.ones_like, PARAMS)
    updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
    chex.assert_trees_all_close(updates["embed"], jnp.zeros_like(PARAMS["embed"]))
    chex.assert_trees_all_close(updates["ln_f"]["scale"], -jnp.ones(4))


def test_sgdm_and_clipping_match_optax_reference():
    params = {"w": jnp.array([1.0, 2.0])}
    grads = {"w": jnp.array([3.0, 4.0])}  # norm 5, clipped to 1
    tx, _ = make_optimizer(_opt(name="sgdm", lr=0.1, momentum=0.9, clip_norm=1.0), 10)
    ref = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))
    s1, s2 = tx.init(params), ref.init(params)
    for _ in range(3):
        u1, s1 = tx.update(grads, s1, params)
        u2, s2 = ref.update(grads, s2, params)
        chex.assert_trees_all_close(u1, u2)
    chex.assert_trees_all_close(u1["w"], -0.1 * (1 + 0.9 + 0.81) * jnp.array([0.6, 0.8]))


def test_adam_uses_configured_betas():
    params = {"w": jnp.array([1.0])}
    tx, _ = make_optimizer(_opt(name="adam", lr=0.1, b1=0.9, b2=0.9, eps=1e-8), 10)
    ref = optax.adam(0.1, b1=0.9, b2=0.9, eps=1e-8)
    s1, s2 = tx.init(params), ref.init(params)
    for g in (1.0, -2.0, 0.5):
        u1, s1 = tx.update({"w": jnp.array([g])}, s1, params)
        u2, s2 = ref.update({"w": jnp.array([g])}, s2, params)
    chex.assert_trees_all_close(u1, u2)


@pytest.mark.parametrize(
    "field, value, valid",
    [("name", "lamb", "adamw, adam, sgd, sgdm"), ("schedule", "step", "constant, warmup_linear")],
)
def test_unknown_optimizer_or_schedule_lists_choices(field, value, valid):
    with pytest.raises(ConfigError, match=f"{value}.*{valid}"):
        make_optimizer(_opt(**{field: value}), 10)


def test_parse_arg_types_and_unknown_keys():
    c = parse_arg("lr=0.5,steps=7,flag,name=x", lr=0.1, steps=1, flag=False, name="a")
    assert (c.lr, c.steps, c.flag, c.name) == (0.5, 7, True, "x")
    with pytest.raises(ConfigError, match="Unknown config arg 'bogus'.*flag, lr"):
        parse_arg("bogus=1", lr=0.1, flag=False)
    with pytest.raises(ConfigError, match="not a valid int"):
        parse_arg("steps=abc", steps=1)
    with pytest.raises(ConfigError, match="Valid choices: a, b"):
        check_choice("mode", "c", ["a", "b"])


def test_check_min_names_the_value_and_the_bound():
    assert check_min("data.seq_len", 2, 2) == 2
    with pytest.raises(ConfigError, match=r"data.max_documents=-1 must be >= 0 \(0 = no cap\)\."):
        check_min("data.max_documents", -1, 0, "0 = no cap")


def test_apply_overrides_parses_strictly_as_the_replaced_type():
    import ml_collections

    def cfg():
        return ml_collections.ConfigDict(
            {"flag": True, "steps": 3, "lr": 0.1, "rules": ("a",), "data": {"source": "x"}}
        )

    c = apply_overrides(
        cfg(), ["flag=off", "steps=7", "lr=2e-3", "rules=('b', 'c')", "data.source=/d"]
    )
    assert (c.flag, c.steps, c.lr, c.rules, c.data.source) == (False, 7, 2e-3, ("b", "c"), "/d")
    for bad, match in (
        ("flag=flase", "not a boolean"),
        ("steps=2.7", "not a valid int"),
        ("rules=abc", "not a tuple literal"),
        ("data.nope=1", "expected existing.dotted.key=value"),
        ("data.source.x=1", "expected existing.dotted.key=value"),
        ("steps", "expected existing.dotted.key=value"),
    ):
        with pytest.raises(ConfigError, match=match):
            apply_overrides(cfg(), [bad])

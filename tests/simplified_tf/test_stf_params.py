"""Parameter structure and counts (docs/simplified_tf.md section 6), the no-decay rules, fixed
W_init, config errors."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from simplified_tf import params as P
from simplified_tf.layers import Fixed
from simplified_tf.model_config import BLOCKS, model_config
from simplified_tf.models import build_classifier, build_model
from trainloop.config_util import ConfigError
from trainloop.optim import make_optimizer, path_mask, path_str

PAPER_TOTALS = {  # docs/simplified_tf.md section 6: (total without gains, gains)
    "pre_ln": (166_645_248, 0),
    "parallel": (166_631_424, 0),
    "sas": (146_001_408, 704),
    "sas_p": (145_987_584, 686),
    "sas_p_nonorm": (145_975_296, 686),
}


@pytest.mark.parametrize("block", sorted(PAPER_TOTALS))
def test_paper_decoder_counts_match_paper(block):
    c = P.count_params(model_config(block, "paper"))
    assert (c["total_excl_gains"], c["gains"]) == PAPER_TOTALS[block]


def test_depth_config_counts_are_exact():
    got = {
        (size, b): round(P.count_params(model_config(b, size))["total_excl_gains"] / 1e4) / 100
        for size in ("deep18", "deep")
        for b in ("pre_ln", "sas")
    }
    assert got == {
        ("deep18", "pre_ln"): 124.18,
        ("deep18", "sas"): 103.53,
        ("deep", "pre_ln"): 379.15,
        ("deep", "sas"): 294.80,
    }


def test_bert_counts_120m_to_101m():
    for block in BLOCKS:
        total = P.count_params(model_config(block, "paper", "bert"))["total_excl_gains"]
        want = 101 if block.startswith("sas") else 120
        assert round(total / 1e6) == want, (block, total)


def test_fraction_of_block_matrices_removed():
    pre = P.count_params(model_config("pre_ln", "paper"))["block_matrices_per_layer"]
    sas = P.count_params(model_config("sas", "paper"))["block_matrices_per_layer"]
    assert (pre - sas) / pre == pytest.approx(1 / 6)  # 1 / (2 + d_ff/d), d_ff = 4d


@pytest.mark.parametrize("block", ["sas", "sas_p", "sas_p_nonorm"])
def test_sas_has_only_layer0_values(block):
    paths = P.param_shapes(model_config(block, "paper", num_layers=4))
    vp = [p for p in paths if "/value/" in p or "/proj/" in p]
    assert vp and all(p.startswith("blocks/first/attn/value/") for p in vp), vp
    assert {p.split("/")[-1] for p in vp} == {"alpha", "beta", "delta"}


def test_no_dead_parameters():
    """Parallel blocks have no norm2; skipless blocks no attention-skip gain; no V/P/MLP biases."""
    par = P.param_shapes(model_config("parallel", "tiny"))
    assert not [p for p in par if "norm2" in p]
    for block in ("v_skipinit", "sas", "sas_p"):
        paths = P.param_shapes(model_config(block, "tiny"))
        assert not [p for p in paths if p.endswith("alpha_sa")]
    sas_p = P.param_shapes(model_config("sas_p", "tiny"))
    assert not [p for p in sas_p if p.endswith("alpha_ff")]
    for block in BLOCKS:
        biases = [p for p in P.param_shapes(model_config(block, "tiny")) if "bias" in p]
        assert all(p.endswith("b_qk") or "norm" in p for p in biases), biases
    pre = P.param_shapes(model_config("pre_ln", "tiny"))
    assert not [p for p in pre if p.split("/")[-1] in P.GAIN_NAMES]


def _per_layer_ndim(path, shape):
    return len(shape) - (1 if path.startswith("blocks/rest/") else 0)


@pytest.mark.parametrize(
    "block,kw",
    [(b, {}) for b in BLOCKS]
    + [("pre_ln", dict(value="reparam", proj="reparam", reparam_init="orth"))]
    + [("sas", dict(norm="layernorm", final_norm="rmsnorm"))],
)
def test_no_decay_rules_cover_exactly_vectors_and_gains(block, kw):
    """Structural check on the real params tree: every per-layer scalar/vector (biases, norm
    scales/biases, gains) is excluded from decay, and every matrix (incl. dW, embeddings) decays."""
    cfg = model_config(block, "tiny", **kw)
    model = nnx.eval_shape(lambda: build_model(cfg, rngs=nnx.Rngs(0)))
    tree = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    mask = path_mask(tree, P.no_decay_rules(cfg))
    for path, excluded in jax.tree_util.tree_flatten_with_path(mask)[0]:
        p = path_str(path)
        shape = P.param_shapes(model)[p]
        assert excluded == (_per_layer_ndim(p, shape) <= 1), (p, shape, excluded)


def test_no_decay_rules_cover_classifier_bias():
    clf = nnx.eval_shape(
        lambda: build_classifier(model_config("sas", "tiny", "bert"), 2, rngs=nnx.Rngs(0))
    )
    tree = nnx.to_pure_dict(nnx.state(clf, nnx.Param))
    flat = {
        path_str(k): v
        for k, v in jax.tree_util.tree_flatten_with_path(path_mask(tree, P.NO_DECAY_RULES))[0]
    }
    assert flat["classifier/bias"] and flat["pooler/bias"] and not flat["classifier/kernel"]


def _load_config(name):
    path = pathlib.Path(__file__).parents[2] / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"stf_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config


def test_configs_recipes_and_data_keys():
    dec = _load_config("decoder")("block=v_skipinit,size=paper")
    assert dec.task == "lm" and dec.model.kind == "decoder" and dec.optimizer.lr == 3e-4
    assert (dec.batch_size, dec.model.seq_len, dec.optimizer.weight_decay) == (128, 128, 0.1)
    assert dec.optimizer.schedule == "warmup_linear" and dec.optimizer.warmup_fraction == 0.05
    assert set(dec.data) == {
        "source", "tokenizer", "vocab_size", "seq_len", "packing", "val_fraction",
        "max_documents", "cache_dir", "text_field", "eval_batches", "tokenizer_train_bytes",
        "shard_tokens",
    }  # fmt: skip
    assert dec.data.vocab_size == 50_000
    bert = _load_config("bert")("block=sas_p_nonorm,size=paper")
    assert bert.task == "mlm" and bert.model.kind == "bert" and bert.optimizer.lr == 2e-3
    assert bert.model.beta_ff == 0.05 and bert.model.norm_eps == 1e-12
    assert set(bert.data) - set(dec.data) == {"mask_prob", "mask_token_prob", "random_token_prob"}
    with pytest.raises(ConfigError, match="sizes|size"):
        _load_config("decoder")("size=enormous")


def test_adamw_with_rules_leaves_gains_undecayed():
    cfg = _load_config("decoder")("block=sas,size=tiny")
    model = build_model(cfg.model, rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    tx, _ = make_optimizer(cfg.optimizer, 10, params)

    @jax.jit
    def one_step(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        updates, _ = tx.update(zeros, tx.init(params), params)
        return optax.apply_updates(params, updates)

    new = one_step(params)
    first = new["blocks"]["first"]
    assert float(first["beta_ff"]) == float(params["blocks"]["first"]["beta_ff"])
    assert float(jnp.abs(first["mlp"]["w_1"]).sum()) < float(
        jnp.abs(params["blocks"]["first"]["mlp"]["w_1"]).sum()
    )


def test_fixed_w_init_is_not_a_param_and_reproducible():
    cfg = model_config(
        "pre_ln", "tiny", num_layers=3, value="reparam", proj="reparam", reparam_init="orth",
        reparam_train=False, reparam_beta_p_last=0.5,
    )  # fmt: skip
    a = build_model(cfg, rngs=nnx.Rngs(0))
    b = build_model(cfg, rngs=nnx.Rngs(1))
    fixed_a, fixed_b = nnx.state(a, Fixed), nnx.state(b, Fixed)
    jax.tree.map(lambda x, y: assert_equal(x, y), fixed_a, fixed_b)
    w = fixed_a["blocks"]["rest"]["attn"]["value"]["w_init"][...]
    assert w.shape == (2, 64, 64)
    assert float(jnp.abs(w[0] @ w[0].T - jnp.eye(64)).max()) < 1e-4  # orthogonal
    assert float(jnp.abs(w[0] - w[1]).max()) > 0.1  # differs per layer
    beta_p = fixed_a["blocks"]["rest"]["attn"]["proj"]["beta_fixed"][...]
    assert beta_p.tolist() == pytest.approx([0.2, 0.5])  # last-layer override
    paths = P.param_shapes(a)
    assert not [p for p in paths if "w_init" in p or "fixed" in p]
    # Every Fixed variable is caught by the frozen rules (for tasks that keep all state).
    full = nnx.to_pure_dict(nnx.state(a))
    frozen = path_mask(full, P.frozen_rules(cfg))
    fixed_paths = set(
        jax.tree_util.tree_leaves(
            jax.tree_util.tree_map_with_path(
                lambda k, _: path_str(k), nnx.to_pure_dict(nnx.state(a, Fixed))
            )
        )
    )
    for k, is_frozen in jax.tree_util.tree_flatten_with_path(frozen)[0]:
        assert is_frozen == (path_str(k) in fixed_paths), path_str(k)


def assert_equal(x, y):
    assert bool(jnp.array_equal(x, y))


@pytest.mark.parametrize(
    "args,kwargs,needle",
    [
        (("nope", "tiny"), {}, "sas_p_nonorm"),
        (("sas", "huge"), {}, "paper"),
        (("sas", "tiny", "encoder"), {}, "bert"),
        (("sas", "tiny"), dict(num_heads=3), "num_heads=3"),
        (("sas_p_nonorm", "tiny"), dict(norm="rmsnorm"), "norm='rmsnorm'"),
        (("sas", "tiny"), dict(activation="swish"), "glu_gelu"),
        (("sas", "tiny"), dict(no_such_key=1), "no_such_key"),
        (("parallel", "tiny"), dict(mlp_skip=True), "mlp_skip"),
        (("sas", "tiny"), dict(first_norm="layernorm"), "first_norm"),
    ],
)
def test_bad_configs_raise(args, kwargs, needle):
    with pytest.raises(ConfigError, match=None) as err:
        model_config(*args, **kwargs)
    assert needle in str(err.value)

"""LM / MLM tasks: jittable init, weighted loss semantics, a learning step, config mismatches."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stf_helpers import write_corpus

from simplified_tf.data import default_data_config
from simplified_tf.diagnostics import scalar_traces
from simplified_tf.model_config import model_config
from simplified_tf.tasks import make_task_and_data, weighted_cross_entropy
from trainloop.config_util import ConfigError
from trainloop.defaults import base_config


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = write_corpus(tmp_path_factory.mktemp("corpus"), 30, seed=1)
    return root, tmp_path_factory.mktemp("cache")


def _config(paths, kind="decoder", block="sas_p", **model_kw):
    c = base_config()
    c.batch_size = 8
    c.model = model_config(block, "tiny", kind, **{"vocab_size": 400, **model_kw})
    c.data = default_data_config(
        kind,
        source=str(paths[0]),
        cache_dir=str(paths[1]),
        vocab_size=400,
        seq_len=32,
        val_fraction=0.15,
        eval_batches=2,
    )
    return c


def test_weighted_cross_entropy_ignores_zero_weights():
    logits = jax.random.normal(jax.random.key(0), (2, 5, 7))
    targets = jnp.array([[1, 2, 3, 4, 5], [0, 1, 2, 3, 4]])
    weights = jnp.array([[1, 1, 0, 1, 0], [0, 0, 0, 1, 1]], jnp.float32)
    loss, acc, w = weighted_cross_entropy(logits, targets, weights)
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, targets[..., None], -1)[..., 0]
    chex.assert_trees_all_close(loss, jnp.sum(nll * weights) / 5, rtol=1e-6)
    assert float(w) == 5.0 and 0.0 <= float(acc) <= 1.0
    changed = targets.at[0, 2].set(6).at[1, 0].set(6)  # only zero-weight targets
    chex.assert_trees_all_close(weighted_cross_entropy(logits, changed, weights)[0], loss)


def _task_and_params(paths, kind, block, **model_kw):
    task, _ = make_task_and_data(_config(paths, kind, block, **model_kw), kind)
    return task, jax.jit(task.init)(jax.random.key(0))


@pytest.fixture(scope="module")
def lm_sas_p(paths):
    """The tiny sas_p LM task and its params (one compiled init shared by the tests below)."""
    return _task_and_params(paths, "decoder", "sas_p")


def _check_step(task, params):
    batch = jax.tree_util.tree_map(jnp.asarray, task.host_batch(0, 0, 1))
    loss_and_grad = jax.jit(jax.value_and_grad(task.loss, has_aux=True))
    (loss, metrics), grads = loss_and_grad(params, batch, jax.random.key(1))
    assert np.isfinite(float(loss))
    assert abs(float(loss) - np.log(400)) < 1.5  # near-uniform over the 400 model logits
    chex.assert_trees_all_close(metrics["weight"], batch["weights"].sum())
    new = jax.jit(lambda p, g: jax.tree_util.tree_map(lambda a, b: a - 0.05 * b, p, g))(
        params, grads
    )
    (loss2, _), _ = loss_and_grad(new, batch, jax.random.key(1))
    assert float(loss2) < float(loss)
    ev = task.eval_batches()
    assert len(ev) == 2 and ev[0]["inputs"].shape == (8, 32)
    return ev


def test_lm_task_init_and_step(lm_sas_p):
    _check_step(*lm_sas_p)


@pytest.mark.slow
@pytest.mark.parametrize("kind,block", [("decoder", "pre_ln"), ("bert", "sas")])
def test_task_step_and_eval_perplexity(paths, kind, block):
    task, params = _task_and_params(paths, kind, block)
    ev = _check_step(task, params)
    eval_loss, em = jax.jit(task.eval_loss)(params, jax.tree_util.tree_map(jnp.asarray, ev[0]))
    summary = task.eval_summary({"loss": float(eval_loss)})
    chex.assert_trees_all_close(summary["perplexity"], jnp.exp(eval_loss), rtol=1e-5)
    assert 0.0 <= float(em["accuracy"]) <= 1.0


def test_mismatches_are_config_errors(paths):
    with pytest.raises(ConfigError, match="model.vocab_size >= "):
        make_task_and_data(_config(paths, vocab_size=256), "decoder")
    cfg = _config(paths)
    cfg.data.seq_len = 64  # tiny model has 32 positions
    with pytest.raises(ConfigError, match="exceeds the model's 32 positions"):
        make_task_and_data(cfg, "decoder")
    with pytest.raises(ConfigError, match="kind='bert'"):
        make_task_and_data(_config(paths), "bert")


def _shifted_eval(task, params, batch):
    """(params with every leaf moved off its init value, differently per layer and head, so a
    trace read from the wrong leaf or layer shows; eval metrics at those params), in one program."""

    def run(params, batch):
        params = jax.tree_util.tree_map(
            lambda x: x + 0.01 * (jnp.arange(x.size, dtype=x.dtype) % 7).reshape(x.shape), params
        )
        return params, task.eval_loss(params, batch)[1]

    return jax.jit(run)(params, batch)


@pytest.mark.parametrize("kind", ["decoder", "bert"])
def test_eval_reports_scalar_traces(paths, lm_sas_p, kind):
    # decoder: the shared 2-layer sas_p LM; bert: a 3-layer sas encoder (layers 1, 2 stacked).
    cfg = _config(paths, "bert", "sas", num_layers=3) if kind == "bert" else None
    task, params = _task_and_params(paths, kind, "sas", num_layers=3) if cfg else lm_sas_p
    last = 2 if cfg else 1
    batch = jax.tree_util.tree_map(jnp.asarray, task.eval_batches()[0])
    params, metrics = _shifted_eval(task, params, batch)
    expected = scalar_traces(params)
    assert {"scalars/layer00/alpha_v", f"scalars/layer{last:02d}/beta_ff"} <= set(expected)
    assert {"scalars/layer01/alpha_h_mean", "scalars/layer01/alpha_h_std"} <= set(expected)
    chex.assert_trees_all_close({k: metrics[k] for k in expected}, expected, rtol=1e-6)
    chex.assert_trees_all_close(
        metrics[f"scalars/layer{last:02d}/beta_ff"], params["blocks"]["rest"]["beta_ff"][last - 1]
    )
    # Training metrics stay lean, and the switch turns the eval traces off.
    train_aux = jax.eval_shape(task.loss, params, batch, jax.random.key(1))[1]
    assert not any(k.startswith("scalars/") for k in train_aux)
    quiet_cfg = cfg or _config(paths, "decoder", "sas_p")
    quiet_cfg.log_scalar_traces = False
    quiet, _ = make_task_and_data(quiet_cfg, kind)
    quiet_aux = jax.eval_shape(quiet.eval_loss, params, batch)[1]
    assert set(quiet_aux) == {"accuracy", "weight", "num_tokens"}


@pytest.mark.slow  # ~40 s of CPU: three runs of the loop, each compiling its step
def test_mlm_resume_on_a_sharded_store_is_bitwise(paths, tmp_path):
    # The text pipeline through the real loop: tokens cut into 1000-token shards (documents and
    # rows span shards), 2 microbatches, and a job that dies after its step-4 checkpoint. The
    # resumed run must equal the uninterrupted one bit for bit.
    from trainloop.train import train_and_evaluate  # noqa: PLC0415

    def config():
        c = _config(paths, "bert", "sas_p")
        c.data.shard_tokens = 1000
        c.num_steps, c.grad_accum_steps, c.log_every = 6, 2, 2
        c.eval_every, c.checkpoint_every, c.progress_bar = 0, 4, False
        return c

    task, data = make_task_and_data(config(), "bert")
    assert data.train_store.num_tokens > 3000  # several shards
    devices = jax.devices()[:2]
    full = train_and_evaluate(config(), str(tmp_path / "full"), task, devices=devices)

    def dies_at_5(step, *args):
        if step == 5:
            raise RuntimeError("killed")
        return task.host_batch(step, *args)

    import dataclasses  # noqa: PLC0415

    with pytest.raises(RuntimeError, match="killed"):
        train_and_evaluate(
            config(), str(tmp_path / "part"), dataclasses.replace(task, host_batch=dies_at_5),
            devices=devices,
        )  # fmt: skip
    fresh_task, _ = make_task_and_data(config(), "bert")  # a new process: maps the cached store
    resumed = train_and_evaluate(config(), str(tmp_path / "part"), fresh_task, devices=devices)
    assert resumed.step == 6
    chex.assert_trees_all_equal(jax.device_get(full.state), jax.device_get(resumed.state))

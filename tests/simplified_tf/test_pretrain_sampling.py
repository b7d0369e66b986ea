"""Sampling: cached greedy generation equals argmax of the full forward pass; restore from a real
training run; clear errors for missing checkpoints, non-decoder runs and over-long prompts."""

import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from stf_helpers import perturb, tiny, write_corpus

from simplified_tf import sampling
from simplified_tf.data import default_data_config
from simplified_tf.model_config import model_config
from trainloop.config_util import ConfigError
from trainloop.defaults import base_config

VOCAB = 320


@functools.cache
def _forward(graphdef):
    return jax.jit(lambda state, tokens: nnx.merge(graphdef, state)(tokens))


def _greedy_matches_forward(model, prompt, n_new, max_len):
    graphdef, state = nnx.split(model)
    new = sampling.generate(
        graphdef, state, prompt, max_new_tokens=n_new, max_len=max_len, greedy=True
    )
    assert new.shape == (min(n_new, max_len - len(prompt)),)
    full = np.concatenate([prompt, new])
    # One forward program per model structure: pad to max_len (the decoder is causal, so the
    # padding cannot change the logits at the positions compared).
    padded = np.zeros(max_len, np.int32)
    padded[: len(full)] = full
    logits = _forward(graphdef)(state, jnp.asarray(padded)[None])
    expected = np.asarray(jnp.argmax(logits[0], axis=-1))[len(prompt) - 1 : len(full) - 1]
    np.testing.assert_array_equal(new, expected)
    return new


@pytest.mark.parametrize("block", ["pre_ln", "sas", "sas_p"])
def test_greedy_generation_is_argmax_of_forward(block):
    # Strongly perturbed params: no init symmetry (e.g. identity attention copying the last token)
    # hides a cache bug.
    model = perturb(tiny(block), seed=1, scale=0.3)
    prompt = np.array([5, 17, 3, 200, 42], np.int32)
    new = _greedy_matches_forward(model, prompt, n_new=10, max_len=32)
    assert len(set(new.tolist())) > 1  # a non-degenerate continuation


def test_generation_stops_at_position_table():
    model = tiny("sas_p")
    prompt = np.arange(1, 29, dtype=np.int32)  # 28 of 32 positions
    _greedy_matches_forward(model, prompt, n_new=10, max_len=32)  # 4 new tokens, then full


def test_prompt_errors():
    graphdef, state = nnx.split(tiny("pre_ln"))
    with pytest.raises(ConfigError, match="position table holds 32"):
        sampling.generate(graphdef, state, np.arange(32), max_new_tokens=4, max_len=32)
    with pytest.raises(ConfigError, match="empty"):
        sampling.generate(graphdef, state, np.zeros(0), max_new_tokens=4, max_len=32)


def test_top_k_top_p_filtering():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    kept = lambda k, p: np.isfinite(np.asarray(sampling._filter_logits(logits, 1.0, k, p)))  # noqa: E731
    np.testing.assert_array_equal(kept(2, 1.0), [True, True, False, False])
    np.testing.assert_array_equal(kept(0, 0.7), [True, True, False, False])
    np.testing.assert_array_equal(kept(0, 0.4), [True, False, False, False])
    np.testing.assert_array_equal(kept(3, 0.9), [True, True, True, False])
    # Temperature -> 0 concentrates the samples on the argmax.
    model = tiny("sas_p")
    graphdef, state = nnx.split(model)
    prompt = np.array([9, 8, 7], np.int32)
    greedy = sampling.generate(graphdef, state, prompt, max_new_tokens=5, max_len=32, greedy=True)
    cold = sampling.generate(
        graphdef, state, prompt, max_new_tokens=5, max_len=32, temperature=1e-4, seed=3
    )
    np.testing.assert_array_equal(greedy, cold)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 3-step tiny sas_p LM run on a small temporary corpus (real checkpoint and config.json)."""
    from simplified_tf.tasks import make_task_and_data
    from trainloop.train import train_and_evaluate

    root = write_corpus(tmp_path_factory.mktemp("corpus"), 20, lines=30, words=(2, 8))
    c = base_config()
    c.task = "lm"
    c.num_steps, c.batch_size, c.eval_every, c.log_every = 3, 8, 0, 1
    c.progress_bar = False
    c.optimizer.lr = 1e-2
    c.model = model_config("sas_p", "tiny", "decoder", vocab_size=VOCAB)
    c.data = default_data_config(
        "decoder",
        source=str(root),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        vocab_size=VOCAB,
        seq_len=32,
        val_fraction=0.2,
        eval_batches=1,
    )
    workdir = str(tmp_path_factory.mktemp("run"))
    task, _ = make_task_and_data(c, "decoder")
    result = train_and_evaluate(c, workdir, task)
    return workdir, jax.device_get(result.state["params"])


@pytest.mark.slow
def test_load_run_restores_trained_params_and_samples(trained_run):
    workdir, params = trained_run
    run = sampling.load_run(workdir)
    assert run.step == 3 and run.config.model.block == "sas_p"
    restored = nnx.to_pure_dict(run.state)
    chex.assert_trees_all_close(restored, params)
    text, new = sampling.sample_text(run, "def value", max_new_tokens=6, greedy=True)
    assert text.startswith("def value") and 1 <= len(new) <= 6
    ids = run.data.encode("def value")
    _greedy_matches_forward(nnx.merge(run.graphdef, run.state), ids, len(new), run.max_len)


def test_load_run_errors(tmp_path):
    with pytest.raises(ConfigError, match="No config.json"):
        sampling.load_run(str(tmp_path))
    c = base_config()
    c.model = model_config("sas_p", "tiny", "decoder")
    cfg = json.loads(c.to_json_best_effort())
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="No checkpoints"):
        sampling.load_run(str(tmp_path))
    cfg["model"]["kind"], cfg["task"] = "bert", "mlm"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="not a decoder run"):
        sampling.load_run(str(tmp_path))


def test_restore_params_skips_a_damaged_newest_checkpoint(tmp_path, capsys):
    """sampling restores through trainloop.checkpoint.restore_run_params: a damaged newest
    checkpoint is reported and the previous intact one is used; nothing in the workdir changes."""
    from simplified_tf.params import model_fns
    from trainloop.checkpoint import Checkpoints, restore_run_params, structure_signature
    from trainloop.errors import CheckpointError
    from trainloop.optim import make_optimizer

    c = base_config()
    c.model = model_config("sas_p", "tiny", "decoder")
    fns = model_fns(c.model)
    tx, _ = make_optimizer(
        c.optimizer, int(c.num_steps), jax.eval_shape(fns.init, jax.random.key(0))
    )
    states = {}
    ckpts = Checkpoints(str(tmp_path), every=1, keep=3)
    for step in (1, 2):
        params = fns.init(jax.random.key(step))
        states[step] = {
            "step": jnp.int32(step),
            "params": params,
            "opt_state": tx.init(params),
            "nonfinite": jnp.full((2,), -1, jnp.int32),
        }
        meta = {"structure": structure_signature(states[step])}
        ckpts.save(step, states[step], meta, force=True)
    ckpts.close()
    (tmp_path / "config.json").write_text(c.to_json_best_effort())
    (tmp_path / "checkpoints" / "2" / "meta" / "metadata").write_text('{"structure": {"par')
    run = restore_run_params(str(tmp_path))
    params, step = run.params, run.step
    assert step == 1
    chex.assert_trees_all_equal(jax.device_get(params), jax.device_get(states[1]["params"]))
    err = capsys.readouterr().err
    assert "Checkpoint step 2 in" in err and "Using step 1" in err
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]  # read-only: nothing moved
    (tmp_path / "checkpoints" / "1" / "meta" / "metadata").write_text("")
    with pytest.raises(CheckpointError, match="No intact checkpoint"):
        restore_run_params(str(tmp_path))

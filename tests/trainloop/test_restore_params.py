"""`restore_run_params`: a run's config.json + the params of its latest (or a chosen) checkpoint."""

import os

import chex
import jax
import jax.numpy as jnp
import pytest
from toy import make_toy_task, toy_config

from trainloop import train as train_lib
from trainloop.checkpoint import Checkpoints, restore_run_params
from trainloop.config_util import ConfigError
from trainloop.errors import CheckpointError


def test_restores_latest_params_and_config_without_touching_the_run(tmp_path):
    result = train_lib.train_and_evaluate(
        toy_config(num_steps=6), str(tmp_path), make_toy_task(), devices=jax.devices()[:1]
    )
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    run = restore_run_params(str(tmp_path))
    assert run.step == 6 and run.config.num_steps == 6 and run.config.task == "toy"
    chex.assert_trees_all_equal(run.params, jax.device_get(result.state["params"]))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before


def test_check_config_refuses_before_reading_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="No config.json"):
        restore_run_params(str(tmp_path))
    (tmp_path / "config.json").write_text('{"task": "toy"}')
    with pytest.raises(ConfigError, match="No checkpoints"):
        restore_run_params(str(tmp_path))

    def refuse(config):
        raise ConfigError(f"refused task {config.task}")

    with pytest.raises(ConfigError, match="refused task toy"):
        restore_run_params(str(tmp_path), check_config=refuse)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable config.json"):
        restore_run_params(str(tmp_path))


def _save_steps(tmp_path, steps):
    (tmp_path / "config.json").write_text('{"task": "toy"}')
    ckpts = Checkpoints(str(tmp_path), every=1, keep=len(steps) + 1)
    for step in steps:
        state = {"step": jnp.int32(step), "params": {"w": jnp.full((2, 3), float(step))}}
        ckpts.save(step, state, {"structure": {}}, force=True)
    ckpts.close()


def test_restores_a_chosen_step_and_names_the_valid_ones(tmp_path):
    _save_steps(tmp_path, (6, 7))
    run = restore_run_params(str(tmp_path), step=6)
    assert run.step == 6 and float(run.params["w"][0, 0]) == 6.0
    with pytest.raises(ConfigError, match=r"step=3 has no checkpoint .*valid: \[6, 7\]"):
        restore_run_params(str(tmp_path), step=3)


def test_skips_a_damaged_newest_checkpoint_but_refuses_it_by_step(tmp_path, capsys):
    _save_steps(tmp_path, (6, 7))
    (tmp_path / "checkpoints" / "7" / "meta" / "metadata").write_bytes(b"\xff")
    run = restore_run_params(str(tmp_path))
    assert run.step == 6 and float(run.params["w"][0, 0]) == 6.0
    assert "Checkpoint step 7 in" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="step 7 .* damaged"):
        restore_run_params(str(tmp_path), step=7)

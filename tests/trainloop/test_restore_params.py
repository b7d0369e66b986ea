"""`restore_latest_params`: a run's config.json + the params of its latest checkpoint."""

import os

import chex
import jax
import pytest
from toy import make_toy_task, toy_config

from trainloop import train as train_lib
from trainloop.checkpoint import restore_latest_params
from trainloop.config_util import ConfigError


def test_restores_latest_params_and_config_without_touching_the_run(tmp_path):
    result = train_lib.train_and_evaluate(
        toy_config(num_steps=6), str(tmp_path), make_toy_task(), devices=jax.devices()[:1]
    )
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    run = restore_latest_params(str(tmp_path))
    assert run.step == 6 and run.config.num_steps == 6 and run.config.task == "toy"
    chex.assert_trees_all_equal(run.params, jax.device_get(result.state["params"]))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before


def test_check_config_refuses_before_reading_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="No config.json"):
        restore_latest_params(str(tmp_path))
    (tmp_path / "config.json").write_text('{"task": "toy"}')
    with pytest.raises(ConfigError, match="No checkpoints"):
        restore_latest_params(str(tmp_path))

    def refuse(config):
        raise ConfigError(f"refused task {config.task}")

    with pytest.raises(ConfigError, match="refused task toy"):
        restore_latest_params(str(tmp_path), check_config=refuse)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable config.json"):
        restore_latest_params(str(tmp_path))

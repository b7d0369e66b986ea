"""Config-time validation of the shared keys (trainloop.defaults.validate)."""

import glob
import os

import ml_collections
import pytest
from toy import make_toy_task, toy_config

from trainloop import defaults
from trainloop.config_util import ConfigError, load_config
from trainloop.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dotted_keys(node, prefix=""):
    for key, value in node.items():
        if hasattr(value, "items"):
            yield from _dotted_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_every_shared_key_has_a_rule():
    assert set(_dotted_keys(defaults.base_config())) == set(defaults.RULES)


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("num_steps", 0, "an integer >= 1"),
        ("num_steps", -5, "an integer >= 1"),
        ("batch_size", 0, "an integer >= 1"),
        ("batch_size", -8, "an integer >= 1"),
        ("grad_accum_steps", 3, "divides batch_size"),
        ("grad_accum_steps", 0, "divides batch_size"),
        ("log_every", 0, "an integer >= 1"),
        ("eval_every", -1, "an integer >= 0"),
        ("checkpoint_every", -3, "an integer >= 0"),
        ("keep_checkpoints", 0, "an integer >= 1"),
        ("progress_bar", "yes", "true or false"),
        ("seed", 1.5, "an integer"),
        ("optimizer.lr", -1.0, "a finite number >= 0.0"),
        ("optimizer.lr", float("nan"), "a finite number >= 0.0"),
        ("optimizer.b1", 1.0, "< 1.0"),
        ("optimizer.b2", 1.5, "< 1.0"),
        ("optimizer.eps", -1e-8, ">= 0.0"),
        ("optimizer.weight_decay", float("inf"), "a finite number"),
        ("optimizer.momentum", 1.0, "< 1.0"),
        ("optimizer.nesterov", 1, "true or false"),
        ("optimizer.clip_norm", -1.0, "0: no clipping"),
        ("optimizer.warmup_steps", -1, "an integer >= 0"),
        ("optimizer.warmup_fraction", 1.5, "<= 1.0"),
        ("optimizer.end_lr_fraction", -0.1, ">= 0.0"),
        ("optimizer.no_decay", "bias", "a tuple of regular expressions"),
        ("optimizer.frozen", ("(",), "a tuple of regular expressions"),
        ("mesh.data", 0, "or -1"),
        ("mesh.fsdp", 0, "an integer >= 1"),
        ("mesh.fsdp_min_size", -1, "an integer >= 0"),
        ("optimizer.name", "lion", "Valid choices: adamw, adam, sgd, sgdm"),
        ("optimizer.schedule", "step", "Valid choices: constant, warmup_linear"),
    ],
)
def test_bad_value_names_key_value_and_what_is_allowed(key, value, allowed):
    # type_safe=False: a config built by hand (not on base_config) can hold any type.
    config = ml_collections.ConfigDict(toy_config().to_dict(), type_safe=False)
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(ConfigError) as info:
        defaults.validate(config)
    message = str(info.value)
    assert key in message and repr(value) in message and allowed in message, message
    assert "\n" not in message


def test_missing_shared_key_is_named():
    config = toy_config()
    del config["log_every"]
    with pytest.raises(ConfigError, match="no key 'log_every'.*base_config"):
        defaults.validate(config)


@pytest.mark.parametrize(
    "spec",
    [
        "configs/linear_regression.py",
        "configs/linear_regression.py:setting=sphere,optimizer=sgdm",
        "configs/decoder.py:size=tiny",
        "configs/decoder.py:block=sas_p,size=paper",
        "configs/bert.py:size=tiny",
    ],
)
def test_shipped_configs_pass_validation(spec):
    assert glob.glob(os.path.join(ROOT, "configs", "*.py"))
    defaults.validate(load_config(os.path.join(ROOT, spec)))


def test_train_and_evaluate_validates_before_touching_the_workdir(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match="log_every=0"):
        train_and_evaluate(toy_config(log_every=0), str(workdir), make_toy_task())
    assert not workdir.exists()

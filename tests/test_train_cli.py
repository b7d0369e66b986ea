"""scripts/train.py end to end: a real run, and every bad input gives one clear paragraph."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "linear_regression.py")


def _train(workdir, *args, devices=1):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--workdir={workdir}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _snapshot(path):
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), path)] = fh.read()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 20-step run whose files the bad-input tests must leave untouched."""
    workdir = tmp_path_factory.mktemp("run")
    run = _train(
        workdir,
        f"--config={CONFIG}:setting=1,optimizer=adam,layers=1",
        "--config.num_steps=20",
        "--config.progress_bar=false",
    )
    assert run.returncode == 0, run.stderr
    assert "Finished at step 20" in run.stdout
    assert {"config.json", "metrics.jsonl", "checkpoints"} <= set(os.listdir(workdir))
    return workdir


@pytest.mark.parametrize(
    "args, message",
    [
        ([f"--config={CONFIG}:setting=1,bogus=3"], "Unknown config arg 'bogus'"),
        (
            [f"--config={CONFIG}:setting=1", "--config.optimizer.bogus=1"],
            "Unknown config key(s) ['optimizer.bogus']",
        ),
        ([f"--config={CONFIG}:setting=7"], "Invalid setting='7'. Valid choices: 1, 2, 3, sphere"),
        ([f"--config={CONFIG}:optimizer=lion"], "Valid choices: adam, sgdm, sgd"),
        (
            [f"--config={CONFIG}:setting=1", "--config.optimizer.schedule=step"],
            "Valid choices: constant, warmup_linear, warmup_cosine",
        ),
        (
            [f"--config={CONFIG}:setting=1", "--config.num_steps=0"],
            "Invalid config value num_steps=0: it must be an integer >= 1.",
        ),
        (["--config=configs/no_such.py"], "Config file 'configs/no_such.py' does not exist."),
        ([f"--config={ROOT}/README.md"], "README.md' has a syntax error at line"),
    ],
)
def test_bad_config_is_one_clear_error(trained, args, message):
    before = _snapshot(trained)
    run = _train(trained, *args)
    assert run.returncode == 2
    assert message in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("Error: "), run.stderr
    assert _snapshot(trained) == before


def test_batch_not_divisible_by_devices(tmp_path):
    run = _train(tmp_path, f"--config={CONFIG}:setting=1,batch=1001", devices=8)
    assert run.returncode == 2
    assert "batch_size=1001" in run.stderr and "8 data-parallel devices" in run.stderr
    assert not os.path.exists(tmp_path / "checkpoints")


def test_different_model_structure_refuses_to_resume(trained):
    before = _snapshot(trained)
    run = _train(
        trained, f"--config={CONFIG}:setting=1,optimizer=adam,layers=2", "--config.num_steps=40"
    )
    assert run.returncode == 2
    assert "different model or optimizer structure" in run.stderr and "--workdir" in run.stderr
    assert _snapshot(trained) == before


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("precious")
    run = _train(blocker / "run", f"--config={CONFIG}:setting=1")
    assert run.returncode == 2
    assert "is not writable" in run.stderr
    assert blocker.read_text() == "precious"

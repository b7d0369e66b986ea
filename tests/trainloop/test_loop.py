"""The training loop: sharding equivalence, single compilation, resume, NaN guard, bad input."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy import make_toy_task, toy_config

from trainloop import step as step_lib
from trainloop import train as train_lib
from trainloop.config_util import ConfigError
from trainloop.metrics import read_metrics

TIMING = ("train/steps_per_sec", "train/examples_per_sec", "train/tokens_per_sec")


def _run(workdir, devices=1, task=None, **overrides):
    """Trains the toy task on the first `devices` devices (all 8 when None)."""
    task = task or make_toy_task()
    devices = jax.devices() if devices is None else jax.devices()[:devices]
    return train_lib.train_and_evaluate(
        toy_config(**overrides), str(workdir), task, devices=devices
    )


def _params(result):
    return jax.device_get(result.state["params"])


def _values(workdir):
    """metrics.jsonl without wall-clock keys."""
    return [
        {k: v for k, v in e.items() if k not in TIMING}
        for e in read_metrics(f"{workdir}/metrics.jsonl")
    ]


def test_eight_devices_match_one_device(tmp_path):
    assert jax.device_count() == 8
    one = _run(tmp_path / "one", devices=1)
    eight = _run(tmp_path / "eight", devices=None)
    chex.assert_trees_all_close(_params(one), _params(eight), atol=1e-6, rtol=1e-6)


def test_fsdp_sharded_params_match_data_parallel(tmp_path):
    dp = _run(tmp_path / "dp", devices=None, task=make_toy_task(device_data=True))
    fsdp = _run(tmp_path / "fsdp", None, make_toy_task(device_data=True), **{"mesh.fsdp": 4})
    w = fsdp.state["params"]["hidden"]["w"]
    assert "fsdp" in str(w.sharding.spec), w.sharding  # really sharded, not replicated
    chex.assert_trees_all_close(_params(dp), _params(fsdp), atol=1e-6, rtol=1e-6)


def test_grad_accumulation_equals_full_batch(tmp_path):
    task = make_toy_task(dropout=False)
    full = _run(tmp_path / "full", devices=None, task=task)
    accum = _run(tmp_path / "accum", devices=None, task=task, grad_accum_steps=2)
    chex.assert_trees_all_close(_params(full), _params(accum), atol=1e-5, rtol=1e-5)


def test_grad_accumulation_weights_microbatches_by_their_weight(tmp_path):
    # Microbatches with total weights 20 and 8: a uniform average of their losses would differ
    # from the full batch's weighted mean; weighting by the `weight` metric makes them equal.
    task = make_toy_task(dropout=False, weighted=True)
    full = _run(tmp_path / "full", devices=None, task=task)
    accum = _run(tmp_path / "accum", devices=None, task=task, grad_accum_steps=2)
    chex.assert_trees_all_close(_params(full), _params(accum), atol=1e-5, rtol=1e-5)
    loss = lambda d: [
        e["train/loss"] for e in read_metrics(f"{d}/metrics.jsonl") if "train/loss" in e
    ]
    np.testing.assert_allclose(loss(tmp_path / "full"), loss(tmp_path / "accum"), rtol=1e-5)


def test_step_compiles_once(tmp_path, monkeypatch):
    original = step_lib.make_train_step
    monkeypatch.setattr(
        step_lib,
        "make_train_step",
        lambda *a, **k: chex.assert_max_traces(original(*a, **k), n=1),
    )
    result = _run(tmp_path, num_steps=6)
    assert result.step == 6


def test_resume_is_bitwise_identical(tmp_path):
    full = _run(tmp_path / "full", num_steps=12)
    # The job dies at step 9 (after the step-8 checkpoint); the same command then resumes.
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "part", task=make_toy_task(crash_at=9), num_steps=12)
    assert sorted(os.listdir(tmp_path / "part" / "checkpoints")) == ["4", "8"]
    resumed = _run(tmp_path / "part", num_steps=12)
    assert resumed.step == 12
    chex.assert_trees_all_equal(_params(full), _params(resumed))
    assert _values(tmp_path / "full") == _values(tmp_path / "part")  # no step logged twice


def test_resume_drops_metrics_logged_after_last_checkpoint(tmp_path):
    _run(tmp_path, num_steps=10, checkpoint_every=4)  # ckpts at 4, 8, 10 (final)
    # Pretend the run died after logging step 10 but before its final checkpoint landed.
    import shutil

    shutil.rmtree(tmp_path / "checkpoints" / "10")
    _run(tmp_path, num_steps=12, checkpoint_every=4)
    steps = [e["step"] for e in read_metrics(f"{tmp_path}/metrics.jsonl") if "train/loss" in e]
    assert steps == sorted(set(steps)) and steps[-1] == 12
    dropped = read_metrics(f"{tmp_path}/metrics.dropped.jsonl")
    assert {e["step"] for e in dropped} == {10}


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # blowup_at=5: the loss of the 6th update (state step 5 -> 6) is NaN; steps are numbered as in
    # metrics.jsonl, and the step-4 checkpoint is the newest one.
    with pytest.raises(train_lib.NonFiniteError, match="train/loss at step 6.* step 4 in "):
        _run(tmp_path, task=make_toy_task(blowup_at=5), checkpoint_every=4, log_every=3)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]
    resumed = _run(tmp_path, num_steps=4)  # the kept checkpoint restores fine
    assert resumed.step == 4
    assert np.isfinite(jax.device_get(resumed.state["params"]["out"]["w"])).all()


def test_config_json_written_and_old_one_kept(tmp_path):
    _run(tmp_path, num_steps=2)
    first = json.loads((tmp_path / "config.json").read_text())
    assert first["num_steps"] == 2 and first["optimizer"]["name"] == "adamw"
    _run(tmp_path, num_steps=4)
    assert json.loads((tmp_path / "config.1.json").read_text()) == first
    assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 4


def _snapshot(path):
    return {
        os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(path)
        for f in files
    }


def test_batch_not_divisible_by_devices(tmp_path):
    with pytest.raises(ConfigError, match="batch_size=12 .*not divisible by the 8"):
        _run(tmp_path, devices=None, task=make_toy_task(batch_size=12), batch_size=12)
    assert not (tmp_path / "checkpoints").exists()


def test_structure_mismatch_refuses_to_resume(tmp_path):
    _run(tmp_path, num_steps=4)
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match="different model or optimizer structure.*new --workdir"):
        _run(tmp_path, num_steps=8, task=make_toy_task(width=32))
    with pytest.raises(ConfigError, match="different model or optimizer structure"):
        _run(tmp_path, num_steps=8, **{"optimizer.name": "sgdm"})
    assert _snapshot(tmp_path) == before


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    with pytest.raises(ConfigError, match="not writable"):
        _run(blocker / "sub")
    assert blocker.read_text() == "keep me"


def test_logged_norms_are_the_norms_of_that_step(tmp_path):
    """param/update norms are only computed on log steps: check they are there and right."""
    n = 5  # log_every=2 logs steps 2, 4 and the last step 5 (not a multiple of 2)
    full = _run(tmp_path / "a", devices=1, num_steps=n, checkpoint_every=0, eval_every=0)
    prev = _run(tmp_path / "b", devices=1, num_steps=n - 1, checkpoint_every=0, eval_every=0)
    logged = [e for e in read_metrics(f"{tmp_path}/a/metrics.jsonl") if "train/loss" in e]
    assert [e["step"] for e in logged] == [2, 4, 5]
    last = logged[-1]
    norm = lambda t: float(np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(t))))
    delta = jax.tree.map(lambda a, b: a - b, _params(full), _params(prev))
    np.testing.assert_allclose(last["train/param_norm"], norm(_params(full)), rtol=1e-5)
    np.testing.assert_allclose(last["train/update_norm"], norm(delta), rtol=1e-4)
    assert all(np.isfinite(e["train/param_norm"]) for e in logged)


def test_eval_in_microbatches_equals_whole_batch(tmp_path):
    # Weighted examples, so that a uniform mean over microbatches would differ from the
    # whole batch's weighted mean: eval_accum_steps=4 must reproduce eval_accum_steps=1.
    task = make_toy_task(dropout=False, weighted=True)
    batch = task.eval_batches()[0]
    whole = step_lib.make_eval_step(task, jax.random.key(0), 1)
    micro = step_lib.make_eval_step(task, jax.random.key(0), 4)
    params = task.init(jax.random.key(1))
    loss1, aux1 = jax.jit(whole)(params, batch)
    loss4, aux4 = jax.jit(micro)(params, batch)
    np.testing.assert_allclose(loss4, loss1, rtol=1e-6)
    assert float(aux4["weight"]) == float(aux1["weight"]) == float(np.sum(batch["w"]))
    uniform = np.mean(
        [float(whole(params, {k: v[i::4] for k, v in batch.items()})[0]) for i in range(4)]
    )
    assert abs(uniform - float(loss1)) > 1e-3  # the weighting matters on this batch
    # Through the loop, on 8 devices with 2 rows per device per microbatch.
    kw = dict(devices=None, task=task, num_steps=4, checkpoint_every=0)
    _run(tmp_path / "one", eval_accum_steps=1, **kw)
    _run(tmp_path / "two", eval_accum_steps=2, **kw)
    evals = lambda d: [
        e["eval/loss"] for e in read_metrics(f"{d}/metrics.jsonl") if "eval/loss" in e
    ]
    assert len(evals(tmp_path / "one")) == 1
    np.testing.assert_allclose(evals(tmp_path / "two"), evals(tmp_path / "one"), rtol=1e-6)
    with pytest.raises(ConfigError, match="eval_accum_steps=3"):
        _run(tmp_path / "three", eval_accum_steps=3, **kw)


def test_batch_ramp_compiles_once_resumes_bitwise_and_logs_batch_size(tmp_path, monkeypatch):
    # 16 rows = 4 microbatches of 4; ramp over 6 microbatches: steps use 1, 1, 2, 3, 4, ... of them.
    original, traces = step_lib.make_train_step, []

    def counted(*a, **k):
        fn = original(*a, **k)
        return lambda state, batch: traces.append(1) or fn(state, batch)  # runs when traced

    monkeypatch.setattr(step_lib, "make_train_step", counted)
    ramp = dict(grad_accum_steps=4, batch_ramp_microbatches=6, num_steps=12)
    full = _run(tmp_path / "full", **ramp)
    assert len(traces) == 1  # one program for every accumulation count
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "part", task=make_toy_task(crash_at=9), **ramp)
    resumed = _run(tmp_path / "part", **ramp)
    chex.assert_trees_all_equal(_params(full), _params(resumed))
    logged = [e for e in read_metrics(f"{tmp_path}/full/metrics.jsonl") if "train/loss" in e]
    assert [e["train/batch_size"] for e in logged[:3]] == [4, 12, 16]  # steps 2, 4, 6


def test_ramped_step_equals_accumulating_only_its_active_microbatches():
    # At a(k) = 3 of 4 microbatches, the ramped step must equal a plain 3-microbatch step on the
    # rows of those microbatches (microbatch i = rows i, i+4, ...), weighted rows included.
    task = make_toy_task(dropout=False, weighted=True)
    mesh = step_lib.mesh_lib.make_mesh(toy_config().mesh, jax.devices()[:1])
    keys = jax.random.split(jax.random.key(0), 3)

    def step_after(state, batch, **overrides):
        config = toy_config(**{"optimizer.schedule": "constant", **overrides})
        tx, schedule = step_lib.make_optimizer(
            config.optimizer, 12, task.init(keys[0]), step_lib.step_table(config)
        )
        if state is None:
            state = step_lib.make_init_state(task, tx)(keys[0])
            state["step"] = jnp.int32(3)  # a(3) = 3 under this ramp
        fn = step_lib.make_train_step(task, tx, schedule, config, mesh, keys[1], keys[2])
        return state, jax.jit(fn)(state, batch)[0]

    batch = task.host_batch(0, 0, 1)
    state, ramped = step_after(None, batch, grad_accum_steps=4, batch_ramp_microbatches=6)
    rows = np.array([q * 4 + i for q in range(4) for i in range(3)])  # row q*3+i <- q*4+i
    _, plain = step_after(state, {k: v[rows] for k, v in batch.items()}, grad_accum_steps=3)
    chex.assert_trees_all_close(ramped["params"], plain["params"], atol=1e-6, rtol=1e-6)

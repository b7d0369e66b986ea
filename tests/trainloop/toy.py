"""A tiny model-free task for exercising the loop: noisy linear regression with a 2-layer MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from trainloop.defaults import base_config
from trainloop.task import Task

D_IN, D_HID = 8, 64


def toy_config(**overrides):
    c = base_config()
    c.task = "toy"
    c.num_steps = 12
    c.batch_size = 16
    c.log_every = 2
    c.eval_every = 4
    c.checkpoint_every = 4
    c.keep_checkpoints = 2
    c.progress_bar = False
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-2
    c.optimizer.weight_decay = 0.01
    c.optimizer.no_decay = ("bias",)
    c.optimizer.clip_norm = 1.0
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 3
    c.mesh.fsdp_min_size = 16
    for k, v in overrides.items():
        node = c
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return c


def _init(rng):
    k1, k2 = jax.random.split(rng)
    return {
        "hidden": {"w": jax.random.normal(k1, (D_IN, D_HID)) * 0.3, "bias": jnp.zeros(D_HID)},
        "out": {"w": jax.random.normal(k2, (D_HID, 1)) * 0.3, "bias": jnp.zeros(1)},
    }


def _loss(params, batch, rng, dropout=True):
    h = jax.nn.relu(batch["x"] @ params["hidden"]["w"] + params["hidden"]["bias"])
    if dropout:  # noise from rng so per-step randomness is exercised
        keep = jax.random.bernoulli(rng, 0.9, h.shape)
        h = jnp.where(keep, h / 0.9, 0.0)
    pred = (h @ params["out"]["w"] + params["out"]["bias"])[:, 0]
    err = pred - batch["y"]
    aux = {"mae": jnp.mean(jnp.abs(err)), "num_tokens": jnp.float32(batch["y"].shape[0] * 4)}
    if "w" not in batch:
        return jnp.mean(err**2), aux
    # Weighted examples, like token-weighted LM losses: microbatches carry unequal total weight.
    total = jnp.sum(batch["w"])
    return jnp.sum(batch["w"] * err**2) / total, aux | {"weight": total}


def _example_rows(step: int, rows: np.ndarray) -> dict:
    rng = np.random.default_rng([step, 1234])
    x = rng.normal(size=(16, D_IN)).astype(np.float32)
    y = (x @ np.arange(1, D_IN + 1, dtype=np.float32) / D_IN).astype(np.float32)
    return {"x": x[rows], "y": y[rows]}


def _weights(rows: np.ndarray) -> np.ndarray:
    """Every fourth example counts 4x, so even and odd rows (the two microbatches of
    grad_accum_steps=2) have total weights 20 and 8."""
    return np.where(rows % 4 == 0, 4.0, 1.0).astype(np.float32)


def make_toy_task(
    batch_size: int = 16,
    device_data: bool = False,
    blowup_at: int | None = None,
    dropout: bool = True,
    width: int = D_HID,
    crash_at: int | None = None,
    weighted: bool = False,
) -> Task:
    """`blowup_at`: the loss is NaN from that step on (tests the non-finite guard).
    `crash_at`: the data source raises at that step (simulates a killed job).
    `weighted`: examples carry weights and the loss is their weighted mean (host data only)."""

    def host_batch(step, process_index, process_count):
        if step == crash_at:
            raise RuntimeError(f"simulated crash at step {step}")
        per = batch_size // process_count
        rows = np.arange(process_index * per, (process_index + 1) * per)
        out = _example_rows(step, rows)
        out["step"] = np.full((per,), step, np.int32)
        if weighted:
            out["w"] = _weights(rows)
        return out

    def device_batch(rng):
        x = jax.random.normal(rng, (batch_size, D_IN))
        y = x @ (jnp.arange(1, D_IN + 1, dtype=jnp.float32) / D_IN)
        return {"x": x, "y": y, "step": jnp.zeros((batch_size,), jnp.int32)}

    def loss(params, batch, rng):
        value, aux = _loss(params, batch, rng, dropout)
        if blowup_at is not None:
            value = jnp.where(batch["step"][0] >= blowup_at, jnp.nan, value)
        return value, aux

    def eval_batches():
        b = _example_rows(10**6, np.arange(16))
        b["step"] = np.zeros((16,), np.int32)
        if weighted:
            b["w"] = _weights(np.arange(16) // 2)  # unequal microbatch weights at any split
        return [b, b]

    def init(rng):
        params = _init(rng)
        if width != D_HID:  # a different structure, for the resume-mismatch test
            params["hidden"]["w"] = jnp.zeros((D_IN, width))
            params["hidden"]["bias"] = jnp.zeros(width)
            params["out"]["w"] = jnp.zeros((width, 1))
        return params

    return Task(
        init=init,
        loss=loss,
        global_batch_size=batch_size,
        host_batch=None if device_data else host_batch,
        device_batch=device_batch if device_data else None,
        eval_batches=eval_batches,
        name="toy",
    )

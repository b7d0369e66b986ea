"""`make_task(config) -> trainloop.task.Task` for in-context linear regression ("linear_regression").

Config layout (see configs/linear_regression.py): `config.data.{setting, d, n, eval_batch_size}`,
`config.model.{layers, heads, parameterization, attention, init_std, embed}`, plus the shared keys
(`seed`, `num_steps`, `batch_size`, `optimizer.*`). Fresh prompts for step t come from the rng the loop
passes to `device_batch` (fold_in(data_key, t)); evaluation uses one fixed batch from its own key.
"""

from __future__ import annotations

import functools

import jax
import ml_collections

from linear_tf import data, model
from trainloop.task import Task

TASK_NAME = "linear_regression"


def specs_from_config(config: ml_collections.ConfigDict) -> tuple[model.ModelSpec, data.DataSpec]:
    dspec = data.make_data_spec(
        config.data.setting, d=config.data.d, n=config.data.n, seed=int(config.seed)
    )
    m = config.model
    mspec = model.ModelSpec(
        d=dspec.d,
        n=dspec.n,
        layers=int(m.layers),
        heads=int(m.heads),
        parameterization=m.parameterization,
        attention=m.attention,
        init_std=float(m.init_std),
        embed=bool(m.embed),
    )
    return mspec, dspec


def make_loss_fn(mspec: model.ModelSpec):
    def loss(params, batch, rng=None):
        del rng
        value = model.mse_loss(mspec, params, batch)
        return value, {"mse": value}

    return loss


def make_task(config: ml_collections.ConfigDict) -> Task:
    mspec, dspec = specs_from_config(config)
    batch_size = int(config.batch_size)
    loss = make_loss_fn(mspec)

    @functools.cache
    def fixed_eval_batch():
        return data.eval_batch(dspec, int(config.data.eval_batch_size))

    return Task(
        init=lambda rng: model.init_params(mspec, rng),
        loss=loss,
        global_batch_size=batch_size,
        device_batch=lambda rng: data.sample(dspec, rng, batch_size),
        eval_batches=lambda: [fixed_eval_batch()],
        eval_loss=lambda params, batch: loss(params, batch, None),
        name=TASK_NAME,
    )


def task_specs(config):
    """(ModelSpec, DataSpec, eval batch) for scripts that bypass the loop (sweeps, phenomena)."""
    mspec, dspec = specs_from_config(config)
    return mspec, dspec, jax.device_get(data.eval_batch(dspec, int(config.data.eval_batch_size)))

"""Optimisers, schedules, and path-rule masks built from `config.optimizer`."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from trainloop.config_util import ConfigError, check_choice

OPTIMIZERS = ("adamw", "adam", "sgd", "sgdm")
SCHEDULES = ("constant", "warmup_linear", "warmup_cosine")


def path_str(path) -> str:
    """'/'-joined key path of a pytree leaf, e.g. 'blocks/attn/w_qk'."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def path_mask(params, patterns: Sequence[str]):
    """Pytree of bools: True where the leaf's path matches any regex in `patterns` (re.search)."""
    compiled = [re.compile(p) for p in patterns]
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(c.search(path_str(path)) for c in compiled), params
    )


def make_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    check_choice("optimizer.schedule", opt.schedule, SCHEDULES)
    peak = float(opt.lr)
    if opt.schedule == "constant":
        return optax.constant_schedule(peak)
    warmup = (
        int(round(opt.warmup_fraction * num_steps)) if opt.warmup_fraction else opt.warmup_steps
    )
    warmup = max(0, min(int(warmup), num_steps))
    end = peak * float(opt.end_lr_fraction)
    decay_steps = max(1, num_steps - warmup)
    if opt.schedule == "warmup_linear":
        decay = optax.linear_schedule(peak, end, decay_steps)
    else:
        decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=opt.end_lr_fraction)
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def make_optimizer(
    opt: ml_collections.ConfigDict, num_steps: int, params=None, step_table=None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Builds `clip -> optimiser` (reference order: clip the raw gradient, then step).

    `params` (or an abstract tree of them) is needed only when `no_decay` or `frozen` rules are set;
    masks are built from the parameter paths. With a batch ramp (`step_table`, a
    `trainloop.ramp.StepTable`), the schedule spans the run's full-batch equivalents and is read at
    the data consumed before each step rather than at the step count.
    """
    check_choice("optimizer.name", opt.name, OPTIMIZERS)
    if step_table is None:
        schedule = make_schedule(opt, num_steps)
    else:
        by_data = make_schedule(opt, step_table.schedule_steps)
        schedule = lambda count: by_data(step_table.schedule_position(count))
    wd = float(opt.weight_decay)
    needs_params = bool(opt.no_decay) or bool(opt.frozen)
    if needs_params and params is None:
        raise ConfigError("optimizer.no_decay / optimizer.frozen rules need the parameter tree.")

    decay_mask = None
    if wd and opt.no_decay:
        no_decay = path_mask(params, opt.no_decay)
        decay_mask = jax.tree_util.tree_map(lambda m: not m, no_decay)

    chain = []
    if opt.clip_norm:
        chain.append(optax.clip_by_global_norm(float(opt.clip_norm)))
    if opt.name == "adamw":
        chain.append(
            optax.adamw(
                schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=wd, mask=decay_mask
            )
        )
    elif opt.name == "adam":
        if wd:
            chain.append(optax.add_decayed_weights(wd, mask=decay_mask))
        chain.append(optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps))
    else:
        if wd:
            chain.append(optax.add_decayed_weights(wd, mask=decay_mask))
        momentum = float(opt.momentum) if opt.name == "sgdm" else None
        chain.append(optax.sgd(schedule, momentum=momentum, nesterov=opt.nesterov))
    tx = optax.chain(*chain)

    if opt.frozen:
        frozen = path_mask(params, opt.frozen)
        labels = jax.tree_util.tree_map(lambda f: "frozen" if f else "train", frozen)
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, schedule


def global_norm(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))

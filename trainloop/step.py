"""The compiled programs of the loop: the train step and the eval step, as pure functions.

`build_programs(config, task)` is the one set-up of a run (mesh, keys, optimizer, FSDP shardings,
the jitted donated step) shared by the loop, the block comparisons and the benchmarks.
`make_train_step` and `make_eval_step` return functions of (state, batch) and (params, batch) that
`trainloop.train` jits; nothing here touches the host, files or the mesh beyond a sharding
constraint. Gradient accumulation runs as a `lax.scan` over strided microbatches inside the one
program, token-weighted when the task reports weights, and a batch ramp (`trainloop.ramp`) skips a
step's inactive microbatches with a `lax.cond`, so every step of a run shares one compilation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from trainloop import mesh as mesh_lib
from trainloop import ramp as ramp_lib
from trainloop.optim import global_norm, make_optimizer
from trainloop.task import Task


def make_init_state(task: Task, tx):
    """`rng -> train state`: the pytree the step updates and checkpoints hold.

    `nonfinite` records (step, which metric) of the first NaN/Inf, or (-1, -1).
    """

    def init_state(key):
        params = task.init(key)
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "opt_state": tx.init(params),
            "nonfinite": jnp.full((2,), -1, jnp.int32),
        }

    return init_state


# Metrics that add up across microbatches; all others are (weighted) means.
_SUMMED = ("weight", "num_tokens")


def split_microbatches(batch, accum: int):
    """[B, ...] leaves -> [accum, B / accum, ...]: microbatch i takes rows i, i+accum, ...

    Strided rather than contiguous, so that every device of a batch-sharded array holds a share of
    each microbatch and no device idles while the others compute.
    """

    def split(x):
        x = x.reshape((x.shape[0] // accum, accum) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return jax.tree_util.tree_map(split, batch)


def is_log_step(steps_done, log_every: int, num_steps: int):
    """Whether train metrics are read after `steps_done` steps (Python ints or traced arrays)."""
    return (steps_done % log_every == 0) | (steps_done == num_steps)


def accumulate(fn, micro, accum: int, active=None):
    """Combines `fn(microbatch, i) -> (loss, metrics, tree)` over `accum` microbatches in a scan.

    Microbatches are combined in proportion to their `weight` metric when the task reports one
    (e.g. predicted-token counts), which makes the accumulated loss, metrics and tree (gradients)
    equal to the full batch's token-weighted mean; otherwise uniformly. Metrics in `_SUMMED` add
    up. Microbatches `i >= active` (a traced count, or None for all) are skipped by a `lax.cond`,
    so they cost no compute and carry no weight.
    """

    def weighted(mb, i):
        loss, aux, tree = fn(mb, i)
        w = aux["weight"].astype(jnp.float32) if "weight" in aux else jnp.float32(1.0)
        scaled = {k: v if k in _SUMMED else v * w for k, v in aux.items()}
        return w, (loss * w, scaled, jax.tree_util.tree_map(lambda g: g * w, tree))

    first = jax.tree_util.tree_map(lambda x: x[0], micro)
    zeros = jax.eval_shape(weighted, first, 0)
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)

    def body(carry, inputs):
        i, mb = inputs
        if active is None:
            terms = weighted(mb, i)
        else:
            terms = jax.lax.cond(i < active, lambda: weighted(mb, i), lambda: zeros)
        return jax.tree_util.tree_map(jnp.add, carry, terms), None

    (total_w, (loss, aux, tree)), _ = jax.lax.scan(body, zeros, (jnp.arange(accum), micro))
    inv = 1.0 / jnp.maximum(total_w, jnp.finfo(jnp.float32).tiny)
    aux = {k: v if k in _SUMMED else v * inv for k, v in aux.items()}
    return loss * inv, aux, jax.tree_util.tree_map(lambda g: (g * inv).astype(g.dtype), tree)


def step_table(config) -> ramp_lib.StepTable | None:
    """The batch ramp's per-step table (`config.batch_ramp_microbatches`), or None without one."""
    ramp = ramp_lib.from_config(config)
    return None if ramp is None else ramp_lib.StepTable(ramp, int(config.num_steps))


def make_train_step(task: Task, tx, schedule, config, mesh, step_key, data_key):
    """The pure train step `(state, batch) -> (state, metrics)`; jitted by the caller.

    With a batch ramp, step k uses only its first a(k) microbatches (`trainloop.ramp`).
    """
    accum = int(config.grad_accum_steps)
    table = step_table(config)
    log_every, num_steps = int(config.log_every), int(config.num_steps)
    batch_sharding = mesh_lib.batch_sharding(mesh)

    def grads_of(params, batch, rng):
        (loss, aux), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, rng)
        return loss, dict(aux), grads

    def step_fn(state, batch):
        step = state["step"]
        rng = jax.random.fold_in(step_key, step)
        if task.device_batch is not None:
            batch = task.device_batch(jax.random.fold_in(data_key, step))
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        params = state["params"]
        if accum == 1:
            loss, aux, grads = grads_of(params, batch, rng)
        else:
            loss, aux, grads = accumulate(
                lambda mb, i: grads_of(params, mb, jax.random.fold_in(rng, i)),
                split_microbatches(batch, accum),
                accum,
                active=None if table is None else table.active(step),
            )
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_params = jax.tree_util.tree_map(lambda p, u: p + u.astype(p.dtype), params, updates)
        grad_norm = global_norm(grads)
        nonfinite = first_nonfinite(state["nonfinite"], step, loss, grad_norm)
        # The loop reads metrics on log steps only; the two extra passes over the parameters are
        # skipped on the others (NaN there).
        param_norm, update_norm = jax.lax.cond(
            is_log_step(step + 1, log_every, num_steps),
            lambda: (global_norm(new_params), global_norm(updates)),
            lambda: (jnp.float32(jnp.nan), jnp.float32(jnp.nan)),
        )
        metrics = {f"train/{k}": v for k, v in aux.items()}
        metrics |= {
            "train/loss": loss,
            "train/grad_norm": grad_norm,
            "train/param_norm": param_norm,
            "train/update_norm": update_norm,
            "train/lr": schedule(step),
            # Not logged: lets the loop check for NaN from a log step's metrics read one step
            # late, after `state` (and so state["nonfinite"]) has been donated to the next step.
            "nonfinite": nonfinite,
        }
        if table is not None:
            metrics["train/batch_size"] = table.active(step) * (int(config.batch_size) // accum)
        new_state = {"step": step + 1, "params": new_params, "opt_state": opt_state}
        return new_state | {"nonfinite": nonfinite}, metrics

    return step_fn


def first_nonfinite(record, step, loss, grad_norm):
    """The (step, which) record of the first non-finite step: `record` if it already holds one
    (or this step is finite), else (`step`, 1 for a NaN/Inf loss or 2 for the gradient norm)."""
    bad = jnp.where(~jnp.isfinite(loss), 1, jnp.where(~jnp.isfinite(grad_norm), 2, 0))
    first_bad = record[0] >= 0
    return jnp.where(first_bad | (bad == 0), record, jnp.stack([step, bad]).astype(jnp.int32))


def eval_accum_steps(config) -> int:
    """Microbatches per eval batch: `eval_accum_steps`, or training's `grad_accum_steps` if 0."""
    return int(config.get("eval_accum_steps", 0) or config.grad_accum_steps)


def make_eval_step(task: Task, eval_key, accum: int = 1):
    """The pure eval step `(params, batch) -> (loss, metrics)` over one eval batch.

    With `accum > 1` the batch runs as `accum` microbatches inside one program (a `lax.scan`, as in
    training), so evaluation needs the memory of one microbatch rather than of the whole batch
    (the float32 logits of an 8192-sequence BERT batch at vocab 32768 alone take 137 GB). They are
    combined by `accumulate`, token-weighted, so the result equals the whole-batch value.
    """
    if task.eval_loss is not None:
        fn = task.eval_loss
    else:
        fn = lambda params, batch: task.loss(params, batch, eval_key)
    if accum == 1:
        return fn

    def eval_step(params, batch):
        loss, aux, _ = accumulate(
            lambda mb, i: (*fn(params, mb), {}), split_microbatches(batch, accum), accum
        )
        return loss, aux

    return eval_step


@dataclasses.dataclass(frozen=True)
class Programs:
    """What a run compiles and starts from, built once by `build_programs`."""

    mesh: Any
    init_key: jax.Array
    eval_key: jax.Array
    init_state: Callable  # init key -> train state (pure)
    shardings: Any  # of the train state: FSDP per `config.mesh`, step counters replicated
    abstract_state: Any  # ShapeDtypeStructs carrying `shardings` (checkpoint restore, lowering)
    step_fn: Callable  # (state, batch) -> (state, metrics), not jitted
    train_step: Callable  # step_fn jitted, state donated, output state in `shardings`

    def initial_state(self):
        """The train state at step 0, placed in its shardings."""
        return jax.jit(self.init_state, out_shardings=self.shardings)(self.init_key)


def build_programs(config: ml_collections.ConfigDict, task: Task, devices=None) -> Programs:
    """The mesh over `devices` (default: all), the run's keys from `config.seed`, its optimizer,
    state shardings and jitted train step. Keys: split(key(seed), 4) = init, step, data, eval."""
    mesh = mesh_lib.make_mesh(config.mesh, devices)
    mesh_lib.check_batch_divisible(config.batch_size, config.grad_accum_steps, mesh)
    init_key, step_key, data_key, eval_key = jax.random.split(jax.random.key(config.seed), 4)
    abstract_params = jax.eval_shape(task.init, init_key)
    num_steps = int(config.num_steps)
    tx, schedule = make_optimizer(config.optimizer, num_steps, abstract_params, step_table(config))
    init_state = make_init_state(task, tx)
    abstract_state = jax.eval_shape(init_state, init_key)
    shardings = mesh_lib.tree_shardings(abstract_state, mesh, int(config.mesh.fsdp_min_size))
    shardings["step"] = shardings["nonfinite"] = mesh_lib.replicated(mesh)
    abstract_state = jax.tree_util.tree_map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), abstract_state, shardings
    )
    step_fn = make_train_step(task, tx, schedule, config, mesh, step_key, data_key)
    train_step = jax.jit(step_fn, donate_argnums=(0,), out_shardings=(shardings, None))
    return Programs(
        mesh, init_key, eval_key, init_state, shardings, abstract_state, step_fn, train_step
    )

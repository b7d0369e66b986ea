"""Optimisers, schedules, and path-rule masks built from `config.optimizer`.

AdamW (the suite's default) runs as one fused update per parameter (`fused_adamw`): clipping, both
moments, bias correction, masked weight decay and the learning rate in a single elementwise pass, with
the optimizer state of the equivalent optax chain, so checkpoints are interchangeable with it.
"""

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

    clip = [optax.clip_by_global_norm(float(opt.clip_norm))] if opt.clip_norm else []
    tx = optax.chain(*clip, *_update_rule(opt, schedule, wd, decay_mask))

    frozen = None
    if opt.frozen:
        frozen = path_mask(params, opt.frozen)
        labels = jax.tree_util.tree_map(lambda f: "frozen" if f else "train", frozen)
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    # AdamW runs as `fused_adamw` (same state, same updates to float32 rounding) unless the config
    # sets the implementation choice optimizer.fused=False (held only when set, so default configs
    # and the run ids that hash them do not change).
    fused = opt.get("fused", True)
    if not isinstance(fused, bool):
        raise ConfigError(f"optimizer.fused={fused!r} must be True or False.")
    if fused and opt.name == "adamw":
        tx = fused_adamw(
            tx, schedule, opt, decay_mask=decay_mask if wd else None, frozen_mask=frozen
        )
    return tx, schedule


def _update_rule(opt, schedule, wd: float, decay_mask) -> list[optax.GradientTransformation]:
    """The optimiser after clipping: AdamW (decay inside), or Adam / SGD(M) with the decay added
    to the gradient first."""
    if opt.name == "adamw":
        kw = dict(b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=wd, mask=decay_mask)
        return [optax.adamw(schedule, **kw)]
    decay = [optax.add_decayed_weights(wd, mask=decay_mask)] if wd else []
    if opt.name == "adam":
        return [*decay, optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)]
    momentum = float(opt.momentum) if opt.name == "sgdm" else None
    return [*decay, optax.sgd(schedule, momentum=momentum, nesterov=opt.nesterov)]


def _leaves(tree):
    """Leaves of a params-shaped tree, with optax's MaskedNode (masked-out entry) as a leaf."""
    return jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, optax.MaskedNode))


def fused_adamw(
    chain: optax.GradientTransformation,
    schedule: optax.Schedule,
    opt: ml_collections.ConfigDict,
    decay_mask=None,
    frozen_mask=None,
) -> optax.GradientTransformation:
    """`chain` (clip -> adamw with the decay mask, inside multi_transform when some leaves are
    frozen) as one elementwise expression per parameter.

    The optax chain runs clipping, the two moment updates, bias correction, weight decay and the
    learning rate as separate tree maps; XLA CPU then materialises intermediate trees between them
    (several extra passes over every parameter-sized array per step). Here each leaf's new moments
    and update come from one expression of (g, mu, nu, p), and the clipping norm is the same
    expression as `global_norm`, so XLA computes it once with the train step's gradient-norm metric.

    `init` is `chain.init`: the state (and so every checkpoint) has exactly the chain's structure;
    `update` reads and writes the ScaleByAdamState (count, mu, nu) and ScaleByScheduleState (count)
    nodes of that state. Frozen leaves get a zero update and keep their masked-out moments.
    """
    b1, b2, eps = float(opt.b1), float(opt.b2), float(opt.eps)
    wd, clip = float(opt.weight_decay), float(opt.clip_norm)

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("fused_adamw needs the params (weight decay).")
        adam, scheds = _adam_state_nodes(state)
        g_leaves, treedef = jax.tree_util.tree_flatten(grads)
        p_leaves = treedef.flatten_up_to(params)
        mu_leaves, nu_leaves = _leaves(adam.mu), _leaves(adam.nu)
        n = len(g_leaves)
        frozen = treedef.flatten_up_to(frozen_mask) if frozen_mask is not None else [False] * n
        decay = treedef.flatten_up_to(decay_mask) if decay_mask is not None else [bool(wd)] * n
        trained = [g for g, f in zip(g_leaves, frozen, strict=True) if not f]

        count = optax.safe_increment(adam.count)
        lr = schedule(scheds[0].count) if scheds else schedule(0)
        corr1, corr2 = 1 - b1**count, 1 - b2**count  # optax's bias correction
        scale = None
        if clip:
            g_norm = global_norm(trained)
            scale = jnp.where(g_norm < clip, 1.0, clip / g_norm)

        updates, new_mu, new_nu = [], [], []
        for g, m, v, p, f, d in zip(
            g_leaves, mu_leaves, nu_leaves, p_leaves, frozen, decay, strict=True
        ):
            if f:  # a zero update; the masked-out moments stay
                u, m, v = jnp.zeros_like(g), m, v
            else:
                u, m, v = _adamw_leaf(g, m, v, p, scale, lr, (b1, b2, eps, corr1, corr2), d and wd)
            updates.append(u)
            new_mu.append(m)
            new_nu.append(v)

        new_state = _with_new_moments(state, adam, count, new_mu, new_nu)
        return jax.tree_util.tree_unflatten(treedef, updates), new_state

    return optax.GradientTransformation(chain.init, update)


def _adamw_leaf(g, m, v, p, scale, lr, adam: tuple, wd: float):
    """(update, mu, nu) of one trained leaf in one elementwise expression: the gradient `g` scaled
    by the clipping factor `scale` (None: no clipping), the moments, bias correction (`adam` is
    (b1, b2, eps, 1 - b1^count, 1 - b2^count)), weight decay `wd` (0: none) and the LR."""
    b1, b2, eps, corr1, corr2 = adam
    if scale is not None:
        g = g * scale.astype(g.dtype)
    m = (1 - b1) * g + b1 * m
    v = (1 - b2) * (g * g) + b2 * v
    u = (m / corr1.astype(m.dtype)) / (jnp.sqrt(v / corr2.astype(v.dtype)) + eps)
    if wd:
        u = u + wd * p
    return (-lr * u).astype(g.dtype), m, v


def _is_state_node(x) -> bool:
    return isinstance(x, (optax.ScaleByAdamState, optax.ScaleByScheduleState))


def _adam_state_nodes(state):
    """(the one ScaleByAdamState, the ScaleByScheduleStates) of a clip -> adamw chain's state;
    ValueError for any other layout (the fused update would not match the chain)."""
    nodes = [
        n for n in jax.tree_util.tree_leaves(state, is_leaf=_is_state_node) if _is_state_node(n)
    ]
    adams = [n for n in nodes if isinstance(n, optax.ScaleByAdamState)]
    if (
        len(adams) != 1
        or len(nodes) > 2
        or len(jax.tree_util.tree_leaves(state)) != len(jax.tree_util.tree_leaves(nodes))
    ):
        raise ValueError("fused_adamw: unexpected optimizer state layout; use the optax chain.")
    return adams[0], [n for n in nodes if isinstance(n, optax.ScaleByScheduleState)]


def _with_new_moments(state, adam, count, new_mu: list, new_nu: list):
    """`state` with its Adam node replaced by (count, new moments) and every schedule count
    incremented: the state the optax chain would return."""
    mu_def = jax.tree_util.tree_structure(
        adam.mu, is_leaf=lambda x: isinstance(x, optax.MaskedNode)
    )
    new_adam = optax.ScaleByAdamState(
        count=count,
        mu=jax.tree_util.tree_unflatten(mu_def, new_mu),
        nu=jax.tree_util.tree_unflatten(mu_def, new_nu),
    )

    def replace(node):
        if isinstance(node, optax.ScaleByAdamState):
            return new_adam
        if isinstance(node, optax.ScaleByScheduleState):
            return optax.ScaleByScheduleState(count=optax.safe_increment(node.count))
        return node

    return jax.tree_util.tree_map(replace, state, is_leaf=_is_state_node)


def global_norm(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))

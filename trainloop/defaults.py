"""The config keys every experiment shares; experiment configs start from `base_config()`.

`validate(config)` checks every one of them (type, range, divisibility) before any work starts.
"""

from __future__ import annotations

import math
import re

import ml_collections

from trainloop.config_util import check_choice
from trainloop.errors import ConfigError


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = ""  # dispatch key for scripts/train.py
    c.seed = 0  # params init and per-step randomness (fold_in(key, step))
    c.num_steps = 1000
    c.batch_size = 32  # global examples per optimiser step
    c.grad_accum_steps = 1  # microbatches per step (batch_size must divide evenly)
    c.eval_accum_steps = 0  # microbatches per eval batch; 0 = grad_accum_steps
    # Linear batch ramp (trainloop/ramp.py): from 1 microbatch to grad_accum_steps over this many
    # consumed microbatches; 0 = a fixed batch.
    c.batch_ramp_microbatches = 0
    c.prefetch_batches = 2  # host batches built ahead in a background thread; 0 = none
    c.log_every = 50
    c.eval_every = 500  # 0 disables evaluation during training (still runs at the end)
    c.checkpoint_every = 1000  # 0 disables periodic checkpoints (still saves at the end)
    c.keep_checkpoints = 3
    c.progress_bar = True

    c.optimizer = ml_collections.ConfigDict()
    o = c.optimizer
    o.name = "adamw"  # adamw | adam | sgd | sgdm
    o.lr = 1e-3  # peak learning rate
    o.b1 = 0.9
    o.b2 = 0.999
    o.eps = 1e-8
    o.weight_decay = 0.0  # decoupled (adamw); sgd variants ignore it unless > 0 (added to grads)
    o.momentum = 0.9  # sgdm only
    o.nesterov = False
    o.clip_norm = 0.0  # global-norm clipping before the optimiser; 0 disables
    o.schedule = "constant"  # constant | warmup_linear | warmup_cosine
    o.warmup_steps = 0  # absolute warmup steps; used when warmup_fraction is 0
    o.warmup_fraction = 0.0  # warmup as a fraction of num_steps
    o.end_lr_fraction = 0.0  # final lr / peak lr for the decaying schedules
    # Regexes over "/"-joined parameter paths. A path matching any no_decay rule gets no weight decay;
    # a path matching any frozen rule is never updated.
    o.no_decay = ()
    o.frozen = ()

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # data-parallel axis size; -1 = all devices left after fsdp
    c.mesh.fsdp = 1  # parameter/optimizer-state sharding axis size
    c.mesh.fsdp_min_size = 2**14  # arrays smaller than this stay replicated under FSDP
    return c


# ---------------------------------------------------------------------------------------------
# Validation of the shared keys, at config time (before any data, model or file is touched).


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(low: int):
    return lambda v, c: _is_int(v) and v >= low, f"an integer >= {low}"


def _real_in(low: float, high: float | None, high_open: bool = False):
    upper = "" if high is None else f" and {'<' if high_open else '<='} {high}"
    ok = lambda v, c: (  # noqa: E731
        _is_real(v) and v >= low and (high is None or (v < high if high_open else v <= high))
    )
    return ok, f"a finite number >= {low}{upper}"


def _regexes(v, c) -> bool:
    if isinstance(v, str) or not isinstance(v, (tuple, list)):
        return False
    try:
        for pattern in v:
            re.compile(pattern)
    except (re.error, TypeError):
        return False
    return True


_BOOL = (lambda v, c: isinstance(v, bool), "true or false")
_REGEXES = (_regexes, "a tuple of regular expressions (strings), e.g. ('bias', 'scale$')")

# key -> (check(value, config) -> bool, what is allowed). Every key of base_config() has a rule
# (tests/trainloop/test_validation.py checks it), so a new shared key needs one here.
RULES = {
    "task": (lambda v, c: isinstance(v, str), "a string"),
    "seed": (lambda v, c: _is_int(v), "an integer"),
    "num_steps": _int_at_least(1),
    "batch_size": _int_at_least(1),
    "grad_accum_steps": (
        lambda v, c: _is_int(v) and v >= 1 and _is_int(c.batch_size) and c.batch_size % v == 0,
        "an integer >= 1 that divides batch_size",
    ),
    "log_every": _int_at_least(1),
    "eval_every": (_int_at_least(0)[0], "an integer >= 0 (0: evaluate at the end only)"),
    "checkpoint_every": (_int_at_least(0)[0], "an integer >= 0 (0: save at the end only)"),
    "keep_checkpoints": _int_at_least(1),
    "eval_accum_steps": (_int_at_least(0)[0], "an integer >= 0 (0: grad_accum_steps)"),
    "batch_ramp_microbatches": (_int_at_least(0)[0], "an integer >= 0 (0: no batch ramp)"),
    "prefetch_batches": (_int_at_least(0)[0], "an integer >= 0 (0: build batches in the loop)"),
    "progress_bar": _BOOL,
    "optimizer.name": None,  # choices from trainloop.optim (checked below)
    "optimizer.lr": _real_in(0.0, None),
    "optimizer.b1": _real_in(0.0, 1.0, high_open=True),
    "optimizer.b2": _real_in(0.0, 1.0, high_open=True),
    "optimizer.eps": _real_in(0.0, None),
    "optimizer.weight_decay": _real_in(0.0, None),
    "optimizer.momentum": _real_in(0.0, 1.0, high_open=True),
    "optimizer.nesterov": _BOOL,
    "optimizer.clip_norm": (_real_in(0.0, None)[0], "a finite number >= 0 (0: no clipping)"),
    "optimizer.schedule": None,  # choices from trainloop.optim
    "optimizer.warmup_steps": _int_at_least(0),
    "optimizer.warmup_fraction": _real_in(0.0, 1.0),
    "optimizer.end_lr_fraction": _real_in(0.0, 1.0),
    "optimizer.no_decay": _REGEXES,
    "optimizer.frozen": _REGEXES,
    "mesh.data": (
        lambda v, c: _is_int(v) and (v == -1 or v >= 1),
        "an integer >= 1, or -1 (all devices left after mesh.fsdp)",
    ),
    "mesh.fsdp": _int_at_least(1),
    "mesh.fsdp_min_size": _int_at_least(0),
}


def _lookup(config, key: str):
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            raise ConfigError(
                f"The config has no key {key!r}, which the training loop needs. Build configs on "
                "trainloop.defaults.base_config(), which defines every shared key."
            )
        node = node[part]
    return node


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks every shared key (type, range, divisibility); returns `config`.

    Raises a ConfigError naming the key, the bad value and what is allowed. Experiment-specific
    keys (model, data) are validated by their own packages.
    """
    from trainloop.optim import OPTIMIZERS, SCHEDULES  # imported here: it loads jax and optax

    choices = {"optimizer.name": OPTIMIZERS, "optimizer.schedule": SCHEDULES}
    for key, rule in RULES.items():
        value = _lookup(config, key)
        if rule is None:
            check_choice(key, value, choices[key])
            continue
        check, allowed = rule
        if not check(value, config):
            raise ConfigError(f"Invalid config value {key}={value!r}: it must be {allowed}.")
    return config

"""The config keys every experiment shares; experiment configs start from `base_config()`."""

from __future__ import annotations

import ml_collections


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

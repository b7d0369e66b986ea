"""Training tasks for `trainloop`: causal LM (decoder) and masked LM (BERT) on `simplified_tf.data`.

Register with scripts/train.py as "simplified_tf.tasks:make_lm_task" and
"simplified_tf.tasks:make_mlm_task". Both read `config.model` (see `model_config`), `config.data`
(see `simplified_tf.data.default_data_config`), `config.batch_size` and `config.seed` (model init
comes from the loop's rng; the data order uses `config.data_seed` if present, else `config.seed`).

Loss: token-weighted mean cross-entropy, sum(w * nll) / sum(w), with the data pipeline's weights
(decoder: every position with a target, minus EOS/pad targets when data.mask_eos; BERT: the
masked positions). Metrics: `accuracy` (weighted), `weight` (= sum(w), so the loop weights eval
batches by predicted tokens and eval/loss is the exact token mean), `num_tokens` (input tokens
processed: B*T for the decoder, valid tokens for BERT) and, in evaluation, `perplexity` =
exp(eval/loss) over the whole validation set (computed once from the token-weighted mean loss).

Scalar traces (the gains of paper Figs. 4 and 16-22): with `config.log_scalar_traces` (read with
`config.get`, default True), evaluation also reports every stored gain,
`eval/scalars/layer03/beta_ff`, `eval/scalars/layer00/alpha_h_mean` / `_std`, ... (see
`diagnostics.scalar_traces_arrays`). They are a few slices inside the jitted eval step, and blocks without gain arrays (pre_ln, parallel,
post_ln) report none, so the default costs nothing measurable; set it False to keep metrics.jsonl
small for deep skipless runs (about 10 traces per layer).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from simplified_tf.data import TextData, check_seq_len, make_text_data
from simplified_tf.diagnostics import scalar_traces_arrays
from simplified_tf.params import model_fns
from trainloop import ramp as ramp_lib
from trainloop.config_util import ConfigError
from trainloop.task import Task


def weighted_cross_entropy(logits_BTV, targets_BT, weights_BT):
    """(token-weighted mean NLL, weighted accuracy, sum of weights); logits in float32."""
    logits_BTV = logits_BTV.astype(jnp.float32)
    logz_BT = jax.nn.logsumexp(logits_BTV, axis=-1)
    picked_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
    nll_BT = logz_BT - picked_BT
    w_BT = weights_BT.astype(jnp.float32)
    total = jnp.sum(w_BT)
    denom = jnp.maximum(total, 1.0)
    loss = jnp.sum(w_BT * nll_BT) / denom
    correct_BT = (jnp.argmax(logits_BTV, axis=-1) == targets_BT).astype(jnp.float32)
    return loss, jnp.sum(w_BT * correct_BT) / denom, total


def _check_model_vs_data(model_cfg, data: TextData) -> None:
    if data.vocab_size > model_cfg.vocab_size:
        raise ConfigError(
            f"The tokenizer has {data.vocab_size} tokens but model.vocab_size="
            f"{model_cfg.vocab_size}; set model.vocab_size >= {data.vocab_size} (usually equal to "
            "data.vocab_size)."
        )
    check_seq_len(data.config.seq_len, int(model_cfg.max_len))


def _data_seed(config) -> int:
    return int(config.get("data_seed", config.seed))


def make_model_task(
    config: ml_collections.ConfigDict, kind: str, host_batch=None, eval_batches=None
) -> Task:
    """The Task for `kind` ("decoder" | "bert") given its data functions.

    Without data functions (`host_batch=None`) the task still has everything a compiled step needs
    (init, loss, eval loss), which is what `trainloop.memory` compiles from abstract inputs; its
    `host_batch` then refuses to run.
    """
    fns = model_fns(config.model)
    init, merge = fns.init, fns.merge
    use_dropout = float(config.model.dropout) > 0

    def forward(params, batch, rng):
        model = merge(params)
        rng = rng if use_dropout else None
        if kind == "decoder":
            return model(batch["inputs"], rng=rng), jnp.float32(batch["inputs"].size)
        valid_BT = batch["valid"]
        return model(batch["inputs"], valid_BT, rng=rng), jnp.sum(valid_BT.astype(jnp.float32))

    def loss_fn(params, batch, rng):
        logits_BTV, num_tokens = forward(params, batch, rng)
        loss, acc, weight = weighted_cross_entropy(logits_BTV, batch["targets"], batch["weights"])
        return loss, {"accuracy": acc, "weight": weight, "num_tokens": num_tokens}

    log_traces = bool(config.get("log_scalar_traces", True))

    def eval_loss(params, batch):
        loss, metrics = loss_fn(params, batch, None)
        if log_traces:  # the same values for every batch, so the loop's weighted mean keeps them
            metrics = {**metrics, **scalar_traces_arrays(params)}
        return loss, metrics

    def eval_summary(means):
        return {"perplexity": float(np.exp(means["loss"]))}

    def no_data(step, process_index, process_count):
        raise RuntimeError("This task was built without data (for compiling only).")

    return Task(
        init=init,
        loss=loss_fn,
        global_batch_size=int(config.batch_size),
        host_batch=host_batch or no_data,
        eval_batches=eval_batches,
        eval_loss=eval_loss,
        eval_summary=eval_summary,
        name=f"{'lm' if kind == 'decoder' else 'mlm'}/{config.model.block}",
    )


def abstract_batch(config: ml_collections.ConfigDict, kind: str, rows: int) -> dict:
    """Shapes and dtypes of a batch of `rows` sequences, as `simplified_tf.data` makes them."""
    shape = (rows, int(config.data.seq_len))
    out = {
        "inputs": jax.ShapeDtypeStruct(shape, jnp.int32),
        "targets": jax.ShapeDtypeStruct(shape, jnp.int32),
        "weights": jax.ShapeDtypeStruct(shape, jnp.float32),
    }
    if kind == "bert":
        out["valid"] = jax.ShapeDtypeStruct(shape, jnp.bool_)
    return out


def make_task_and_data(config: ml_collections.ConfigDict, kind: str) -> tuple[Task, TextData]:
    """The Task for `kind` ("decoder" | "bert") and the TextData behind it (for sampling, logs)."""
    if config.model.kind != kind:
        raise ConfigError(f"model.kind={config.model.kind!r} but this task needs kind={kind!r}.")
    data = make_text_data(
        config.data,
        kind=kind,
        global_batch_size=int(config.batch_size),
        seed=_data_seed(config),
        batch_ramp=ramp_lib.from_config(config),
    )
    _check_model_vs_data(config.model, data)
    task = make_model_task(
        config,
        kind,
        host_batch=data.host_batch,
        eval_batches=data.eval_batches if data.config.eval_batches > 0 else None,
    )
    return task, data


def make_lm_task(config: ml_collections.ConfigDict) -> Task:
    """Causal language modelling with the decoder (CodeParrot recipe, paper App. D.1)."""
    return make_task_and_data(config, "decoder")[0]


def make_mlm_task(config: ml_collections.ConfigDict) -> Task:
    """Masked language modelling with the BERT encoder (Crammed-BERT recipe, paper App. D.2)."""
    return make_task_and_data(config, "bert")[0]

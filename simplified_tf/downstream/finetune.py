"""Fine-tuning the BERT classifier on one downstream task, through the shared training loop.

Three steps, so that the expensive parts are shared by the runs that can share them:
- `load_encoder(config)`: the body to start from and its tokenizer. With `init_from=WORKDIR` the
  body is the pretraining run's latest params (`trainloop.checkpoint.restore_run_params`), its
  model config (this config's dropout, dtype and execution switches applied) and its tokenizer
  (the pretraining data config finds it in the cache). A decoder run, or a run whose model
  differs from `config.model` (another vocabulary, width, depth or block), is refused before any
  checkpoint is read. Without `init_from` the body starts from scratch.
  With `init_from`, `config.model` declares what the run expects (`MATCHING_MODEL_KEYS` must
  agree); every other model key is the pretraining run's.
- `prepare(config, encoder, task)`: the task's examples, encoded (see `encoding`), and the
  classifier: `BertClassifier` (tanh pooler on [CLS] + a fresh linear head; one output for
  regression).
- `run(prepared, seed, workdir)`: trains with `train_and_evaluate`, then scores every eval split
  with the task's official metrics and writes `WORKDIR/results.json`. A run with results is not
  redone. A non-finite loss or non-finite eval outputs do not raise: the run is recorded with
  status "nonfinite" and NaN metrics, since a table must show them (paper Table 1: SAS-P without
  norms gives NaNs in fine-tuning).

Loss: cross-entropy (classification) or mean squared error (regression), averaged over the
batch. With `eval_every > 0` the loop also evaluates loss and accuracy (or mse) on the first eval
split every `eval_every` steps (metrics.jsonl); the official metrics (MCC, F1, Pearson and
Spearman need all predictions at once) come from `evaluate`, after training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tokenizers import Tokenizer

from simplified_tf.downstream import code_suite, encoding, glue, metrics
from simplified_tf.downstream.examples import TaskData, TaskSpec
from simplified_tf.downstream.recipes import SUITES
from simplified_tf.model_config import validate
from simplified_tf.models import BertClassifier
from simplified_tf.params import ModelFns, module_fns
from simplified_tf.repro.runs import write_atomic
from trainloop.checkpoint import restore_run_params, structure_signature
from trainloop.config_util import ConfigError, check_choice
from trainloop.errors import Interrupted
from trainloop.task import Task
from trainloop.train import NonFiniteError, train_and_evaluate

RESULTS = "results.json"
# Model keys that must agree between the pretraining run and the fine-tuning config: they fix the
# parameter shapes, the vocabulary, or what the table row is called. The body's other keys come
# from the pretraining run, except the run-time ones, which come from this config.
MATCHING_MODEL_KEYS = (
    "kind", "block", "size", "vocab_size", "width", "num_layers", "num_heads", "d_ff", "max_len",
)  # fmt: skip
RUN_TIME_MODEL_KEYS = ("dropout", "dtype", "scan_layers", "remat", "attn_impl")


def suite_tasks(suite: str) -> tuple[str, ...]:
    check_choice("downstream.suite", suite, SUITES)
    return glue.GLUE_NAMES if suite == "glue" else code_suite.CODE_TASKS


def expand_tasks(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The task names of `downstream.tasks` ("all" = every task of the suite; GLUE: without the
    optional WNLI)."""
    names = suite_tasks(config.downstream.suite)
    raw = str(config.downstream.tasks).strip()
    if raw == "all":
        return tuple(n for n in names if n != "wnli")
    out = tuple(t.strip() for t in raw.split(",") if t.strip())
    for t in out:
        check_choice(f"downstream task ({config.downstream.suite})", t, names)
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"downstream.tasks={raw!r} must name tasks once each, or be 'all'.")
    return out


def load_task_data(config: ml_collections.ConfigDict, name: str) -> TaskData:
    d = config.downstream
    if d.suite == "glue":
        data = glue.load_glue_task(name, str(d.glue_dir))
    else:
        data = code_suite.load_code_task(name, d.code)
    n = int(d.max_train_examples)
    return dataclasses.replace(data, train=data.train.take(n)) if n > 0 else data


# --- the encoder body --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Encoder:
    """The BERT body a fine-tuning run starts from, and its tokenizer."""

    model: ml_collections.ConfigDict  # model config of the classifier's body
    data: ml_collections.ConfigDict  # data config whose tokenizer encodes the examples
    params: dict | None  # pretrained BertMLM params, or None (from scratch)
    tokenizer: Tokenizer
    init_from: str


def _plain(value):
    return json.loads(json.dumps(value.to_dict() if hasattr(value, "to_dict") else value))


def check_pretraining_run(pre: ml_collections.ConfigDict, model, init_from: str) -> None:
    """Refuses a run that is not a BERT MLM run with the same model as `model`."""
    kind = pre.model.get("kind") if "model" in pre else None
    if kind != "bert":
        raise ConfigError(
            f"init_from={init_from!r} is not a BERT pretraining run (task={pre.get('task')!r}, "
            f"model.kind={kind!r}). Fine-tuning starts from a masked-LM run of configs/bert.py; "
            "a decoder (configs/decoder.py) has a causal encoder and cannot be fine-tuned here."
        )
    theirs, ours = _plain(pre.model), _plain(model)
    diff = [k for k in MATCHING_MODEL_KEYS if theirs.get(k) != ours.get(k)]
    if diff:
        shown = ", ".join(
            f"model.{k}={theirs.get(k)!r} there vs {ours.get(k)!r} here" for k in diff
        )
        what = "another vocabulary" if "vocab_size" in diff else "another model"
        raise ConfigError(
            f"init_from={init_from!r} was pretrained with {what}: {shown}. The body is restored "
            "as it was trained, so the vocabulary, width, depth and block must match; build this "
            f"config with the pretraining run's block and size (block={theirs.get('block')!r}, "
            f"size={theirs.get('size')!r}). Nothing was written."
        )


def tokenizer_of(data_config, model_config) -> Tokenizer:
    """The BERT tokenizer `data_config` selects (cached after pretraining), checked against the
    model's vocabulary."""
    from simplified_tf.data import make_text_data

    data = make_text_data(data_config, kind="bert", global_batch_size=1, seed=0)
    if data.vocab_size > int(model_config.vocab_size):
        raise ConfigError(
            f"The tokenizer has {data.vocab_size} tokens but model.vocab_size="
            f"{model_config.vocab_size}: another vocabulary than the model's embedding."
        )
    return data.tokenizer


def load_encoder(config: ml_collections.ConfigDict) -> Encoder:
    """The body and tokenizer of `config` (see the module docstring)."""
    validate(config.model)
    init_from = str(config.get("init_from", ""))
    if not init_from:
        return Encoder(config.model, config.data, None, tokenizer_of(config.data, config.model), "")
    if not os.path.isdir(init_from):
        raise ConfigError(
            f"init_from={init_from!r} does not exist; pass the --workdir of a BERT pretraining run "
            "(scripts/train.py --config=configs/bert.py:...)."
        )
    run = restore_run_params(
        init_from, check_config=lambda pre: check_pretraining_run(pre, config.model, init_from)
    )
    model = ml_collections.ConfigDict(run.config.model.to_dict())
    for key in RUN_TIME_MODEL_KEYS:
        model[key] = config.model[key]
    validate(model)
    tokenizer = tokenizer_of(run.config.data, model)
    return Encoder(model, run.config.data, run.params, tokenizer, init_from)


# --- one task ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything the runs of one task share (all but the seed)."""

    config: ml_collections.ConfigDict  # model/data/init_from resolved, num_steps set, one task
    spec: TaskSpec
    train: encoding.Encoded
    evals: dict[str, encoding.Encoded]
    body: dict | None
    fns: ModelFns
    predict: Callable  # jitted (params, inputs, valid) -> logits [B, C]


def classifier_fns(model_config, num_labels: int, head_dropout: float) -> ModelFns:
    return module_fns(
        lambda rngs: BertClassifier(model_config, num_labels, rngs=rngs, head_dropout=head_dropout)
    )


def _check_body(body: dict, fns: ModelFns, init_from: str) -> None:
    abstract = jax.eval_shape(fns.init, jax.random.key(0))["bert"]
    expected, found = structure_signature(abstract), structure_signature(body)
    if expected != found:
        changed = (
            sorted(set(expected) ^ set(found))[:5]
            or [k for k in expected if expected[k] != found[k]][:5]
        )
        raise ConfigError(
            f"The params restored from init_from={init_from!r} do not fit the BERT body "
            f"(first differences: {changed}); the run was made with another version of the model."
        )


def prepare(
    config: ml_collections.ConfigDict, encoder: Encoder, task: str, data: TaskData | None = None
) -> Prepared:
    """The task's encoded examples, classifier functions and resolved single-task config
    (`data`: the task's examples if already loaded)."""
    data = data or load_task_data(config, task)
    d = config.downstream
    max_len = int(encoder.model.max_len)
    if int(d.max_seq_len) > 0:
        max_len = min(max_len, int(d.max_seq_len))
    encoded = encoding.PairEncoder(encoder.tokenizer, max_len).encode_splits(
        {"train": data.train, **data.evals}
    )
    fns = classifier_fns(encoder.model, data.spec.num_labels, float(d.head_dropout))
    if encoder.params is not None:
        _check_body(encoder.params, fns, encoder.init_from)
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.model = encoder.model
    cfg.data = encoder.data
    cfg.downstream.tasks = task
    if int(cfg.num_steps) <= 0:
        cfg.num_steps = int(d.epochs) * -(-len(data.train) // int(cfg.batch_size))
    predict = jax.jit(lambda params, inputs, valid: fns.merge(params)(inputs, valid))
    evals = {s: encoded[s] for s in data.spec.eval_splits}
    return Prepared(cfg, data.spec, encoded["train"], evals, encoder.params, fns, predict)


def classifier_loss(logits_BC, batch, regression: bool):
    """(weighted mean loss, metrics); metrics carry `weight` so eval batches average exactly."""
    w_B = batch["weights"].astype(jnp.float32)
    total = jnp.sum(w_B)
    denom = jnp.maximum(total, 1e-9)
    if regression:
        err_B = logits_BC[:, 0] - batch["labels"].astype(jnp.float32)
        loss = jnp.sum(w_B * err_B**2) / denom
        return loss, {"mse": loss, "weight": total}
    logz_B = jax.nn.logsumexp(logits_BC, axis=-1)
    picked_B = jnp.take_along_axis(logits_BC, batch["labels"][:, None], axis=-1)[:, 0]
    loss = jnp.sum(w_B * (logz_B - picked_B)) / denom
    correct_B = (jnp.argmax(logits_BC, axis=-1) == batch["labels"]).astype(jnp.float32)
    return loss, {"accuracy": jnp.sum(w_B * correct_B) / denom, "weight": total}


def make_task(prepared: Prepared, config: ml_collections.ConfigDict) -> Task:
    """The trainloop Task of one run (`config.seed` seeds the head, dropout and data order)."""
    fns, body, regression = prepared.fns, prepared.body, prepared.spec.regression
    dropout = float(config.model.dropout) > 0 or float(config.downstream.head_dropout) > 0
    sampler = encoding.EpochSampler(len(prepared.train), int(config.batch_size), int(config.seed))
    first_eval = prepared.evals[prepared.spec.eval_splits[0]]
    eval_size = int(config.downstream.eval_batch_size)

    def init(rng):
        params = fns.init(rng)
        return params if body is None else {**params, "bert": body}

    def loss(params, batch, rng):
        logits_BC = fns.merge(params)(batch["inputs"], batch["valid"], rng=rng if dropout else None)
        value, aux = classifier_loss(logits_BC, batch, regression)
        return value, aux | {"num_tokens": jnp.sum(batch["valid"].astype(jnp.float32))}

    def host_batch(step, process_index, process_count):
        return encoding.batch_of(
            prepared.train, sampler.indices(step, process_index, process_count)
        )

    return Task(
        init=init,
        loss=loss,
        global_batch_size=int(config.batch_size),
        host_batch=host_batch,
        # The loop's evaluation (loss and accuracy/mse curves) only when periodic evaluation is
        # asked for; the official metrics of every eval split come from `evaluate` after training.
        eval_batches=(lambda: encoding.eval_batches(first_eval, eval_size))
        if int(config.eval_every) > 0
        else None,
        eval_loss=lambda params, batch: loss(params, batch, None),
        name=f"finetune/{prepared.spec.name}",
    )


def evaluate(prepared: Prepared, params, batch_size: int) -> dict[str, dict[str, float]]:
    """{eval split: {official metric: value}}; NaN metrics where the outputs are non-finite."""
    out = {}
    for split, enc in prepared.evals.items():
        logits = []
        for batch in encoding.eval_batches(enc, batch_size):
            logits.append(np.asarray(prepared.predict(params, batch["inputs"], batch["valid"])))
        logits_NC = np.concatenate(logits)[: len(enc)]
        if not np.all(np.isfinite(logits_NC)):
            out[split] = dict.fromkeys(prepared.spec.metrics, math.nan)
            continue
        pred = logits_NC[:, 0] if prepared.spec.regression else np.argmax(logits_NC, axis=-1)
        out[split] = metrics.compute(prepared.spec.metrics, pred, enc.labels)
    return out


def _write_json(path: str, value: dict) -> None:
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_results(workdir: str) -> dict | None:
    path = os.path.join(workdir, RESULTS)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def run(prepared: Prepared, seed: int, workdir: str, *, devices=None) -> dict:
    """Fine-tunes with `seed` into `workdir` and returns (and writes) its results; a workdir that
    already has results is returned as it is. `devices`: as `train_and_evaluate` (default all)."""
    done = read_results(workdir)
    if done is not None:
        return done
    config = ml_collections.ConfigDict(prepared.config.to_dict())
    config.seed = int(seed)
    start = time.perf_counter()
    status, message = "ok", ""
    try:
        result = train_and_evaluate(config, workdir, make_task(prepared, config), devices=devices)
    except NonFiniteError as e:
        status, message = "nonfinite", str(e)
        split_metrics = {s: dict.fromkeys(prepared.spec.metrics, math.nan) for s in prepared.evals}
    else:
        if result.interrupted:
            raise Interrupted(f"Fine-tuning in {workdir} stopped by signal {result.signal}.")
        split_metrics = evaluate(
            prepared, result.state["params"], int(config.downstream.eval_batch_size)
        )
        if any(math.isnan(v) for m in split_metrics.values() for v in m.values()):
            status, message = "nonfinite", "Non-finite classifier outputs in evaluation."
    spec = prepared.spec
    results = dict(
        suite=str(config.downstream.suite),
        task=spec.name,
        seed=int(seed),
        status=status,
        message=message,
        metrics=split_metrics,
        scores={spec.score_name(s): metrics.score(m) for s, m in split_metrics.items()},
        in_average=spec.in_average,
        block=str(config.model.block),
        init_from=str(config.get("init_from", "")),
        num_steps=int(config.num_steps),
        train_examples=len(prepared.train),
        eval_examples={s: len(e) for s, e in prepared.evals.items()},
        seq_len=prepared.train.width,
        seconds=round(time.perf_counter() - start, 1),
    )
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, RESULTS), results)
    return results

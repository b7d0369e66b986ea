"""Text generation from a trained decoder run: restore params, then sample with the KV cache.

`load_run(workdir)` rebuilds the config from `WORKDIR/config.json`, the model template and the
tokenizer (the same data config finds the cached tokenizer), and restores the params of the latest
checkpoint. `generate(...)` prefills the prompt token by token through `DecoderLM.decode` (one
jitted step for prompt and continuation; `pos` is traced, so it compiles once) and then samples with
temperature / top-k / top-p, or greedily.

The params come from `trainloop.checkpoint.restore_run_params` (the optimizer state is not
read), on one device.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from simplified_tf.params import model_fns
from trainloop.checkpoint import restore_run_params
from trainloop.config_util import ConfigError


def check_decoder(config: ml_collections.ConfigDict, workdir: str) -> None:
    kind = config.get("model", {}).get("kind") if "model" in config else None
    if kind != "decoder":
        raise ConfigError(
            f"{workdir!r} is not a decoder run (task={config.get('task')!r}, model.kind={kind!r}); "
            "sampling needs a causal LM (model.kind='decoder', e.g. configs/decoder.py)."
        )


@dataclasses.dataclass
class Run:
    """A restored decoder run: config, model graph + params, tokenizer helpers, checkpoint step."""

    config: ml_collections.ConfigDict
    graphdef: object
    state: object  # nnx.State of the model with restored values
    data: object  # simplified_tf.data.TextData (encode / decode / eos_id)
    step: int

    @property
    def max_len(self) -> int:
        return int(self.config.model.max_len)


def load_run(workdir: str) -> Run:
    from simplified_tf.data import make_text_data

    run = restore_run_params(workdir, check_config=lambda c: check_decoder(c, workdir))
    config, params, step = run.config, run.params, run.step
    fns = model_fns(config.model)
    data = make_text_data(
        config.data,
        kind="decoder",
        global_batch_size=int(config.batch_size),
        seed=int(config.get("data_seed", config.seed)),
    )
    return Run(config, fns.graphdef, fns.state_of(params), data, step)


def _filter_logits(logits_V, temperature, top_k: int, top_p: float):
    """Temperature, then top-k, then nucleus (top-p) filtering; removed entries become -inf."""
    logits_V = logits_V / jnp.maximum(temperature, 1e-6)
    V = logits_V.shape[-1]
    if 0 < top_k < V:
        kth = jax.lax.top_k(logits_V, top_k)[0][..., -1:]
        logits_V = jnp.where(logits_V < kth, -jnp.inf, logits_V)
    if 0.0 < top_p < 1.0:
        sorted_V = jnp.sort(logits_V, axis=-1)[..., ::-1]
        probs_V = jax.nn.softmax(sorted_V, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the top token is always kept).
        before_V = jnp.cumsum(probs_V, axis=-1) - probs_V
        cutoff = jnp.min(jnp.where(before_V < top_p, sorted_V, jnp.inf), axis=-1, keepdims=True)
        logits_V = jnp.where(logits_V < cutoff, -jnp.inf, logits_V)
    return logits_V


@functools.lru_cache(maxsize=16)
def make_step_fn(graphdef, top_k: int, top_p: float):
    """Jitted `(state, token_B1, cache, pos, rng, temperature, greedy) -> (next_B, cache)`.

    Cached per (model structure, top_k, top_p), so sampling several prompts from one model
    compiles once (graphdefs are hashable)."""

    @jax.jit
    def step(state, token_B1, cache, pos, rng, temperature, greedy):
        model = nnx.merge(graphdef, state)
        logits_B1V, cache = model.decode(token_B1, cache, pos)
        logits_BV = logits_B1V[:, 0].astype(jnp.float32)
        sampled_B = jax.random.categorical(
            rng, _filter_logits(logits_BV, temperature, top_k, top_p)
        )
        next_B = jnp.where(greedy, jnp.argmax(logits_BV, axis=-1), sampled_B)
        return next_B.astype(jnp.int32), cache

    return step


def generate(
    graphdef,
    state,
    prompt_ids,
    *,
    max_new_tokens: int,
    max_len: int,
    temperature: float = 0.8,
    top_k: int = 40,
    top_p: float = 0.95,
    greedy: bool = False,
    seed: int = 0,
    stop_id: int | None = None,
) -> np.ndarray:
    """The new token ids (1-D) continuing `prompt_ids` (1-D, non-empty), at most `max_len` in all.

    Stops early at `stop_id` (not included). Raises ConfigError for an empty prompt or one that
    does not fit the position table (it must leave room for at least one new token).
    """
    prompt = np.asarray(prompt_ids, np.int32).reshape(-1)
    if prompt.size == 0:
        raise ConfigError("The prompt is empty after tokenisation; pass a non-empty --prompt.")
    if prompt.size >= max_len:
        raise ConfigError(
            f"The prompt has {prompt.size} tokens but the model's position table holds "
            f"{max_len} (model.max_len); shorten the prompt to at most {max_len - 1} tokens."
        )
    model = nnx.merge(graphdef, state)
    cache = model.init_cache(1, max_len)
    step = make_step_fn(graphdef, int(top_k), float(top_p))
    rng = jax.random.key(seed)
    temp, greedy_flag = jnp.float32(temperature), jnp.bool_(greedy)
    nxt = None
    for pos, tok in enumerate(prompt):  # prefill: the cache fills, the last logits sample
        rng, sub = jax.random.split(rng)
        nxt, cache = step(
            state, jnp.full((1, 1), tok, jnp.int32), cache, pos, sub, temp, greedy_flag
        )
    out = []
    while len(out) < max_new_tokens:
        tok = int(nxt[0])
        if stop_id is not None and tok == stop_id:
            break
        out.append(tok)
        pos = prompt.size + len(out) - 1  # where `tok` sits in the sequence
        if pos + 1 >= max_len or len(out) == max_new_tokens:
            break  # the sequence fills the position table, or enough tokens
        rng, sub = jax.random.split(rng)
        nxt, cache = step(
            state, jnp.full((1, 1), tok, jnp.int32), cache, pos, sub, temp, greedy_flag
        )
    return np.asarray(out, np.int32)


def sample_text(run: Run, prompt: str, **kwargs) -> tuple[str, np.ndarray]:
    """(prompt + continuation as text, new token ids) for a loaded run."""
    ids = run.data.encode(prompt)
    new = generate(
        run.graphdef, run.state, ids, max_len=run.max_len, stop_id=run.data.info.eos_id, **kwargs
    )
    return run.data.decode(np.concatenate([ids, new])), new

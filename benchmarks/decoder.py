"""The decoder train step as the suite trains it, wrapped for timing.

`DecoderBench(block, size, batch_size)` builds the config with `simplified_tf.recipes` (the suite's own
recipe: AdamW, clipping, warm-up/decay schedule, no-decay and frozen rules), the parameters and
loss with `simplified_tf.tasks` pieces, and the step with `trainloop.step.build_programs`, jitted
with the state donated exactly like `train_and_evaluate`. The only departure from a real run is the
batch: one fixed batch of random tokens of the right shape (no text pipeline, no tokenizer), so the
numbers measure the step itself.

FLOPs per step are counted two ways:
  * `analytic` (used for FLOPs/s and MFU): 6 * N_matmul * tokens + 12 * L * T * d * tokens, where
    N_matmul counts every matrix a token is multiplied by (block matrices + the tied head, not the
    position table) and the second term is QKᵀ and AV over the full T x T (what the kernel computes);
  * `xla`: `compiled.cost_analysis()["flops"]` of the compiled step. XLA counts a `while` (scan) body
    once, not once per layer, so for scanned stacks it undercounts; it is reported next to the
    analytic number as a cross-check (see `xla_flops_scan_corrected`).
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import device_peak_memory, host_memory
from simplified_tf import recipes
from simplified_tf.params import count_params, model_fns
from simplified_tf.tasks import weighted_cross_entropy
from trainloop.host_alloc import page_faults
from trainloop.mesh import global_batch
from trainloop.step import build_programs
from trainloop.task import Task


def decoder_config(block: str, size: str, batch_size: int, **model_overrides):
    """The suite's decoder training config (simplified_tf/recipes.py, as configs/decoder.py builds
    it) for `block`/`size`/`batch_size`."""
    return recipes.decoder_config(block, size, batch=batch_size, model=model_overrides)


def random_batch(model_cfg, batch_size: int, seed: int = 0) -> dict:
    """Random tokens shaped like a packed LM batch: inputs, next-token targets, all weights 1."""
    rng = np.random.default_rng(seed)
    T, V = int(model_cfg.seq_len), int(model_cfg.vocab_size)
    tokens = rng.integers(0, V, size=(batch_size, T + 1), dtype=np.int32)
    return dict(
        inputs=tokens[:, :-1],
        targets=tokens[:, 1:],
        weights=np.ones((batch_size, T), np.float32),
    )


def lm_task(config, batch: dict) -> Task:
    """A Task with the LM loss of `simplified_tf.tasks` whose host batch is always `batch`."""
    fns = model_fns(config.model)
    init, merge = fns.init, fns.merge

    def loss_fn(params, b, rng):
        del rng  # dropout is 0 in pretraining
        logits_BTV = merge(params)(b["inputs"])
        loss, acc, weight = weighted_cross_entropy(logits_BTV, b["targets"], b["weights"])
        return loss, {
            "accuracy": acc,
            "weight": weight,
            "num_tokens": jnp.float32(b["inputs"].size),
        }

    return Task(
        init=init,
        loss=loss_fn,
        global_batch_size=int(config.batch_size),
        host_batch=lambda step, i, n: batch,
        name=f"bench/{config.model.block}",
    )


def analytic_flops(model_cfg, batch_size: int) -> dict:
    """Model FLOPs of one train step (forward + backward = 3 x forward), see module docstring."""
    counts = count_params(model_cfg)
    d, L, T = int(model_cfg.width), int(model_cfg.num_layers), int(model_cfg.seq_len)
    pos = int(model_cfg.max_len) * d if model_cfg.pos_emb == "learned" else 0
    # Embeddings group = token table (the tied head matmul) + position table (a lookup, no FLOPs).
    n_matmul = counts["attention"] + counts["mlp"] + counts["embeddings"] - pos
    n_matmul -= _vector_params(model_cfg)
    tokens = batch_size * T
    dense = 6 * n_matmul * tokens
    attn = 12 * L * T * d * tokens
    return dict(
        n_params=counts["total"],
        n_params_excl_gains=counts["total_excl_gains"],
        n_params_spec_formula=spec_formula_params(model_cfg),
        n_matmul=n_matmul,
        dense_flops=dense,
        attention_flops=attn,
        flops=dense + attn,
    )


def spec_formula_params(model_cfg) -> int:
    """Parameter count (gains excluded) from the per-block formula of docs/simplified_tf.md
    section 6, computed independently of the model code: per block, matrices + vectors; plus W_V0's
    ΔW (d²) in the SAS blocks, the layer-0 LayerNorm of sas_p_nonorm, the token and position tables
    and the final LayerNorm."""
    d, f, L = int(model_cfg.width), int(model_cfg.d_ff), int(model_cfg.num_layers)
    full, reduced = 4 * d * d + 2 * d * f, 2 * d * d + 2 * d * f
    per_block = {
        "pre_ln": full + 4 * d,
        "post_ln": full + 4 * d,
        "parallel": full + 3 * d,
        "v_skipinit": full + 4 * d,
        "sas": reduced + 4 * d,
        "sas_p": reduced + 3 * d,
        "sas_p_nonorm": reduced + 2 * d,
    }[model_cfg.block]
    extra = {"sas": d * d, "sas_p": d * d, "sas_p_nonorm": d * d + 2 * d}.get(model_cfg.block, 0)
    tables = int(model_cfg.vocab_size) * d + int(model_cfg.max_len) * d
    return L * per_block + extra + tables + 2 * d


def _vector_params(model_cfg) -> int:
    """qk biases inside the attention group (vectors, not matmuls)."""
    return 2 * int(model_cfg.width) * int(model_cfg.num_layers) if model_cfg.qk_bias else 0


def _xla_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def _memory_analysis(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return {}
    if m is None:
        return {}
    keys = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
    out = {k: int(getattr(m, k, 0) or 0) for k in keys}
    out["alias_size_in_bytes"] = int(getattr(m, "alias_size_in_bytes", 0) or 0)
    return out


def build_step(block, size, batch_size, model_overrides=None, devices=None, seed=0, optimizer=None):
    """(config, programs, host batch): the set-up `train_and_evaluate` uses
    (`trainloop.step.build_programs`) for a decoder on one fixed random batch; `optimizer` sets
    keys of config.optimizer."""
    config = decoder_config(block, size, batch_size, **(model_overrides or {}))
    config.seed = seed
    config.optimizer.update(optimizer or {})
    batch = random_batch(config.model, batch_size, seed)
    return config, build_programs(config, lm_task(config, batch), devices), batch


def compile_only(block, size, batch_size, **model_overrides) -> dict:
    """Lower + compile time of the train step from abstract shapes (nothing is allocated)."""
    config, programs, batch = build_step(block, size, batch_size, model_overrides)
    abstract_batch = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
    t0 = time.perf_counter()
    lowered = programs.train_step.lower(programs.abstract_state, abstract_batch)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    return dict(
        block=block,
        size=size,
        num_layers=int(config.model.num_layers),
        scan_layers=bool(config.model.scan_layers),
        batch_size=batch_size,
        lower_time_s=t1 - t0,
        compile_time_s=t2 - t1,
        total_s=t2 - t0,
    )


@dataclasses.dataclass
class DecoderBench:
    """One compiled decoder train step with its state; `run(n)` appends n step times."""

    block: str
    size: str
    batch_size: int
    model_overrides: dict = dataclasses.field(default_factory=dict)
    devices: list | None = None
    seed: int = 0
    compiler_options: dict | None = None  # XLA options for this step's compile (benchmarks/ab.py)
    optimizer_overrides: dict = dataclasses.field(default_factory=dict)  # e.g. {"fused": False}

    def __post_init__(self):
        built = build_step(
            self.block, self.size, self.batch_size, self.model_overrides, self.devices, self.seed,
            self.optimizer_overrides,
        )  # fmt: skip
        config, programs, batch = built
        self.config = config
        self.model_cfg = config.model
        mem0 = host_memory()
        self.state = programs.initial_state()
        self.batch = global_batch(batch, programs.mesh, self.batch_size)
        t0 = time.perf_counter()
        lowered = programs.train_step.lower(self.state, self.batch)
        t1 = time.perf_counter()
        self.compiled = lowered.compile(compiler_options=self.compiler_options)
        t2 = time.perf_counter()
        self.lower_time = t1 - t0
        self.compile_time = t2 - t1
        self.xla_flops = _xla_flops(self.compiled)
        self.memory = _memory_analysis(self.compiled)
        self.analytic = analytic_flops(config.model, self.batch_size)
        self.tokens_per_step = self.batch_size * int(config.model.seq_len)
        self.times: list[float] = []
        self.losses: list[float] = []
        self.faults = 0  # minor page faults of this process during the timed steps
        self._mem0 = mem0
        self.host_rss_delta = 0

    def step(self) -> float:
        t0 = time.perf_counter()
        self.state, metrics = self.compiled(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))
        dt = time.perf_counter() - t0
        self.losses.append(float(metrics["train/loss"]))
        return dt

    def warmup(self, n: int) -> None:
        for _ in range(n):
            self.step()
        self.host_rss_delta = host_memory()["rss"] - self._mem0["rss"]

    def run(self, n: int) -> None:
        f0 = page_faults()
        self.times += [self.step() for _ in range(n)]
        self.faults += page_faults() - f0

    def result(self) -> dict:
        """Per-config numbers; FLOPs/s and MFU are filled in by `summarise` (they need the peak)."""
        med = float(np.median(self.times)) if self.times else math.nan
        xla = self.xla_flops
        return dict(
            block=self.block,
            size=self.size,
            batch_size=self.batch_size,
            seq_len=int(self.model_cfg.seq_len),
            num_layers=int(self.model_cfg.num_layers),
            width=int(self.model_cfg.width),
            steps_timed=len(self.times),
            step_time_s=med,
            step_time_p10_s=float(np.percentile(self.times, 10)) if self.times else math.nan,
            step_time_p90_s=float(np.percentile(self.times, 90)) if self.times else math.nan,
            tokens_per_step=self.tokens_per_step,
            tokens_per_sec=self.tokens_per_step / med,
            lower_time_s=self.lower_time,
            compile_time_s=self.compile_time,
            flops_per_step=self.analytic["flops"],
            flops_source="analytic",
            xla_flops_per_step=xla,
            analytic=self.analytic,
            memory=dict(
                xla=self.memory,
                host_rss_delta_bytes=int(self.host_rss_delta),
                device_peak_bytes=device_peak_memory(),
            ),
            page_faults_per_step=self.faults / len(self.times) if self.times else math.nan,
            loss_first=self.losses[0] if self.losses else math.nan,
            loss_last=self.losses[-1] if self.losses else math.nan,
        )

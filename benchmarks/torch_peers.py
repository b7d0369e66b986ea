"""The HF GPT-2 peer measured in the same process as the JAX benchmarks (CPU), and `missing()`.

* `GPT2Peer`: HF `transformers` `GPT2LMHeadModel` at the decoder's width / depth / heads / sequence /
  batch / vocabulary, with n_inner = 4d, ReLU (our MLP's activation), tied head and all dropout 0,
  trained by `torch.optim.AdamW` (the suite's recipe: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay
  0.1, global-norm clipping 1.0) on the same random-token batch. Differences that remain: GPT-2 has
  biases in every linear and LayerNorm (not RMSNorm), decays every parameter, and has no LR schedule.
  `compiled=True` runs the model under `torch.compile` (default inductor backend); the first step,
  which traces and compiles forward and backward, is reported as `compile_time_s`.

The other peers: benchmarks/torch_decoder.py (a PyTorch pre_ln / SAS-P decoder written from the
paper) and benchmarks/torch_linear_tf.py (paper B's loops). `missing()` lets callers skip with a
clear message when torch/transformers are absent (the `bench` extra: `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import os
import time

MISSING_MESSAGE = (
    "PyTorch peer skipped: {what} not installed. Install the bench extra with "
    "`.venv/bin/pip install torch==2.13.0 transformers` (pin torch: a plain `torch` pulls a CUDA build)."
)


def missing(need_transformers: bool = True) -> str | None:
    """None when the peer can run, else the message explaining what to install."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return MISSING_MESSAGE.format(what="torch")
    if need_transformers:
        try:
            import transformers  # noqa: F401
        except ImportError:
            return MISSING_MESSAGE.format(what="transformers")
    return None


def _set_threads() -> int:
    import torch

    n = os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


class TorchTrainStep:
    """The peers' shared step on a fixed batch: `self.logits()`, cross-entropy, backward, global-norm
    clipping at 1.0, the optimiser step. Under torch.compile the first step (tracing and compiling
    forward and backward) is kept apart as `compile_time_s`."""

    compiled = False
    compile_time_s = None

    def step(self) -> float:
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        logits = self.logits()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        self.losses.append(float(loss.detach()))
        return dt

    def warmup(self, n: int) -> None:
        first = self.step()
        if self.compiled:
            self.compile_time_s = first
        for _ in range(n - 1):
            self.step()

    def run(self, n: int) -> None:
        self.times += [self.step() for _ in range(n)]

    def common_result(self) -> dict:
        import torch

        ts = sorted(self.times)
        med = ts[len(ts) // 2] if ts else float("nan")
        return dict(
            batch_size=self.batch_size,
            steps_timed=len(ts),
            step_time_s=med,
            tokens_per_step=self.tokens_per_step,
            tokens_per_sec=self.tokens_per_step / med,
            n_params=self.n_params,
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            compiled=self.compiled,
            compile_time_s=self.compile_time_s,
            loss_first=self.losses[0] if self.losses else float("nan"),
            loss_last=self.losses[-1] if self.losses else float("nan"),
        )


class GPT2Peer(TorchTrainStep):
    """HF GPT-2 train step at a decoder model config; same interface as `DecoderBench`."""

    def __init__(self, model_cfg, batch: dict, batch_size: int, seed: int = 0, compiled=False):
        import numpy as np
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        self.threads = _set_threads()
        torch.manual_seed(seed)
        d = int(model_cfg.width)
        self.config = GPT2Config(
            vocab_size=int(model_cfg.vocab_size),
            n_positions=int(model_cfg.max_len),
            n_embd=d,
            n_layer=int(model_cfg.num_layers),
            n_head=int(model_cfg.num_heads),
            n_inner=int(model_cfg.d_ff),
            activation_function="relu",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=True,
            bos_token_id=int(model_cfg.vocab_size) - 1,  # GPT-2's 50256 is outside a smaller vocab
            eos_token_id=int(model_cfg.vocab_size) - 1,
        )
        self.model = GPT2LMHeadModel(self.config).train()
        self.compiled, self.compile_time_s = compiled, None
        self.forward = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1
        )
        self.inputs = torch.tensor(np.asarray(batch["inputs"]), dtype=torch.long)
        self.targets = torch.tensor(np.asarray(batch["targets"]), dtype=torch.long)
        self.batch_size = batch_size
        self.seq_len = int(model_cfg.seq_len)
        self.tokens_per_step = batch_size * self.seq_len
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.times: list[float] = []
        self.losses: list[float] = []
        self.attn_implementation = getattr(self.config, "_attn_implementation", None)

    def logits(self):
        return self.forward(input_ids=self.inputs).logits

    def result(self) -> dict:
        import transformers

        return dict(
            self.common_result(),
            block="hf_gpt2_compiled" if self.compiled else "hf_gpt2",
            seq_len=self.seq_len,
            transformers=transformers.__version__,
            attn_implementation=self.attn_implementation,
        )

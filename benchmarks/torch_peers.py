"""PyTorch peers measured in the same process as the JAX benchmarks (CPU, eager mode).

* `GPT2Peer`: HF `transformers` `GPT2LMHeadModel` at the decoder's width / depth / heads / sequence /
  batch / vocabulary, with n_inner = 4d, ReLU (our MLP's activation), tied head and all dropout 0,
  trained by `torch.optim.AdamW` (the suite's recipe: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay
  0.1, global-norm clipping 1.0) on the same random-token batch. Differences that remain: GPT-2 has
  biases in every linear and LayerNorm (not RMSNorm), decays every parameter, and has no LR schedule.
* `LinearTFTorchLoop`: a plain PyTorch loop of the linear-Transformer Setting-1 run (spec
  linear_transformers.md §1-3): sparse parameterisation (B_l, C_l per layer), L=3, d=5, n=20, fresh
  B=1000 Gaussian prompts per step, σ=0.05 init, clip 1, Adam (0.9, 0.9, eps 1e-8) or SGDM (0.9),
  lr 0.02, and the fixed-batch evaluation every 50 steps that the protocol records.

Both expose `available()` so callers can skip with a clear message when torch/transformers are
missing (they are in the `bench` extra: `pip install -e '.[bench]'`).
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


class GPT2Peer:
    """HF GPT-2 train step at a decoder model config; same interface as `DecoderBench`."""

    def __init__(self, model_cfg, batch: dict, batch_size: int, seed: int = 0):
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

    def step(self) -> float:
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        logits = self.model(input_ids=self.inputs).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        self.losses.append(float(loss.detach()))
        return dt

    def warmup(self, n: int) -> None:
        for _ in range(n):
            self.step()

    def run(self, n: int) -> None:
        self.times += [self.step() for _ in range(n)]

    def result(self) -> dict:
        import numpy as np
        import torch
        import transformers

        med = float(np.median(self.times)) if self.times else float("nan")
        return dict(
            block="hf_gpt2_torch",
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            steps_timed=len(self.times),
            step_time_s=med,
            tokens_per_step=self.tokens_per_step,
            tokens_per_sec=self.tokens_per_step / med,
            n_params=self.n_params,
            torch=torch.__version__,
            transformers=transformers.__version__,
            threads=self.threads,
            attn_implementation=self.attn_implementation,
            loss_first=self.losses[0] if self.losses else float("nan"),
            loss_last=self.losses[-1] if self.losses else float("nan"),
        )


class LinearTFTorchLoop:
    """One linear-Transformer training run (Setting 1) as a plain PyTorch loop."""

    def __init__(self, optimizer: str = "adam", seed: int = 0, L=3, d=5, n=20, batch=1000):
        import torch

        _set_threads()
        self.L, self.d, self.n, self.batch = L, d, n, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.bc = (0.05 * torch.randn(L, 1, 2, d, d, generator=self.gen)).requires_grad_()
        if optimizer == "adam":
            self.opt = torch.optim.Adam([self.bc], lr=0.02, betas=(0.9, 0.9), eps=1e-8)
        elif optimizer == "sgdm":
            self.opt = torch.optim.SGD([self.bc], lr=0.02, momentum=0.9)
        else:
            raise ValueError(f"optimizer={optimizer!r}; valid: adam, sgdm")
        self.eval_z, self.eval_y = self.sample(torch.Generator().manual_seed(99))
        self.t = 0
        self.eval_losses: list[float] = []

    def sample(self, gen):
        import torch

        B, n, d = self.batch, self.n, self.d
        x = torch.randn(B, n + 1, d, generator=gen)
        w = torch.randn(B, d, generator=gen)
        y = torch.einsum("btd,bd->bt", x, w)
        labels = y.clone()
        labels[:, -1] = 0.0
        return torch.cat([x, labels[..., None]], dim=-1), y[:, -1]

    def predict(self, z):
        """Row form: Z ← Z + (1/n) (Z Q̃ Zᵀ)[:, :, :n] (Z P̃ᵀ)[:, :n]; ŷ = −Z[:, n, d]."""
        import torch

        E = self.d + 1
        for layer in range(self.L):
            b, c = self.bc[layer, 0, 0], self.bc[layer, 0, 1]
            p = torch.zeros(E, E)
            p[: self.d, : self.d] = b
            p[self.d, self.d] = 1.0
            q = torch.zeros(E, E)
            q[: self.d, : self.d] = c
            scores = z @ q @ z.transpose(1, 2)
            values = z @ p.T
            z = z + scores[:, :, : self.n] @ values[:, : self.n] / self.n
        return -z[:, self.n, self.d]

    def step(self) -> float:
        import torch

        t0 = time.perf_counter()
        if self.t % 50 == 0:
            with torch.no_grad():
                self.eval_losses.append(
                    float(((self.predict(self.eval_z) - self.eval_y) ** 2).mean())
                )
        z, y = self.sample(self.gen)
        loss = ((self.predict(z) - y) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([self.bc], 1.0)
        self.opt.step()
        self.t += 1
        return time.perf_counter() - t0

"""A straightforward PyTorch decoder with the suite's pre_ln and sas_p blocks: the code a user would
write from the paper (He & Hofmann 2024, Sec. 4.3 and Eq. 5) to train SAS-P in PyTorch.

Same model as `simplified_tf` at a decoder config: learned positions, tied head, final LayerNorm,
RMSNorm with eps outside the root, fused W_qk with a bias, bias-free ReLU MLP, N(0, 0.02²) init.
  pre_ln: x + MHA(RMS(x)) then + MLP(RMS(·)), dense W_V and W_P.
  sas_p:  β_SA·MHA_shaped(RMS(x)) + β_FF·MLP(RMS(x)), no skip, W_P = I, W_V = I except layer 0
          (α_V·I + β_V·ΔW); shaped attention in its efficient form
          β_h·softmax(QKᵀ)V + α_h·V − γ_h·cumulative-mean(V), with `F.scaled_dot_product_attention`.
Trained like the suite (AdamW 0.9/0.999, eps 1e-8, weight decay 0.1 on matrices and embeddings only,
global-norm clipping 1.0), eager or under `torch.compile`. Same interface as `DecoderBench`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_peers import TorchTrainStep

STD = 0.02


def _normal(*shape):
    return nn.Parameter(torch.randn(*shape) * STD)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.scale, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) * self.scale


class Block(nn.Module):
    def __init__(self, cfg, block: str, first: bool):
        super().__init__()
        d, H, f = int(cfg.width), int(cfg.num_heads), int(cfg.d_ff)
        self.block, self.H = block, H
        self.norm1 = RMSNorm(d, float(cfg.norm_eps))
        shaped = block == "sas_p"
        w_q = torch.zeros(d, d) if shaped else torch.randn(d, d) * STD
        self.w_qk = nn.Parameter(torch.cat([w_q, torch.randn(d, d) * STD], dim=1))
        self.b_qk = nn.Parameter(torch.zeros(2 * d))
        self.w_1, self.w_2 = _normal(d, f), _normal(f, d)
        if shaped:
            self.alpha, self.beta, self.gamma = (nn.Parameter(torch.ones(H)) for _ in range(3))
            self.beta_sa = nn.Parameter(torch.tensor(1.0))
            self.beta_ff = nn.Parameter(torch.tensor(float(cfg.beta_ff)))
            self.first = first
            if first:  # W_V0 = α_V I + β_V ΔW
                self.alpha_v, self.beta_v = (
                    nn.Parameter(torch.tensor(1.0)),
                    nn.Parameter(torch.tensor(1.0)),
                )
                self.delta_v = nn.Parameter(torch.zeros(d, d))
        else:
            self.w_v, self.w_p = _normal(d, d), _normal(d, d)
            self.norm2 = RMSNorm(d, float(cfg.norm_eps))

    def heads(self, x):
        B, T, D = x.shape
        return x.view(B, T, self.H, D // self.H).transpose(1, 2)  # (B, H, T, K)

    def attention(self, h):
        q, k = (h @ self.w_qk + self.b_qk).chunk(2, dim=-1)
        if self.block == "sas_p":
            v = self.alpha_v * h + self.beta_v * (h @ self.delta_v) if self.first else h
        else:
            v = h @ self.w_v
        q, k, v = self.heads(q), self.heads(k), self.heads(v)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.block == "sas_p":
            T = v.shape[2]
            mean = v.cumsum(dim=2) / torch.arange(1, T + 1, dtype=v.dtype)[:, None]
            g = lambda p: p[None, :, None, None]
            out = g(self.beta) * out + g(self.alpha) * v - g(self.gamma) * mean
        out = out.transpose(1, 2).reshape(h.shape)
        return out if self.block == "sas_p" else out @ self.w_p

    def mlp(self, h):
        return F.relu(h @ self.w_1) @ self.w_2

    def forward(self, x):
        h = self.norm1(x)
        if self.block == "sas_p":
            return self.beta_sa * self.attention(h) + self.beta_ff * self.mlp(h)
        x = x + self.attention(h)
        return x + self.mlp(self.norm2(x))


class Decoder(nn.Module):
    def __init__(self, cfg, block: str):
        super().__init__()
        self.tokens = _normal(int(cfg.vocab_size), int(cfg.width))
        self.positions = _normal(int(cfg.max_len), int(cfg.width))
        L = int(cfg.num_layers)
        self.blocks = nn.ModuleList(Block(cfg, block, first=i == 0) for i in range(L))
        self.final_norm = nn.LayerNorm(int(cfg.width), eps=float(cfg.final_norm_eps))

    def forward(self, tokens_BT):
        x = self.tokens[tokens_BT] + self.positions[: tokens_BT.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x) @ self.tokens.T


def param_groups(model: nn.Module, weight_decay: float):
    """Weight decay on the matrices and embedding tables only (the suite's no-decay rules)."""
    decay = [p for p in model.parameters() if p.ndim == 2]
    rest = [p for p in model.parameters() if p.ndim != 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class TorchDecoderPeer(TorchTrainStep):
    """Train step of `Decoder` on a fixed batch; `compiled` wraps the model in `torch.compile`
    (its compile time, the first step, is reported separately as `compile_time_s`)."""

    def __init__(self, model_cfg, block: str, batch: dict, batch_size: int, compiled=False):
        torch.manual_seed(0)
        self.name = f"torch_{block}" + ("_compiled" if compiled else "")
        self.block, self.compiled = block, compiled
        self.model = Decoder(model_cfg, block).train()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.opt = torch.optim.AdamW(
            param_groups(self.model, 0.1), lr=1e-3, betas=(0.9, 0.999), eps=1e-8
        )
        self.forward = torch.compile(self.model) if compiled else self.model
        self.inputs = torch.as_tensor(batch["inputs"], dtype=torch.long)
        self.targets = torch.as_tensor(batch["targets"], dtype=torch.long)
        self.batch_size = batch_size
        self.tokens_per_step = int(self.inputs.numel())
        self.times: list[float] = []
        self.losses: list[float] = []

    def logits(self):
        return self.forward(self.inputs)

    def result(self) -> dict:
        return dict(self.common_result(), block=self.name)

"""PyTorch peers of the linear-Transformer Setting-1 run (Ahn et al. 2024): L=3, d=5, n=20, sparse
B/C parameters (std 0.05), fresh B=1000 Gaussian prompts per step, clip 1, lr 0.02, Adam (0.9, 0.9,
eps 1e-8, no weight decay) or SGD with momentum 0.9, the loss on a fixed evaluation batch every 50 steps.

Two loops, one run at a time, so the speed-up of `linear_tf` splits into three factors:
  * `NotebookLoop`: the authors' training notebook (chengxiang/LinearTransformer, train.ipynb) as they
    wrote it: per step a copy of the parameters is kept (their trajectory), the prompts are drawn,
    every layer builds the (n+1) x (n+1) score matrix with einsum and masks the query key with a
    diagonal matrix, the loss is read back with `.item()`, the gradient is clipped by its norm, and
    the optimiser steps.
  * `StatsLoop`: the algorithm of `linear_tf` written in PyTorch: the prompt enters only through its
    summary statistics K = Σ x xᵀ and k = Σ x r over the context, and every layer is (d x d) algebra
    per prompt (x_l = x_0 P_l, r_l = r_0 + x_0 q_l; exact by associativity), batched with
    `torch.matmul`. Same data, optimiser and evaluation as the notebook loop.
The JAX side (one run per step, and all runs of the protocol vectorised into one program) is in
benchmarks/linear_tf.py.
"""

from __future__ import annotations

import time

import torch

L, D, N, BATCH, LR, CLIP = 3, 5, 20, 1000, 0.02, 1.0
EVAL_EVERY = 50


def sample(gen: torch.Generator, batch: int = BATCH):
    """Prompts z (B, n+1, d+1) in row form (query last, its label slot 0) and query targets (B,)."""
    x = torch.randn(batch, N + 1, D, generator=gen)
    w = torch.randn(batch, D, generator=gen)
    y = torch.einsum("btd,bd->bt", x, w)
    labels = torch.cat([y[:, :N], torch.zeros(batch, 1)], dim=1)
    return torch.cat([x, labels[..., None]], dim=-1), y[:, N]


def notebook_predict(bc, z):
    """ŷ = −z_L[:, n, d] with each layer built as the notebook does: full P̃, Q̃, the score matrix
    z Q̃ zᵀ, the key mask as a diagonal matrix, and a three-operand einsum."""
    d = z.shape[2] - 1
    n = z.shape[1] - 1
    for layer in range(bc.shape[0]):
        p = torch.cat([bc[layer, 0, 0], torch.zeros(1, d)], dim=0)
        p = torch.cat([p, torch.zeros(d + 1, 1)], dim=1)
        p[d, d] = 1
        q = torch.cat([bc[layer, 0, 1], torch.zeros(1, d)], dim=0)
        q = torch.cat([q, torch.zeros(d + 1, 1)], dim=1)
        mask = torch.eye(n + 1)
        mask[n, n] = 0
        scores = torch.einsum("bni,ij,bmj->bnm", z, q, z)
        values = torch.einsum("ij,bnj->bni", p, z)
        z = z + torch.einsum("bnm,ml,bli->bni", scores, mask, values) / n
    return -z[:, n, d]


def stats_predict(bc, z):
    """The same prediction from the context statistics only (see module docstring)."""
    n = z.shape[1] - 1
    x0, r0 = z[:, :, :-1], z[:, :, -1]
    k_xx = x0[:, :n].transpose(1, 2) @ x0[:, :n]  # (B, d, d)
    k_xr = (x0[:, :n] * r0[:, :n, None]).sum(1)  # (B, d)
    p = torch.eye(x0.shape[2]).expand_as(k_xx)
    q = torch.zeros_like(k_xr)
    for layer in range(bc.shape[0]):
        b, c = bc[layer, 0, 0], bc[layer, 0, 1]
        k_l = p.transpose(1, 2) @ k_xx @ p if layer else k_xx
        kr_l = ((k_xr + (k_xx @ q[..., None])[..., 0])[:, None] @ p)[:, 0]
        q = q + (p @ (c @ kr_l[..., None]))[..., 0] / n
        if layer < bc.shape[0] - 1:  # the last layer's covariate update is never read
            p = p + p @ (c @ k_l @ b.T) / n
    xq = x0[:, n]
    return -(r0[:, n] + (xq * q).sum(-1))


class _Loop:
    predict = staticmethod(notebook_predict)

    def __init__(self, optimizer: str = "adam", seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.bc = (0.05 * torch.randn(L, 1, 2, D, D, generator=self.gen)).requires_grad_()
        if optimizer == "adam":
            self.opt = torch.optim.AdamW([self.bc], lr=LR, betas=(0.9, 0.9), weight_decay=0)
        elif optimizer == "sgdm":
            self.opt = torch.optim.SGD([self.bc], lr=LR, momentum=0.9)
        else:
            raise ValueError(f"optimizer={optimizer!r}; valid: adam, sgdm")
        self.eval_z, self.eval_y = sample(torch.Generator().manual_seed(99))
        self.t = 0
        self.eval_losses: list[float] = []
        self.trajectory: list[torch.Tensor] = []

    def step(self) -> float:
        t0 = time.perf_counter()
        if self.t % EVAL_EVERY == 0:
            with torch.no_grad():
                err = self.predict(self.bc, self.eval_z) - self.eval_y
                self.eval_losses.append(float((err**2).mean()))
        self.trajectory.append(self.bc.detach().clone())
        z, y = sample(self.gen)
        loss = ((self.predict(self.bc, z) - y) ** 2).mean()
        loss.item()
        loss.backward()
        norm = self.bc.grad.norm()
        if norm > CLIP:
            self.bc.grad.mul_(CLIP / norm)
        self.opt.step()
        self.opt.zero_grad()
        self.t += 1
        return time.perf_counter() - t0


class NotebookLoop(_Loop):
    """One run as the authors' notebook trains it (see module docstring)."""


class StatsLoop(_Loop):
    """One run with `linear_tf`'s summary-statistics algorithm, in PyTorch."""

    predict = staticmethod(stats_predict)

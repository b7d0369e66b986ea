"""The two budgets of the reproduction: the paper's protocol ("full") and a quick one for checks.

Full follows Ahn et al. (2024) and the authors' notebooks where they state a value (10,000 iterations,
6 seeds, 10,000 gradient-noise samples, R_med every 250 iterations, the (L0, L1) scatter over the
first 2,000 iterations); where they do not (depth, softmax and large-model learning rates), the values
are ours and every chosen learning rate is interior to its grid. A few budgets are below the paper's
so that the whole protocol fits 3 hours on a 2-core CPU; each figure's caption states its budget.
"""

from __future__ import annotations

import dataclasses

SETTING_NAMES = {
    "1": "Setting 1",
    "2": "Setting 2",
    "3": "Setting 3",
    "sphere": "Sphere",
    "nonisotropic": "Non-isotropic",
    "nonlinear": "Nonlinear",
}


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str = "full"
    one_layer_steps: int = 3000  # the closed-form check (one layer, Adam lr 0.005)
    # One sweep per setting at the reference learning rates serves D1, D3, D4, (L0, L1) and Fig. 7.
    main_steps: int = 10_000
    main_seeds: tuple = (0, 1, 2, 3, 4, 5)
    main_settings: tuple = ("1", "2", "3", "sphere")
    ds_stride: int = 10  # D4 second view: DS at every ds_stride-th step
    l0l1_steps: int = 2000
    l0l1_stride: int = 1
    # D2 and the noise rows of Figs. 7 and 8: at initialisation, seed 1.
    noise_samples: int = 10_000
    noise_full_batches: int = 100
    noise_settings: tuple = ("1", "2", "3", "sphere")
    noise_depths: tuple = (2, 4, 6, 8)
    # Fig. 8: learning rate per (L, optimiser) on a grid widened until its best point is interior.
    depths: tuple = (2, 4, 6, 8)
    depth_steps: int = 3000
    depth_seeds: tuple = (0, 1)
    depth_grid: tuple = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
    # Fig. 4: Adam, linear vs softmax_clean attention, each with its own bracketed learning rate.
    softmax_steps: int = 2000
    softmax_seeds: tuple = (0, 1, 2)
    softmax_grid: tuple = (3e-3, 1e-2, 3e-2, 0.1)
    # Fig. 5: L=8, d=20, n=60; learning rates bracketed on one seed over large_tune_steps.
    large_steps: int = 1500
    large_seeds: tuple = (0, 1)
    large_batch: int = 1000
    large_tune_steps: int = 250
    large_grid: tuple = (1e-3, 3e-3, 1e-2)
    large_noise_samples: int = 1000
    # Nonlinear appendix figure (the authors' nonlinear notebook: 5 seeds, B=2000).
    nonlinear_steps: int = 2000
    nonlinear_seeds: tuple = (0, 1, 2, 3, 4)
    nonlinear_cn_steps: tuple = (0, 250, 750, 1250)
    nonlinear_hessian_batch: int = 500
    nonlinear_noise_samples: int = 2000
    # Non-isotropic covariates at the protocol of the authors' rotation demonstration (Ahn et al.
    # 2023): Adam β (0.99, 0.9), lr 0.1 halved every 4000 steps, per-block clip 0.01, σ = 1e-4,
    # B = 20,000 redrawn every 100 steps; the reference runs 100,000 steps on 3 seeds.
    demo_steps: int = 8000
    demo_seeds: tuple = (0, 1, 2)
    demo_batch: int = 20_000
    # Learning-rate bracketing: at most this many widenings per grid.
    max_widen: int = 4

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))


FULL = Protocol()

QUICK = Protocol(
    name="quick",
    one_layer_steps=1500,
    main_steps=1500,
    main_seeds=(0, 1),
    ds_stride=5,
    l0l1_steps=1000,
    l0l1_stride=2,
    noise_samples=1000,
    noise_full_batches=20,
    noise_depths=(2, 8),
    depths=(2, 8),
    depth_steps=500,
    depth_seeds=(0, 1),
    depth_grid=(1e-3, 1e-2, 0.1),
    softmax_steps=300,
    softmax_seeds=(0, 1),
    softmax_grid=(1e-2, 0.1),
    large_steps=100,
    large_seeds=(0,),
    large_batch=200,
    large_tune_steps=50,
    large_grid=(1e-3, 1e-2),
    large_noise_samples=100,
    nonlinear_steps=500,
    nonlinear_seeds=(0, 1),
    nonlinear_cn_steps=(0, 250),
    nonlinear_hessian_batch=200,
    nonlinear_noise_samples=300,
    demo_steps=400,
    demo_seeds=(0,),
    demo_batch=5000,
    max_widen=2,
)

PROTOCOLS = {"full": FULL, "quick": QUICK}

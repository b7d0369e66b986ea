"""Prompt generators for the in-context regression settings (spec §2), on device and jittable.

`sample(spec, rng, batch)` returns {"z": (B, n+1, d+1) prompts in row form, "y": (B,) query targets}.
Every prompt draws its own w; the query covariate has the context distribution; the query's label
slot is zero. Anything the settings fix once (the non-isotropic rotation U, the nonlinear target
network φ) is built by `make_data_spec` and carried in the spec, never rebuilt from a run's seed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from trainloop.config_util import ConfigError, check_choice

SETTINGS = ("1", "2", "3", "sphere", "nonisotropic", "nonlinear")
DEFAULT_N = {"1": 20, "2": 5, "3": 20, "sphere": 20, "nonisotropic": 20, "nonlinear": 20}
EVAL_SEED = 99  # the fixed evaluation batch has its own key, independent of every run's seed
PHI_SEED = 7  # the nonlinear target network φ is built once from this seed
GAMMA_K = 0.1  # Setting 3 shape; scale θ = sqrt(10/k) (reference convention, Var g = 10)
NONISO_D = (1.0, 1.0, 0.5, 0.25, 1.0)


@dataclasses.dataclass(frozen=True, eq=False)
class DataSpec:
    setting: str
    d: int
    n: int
    gamma_k: float = GAMMA_K
    u: np.ndarray | None = None  # non-isotropic rotation (d, d)
    dvec: np.ndarray | None = None  # non-isotropic scales (d,)
    phi: dict | None = None  # nonlinear target network params

    @property
    def gamma_theta(self) -> float:
        return float(np.sqrt(10.0 / self.gamma_k))


def make_phi(d: int, hidden: int = 10, seed: int = PHI_SEED) -> dict:
    """Frozen target φ: Linear(d→hidden) → ReLU → Linear(hidden→d), PyTorch-default uniform init."""
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    b1, b2 = 1.0 / np.sqrt(d), 1.0 / np.sqrt(hidden)
    return {
        "w1": jax.random.uniform(k1, (d, hidden), jnp.float32, -b1, b1),
        "b1": jax.random.uniform(k2, (hidden,), jnp.float32, -b1, b1),
        "w2": jax.random.uniform(k3, (hidden, d), jnp.float32, -b2, b2),
        "b2": jax.random.uniform(k4, (d,), jnp.float32, -b2, b2),
    }


def apply_phi(phi: dict, x):
    return jax.nn.relu(x @ phi["w1"] + phi["b1"]) @ phi["w2"] + phi["b2"]


def make_data_spec(
    setting: str, d: int = 5, n: int | None = None, seed: int = 0, gamma_k: float = GAMMA_K
) -> DataSpec:
    """Validates the setting and builds its fixed parts (U drawn from `seed`; φ from seed 7)."""
    setting = check_choice("setting", str(setting), SETTINGS)
    n = DEFAULT_N[setting] if n is None else int(n)
    if int(d) < 1:
        raise ConfigError(f"Invalid d={d!r}: must be an integer >= 1.")
    if n < 1:
        raise ConfigError(f"Invalid n={n!r}: must be an integer >= 1.")
    if gamma_k <= 0:
        raise ConfigError(f"Invalid gamma_k={gamma_k!r}: must be > 0.")
    u = dvec = phi = None
    if setting == "nonisotropic":
        if d != len(NONISO_D):
            raise ConfigError(f"Invalid d={d} for setting=nonisotropic: the D matrix needs d=5.")
        m = jax.random.uniform(jax.random.fold_in(jax.random.key(seed), 17), (d, d), minval=-1.0)
        u = np.asarray(jnp.linalg.svd(m)[0], np.float32)
        dvec = np.asarray(NONISO_D, np.float32)
    if setting == "nonlinear":
        phi = make_phi(d)
    return DataSpec(setting=setting, d=int(d), n=n, gamma_k=float(gamma_k), u=u, dvec=dvec, phi=phi)


def sample_covariates(spec: DataSpec, rng: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Covariates of shape (*shape, d) for the setting (the non-isotropic case returns x = U D z)."""
    d = spec.d
    k_dir, k_rad = jax.random.split(rng)
    z = jax.random.normal(k_dir, (*shape, d), jnp.float32)
    if spec.setting in ("1", "2", "nonlinear"):
        return z
    if spec.setting == "nonisotropic":
        return (z * spec.dvec) @ spec.u.T
    u = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    if spec.setting == "sphere":
        return u
    if spec.setting == "3":
        g = jax.random.gamma(k_rad, spec.gamma_k, (*shape, 1), jnp.float32) * spec.gamma_theta
        return jnp.sqrt(g) * u
    raise ConfigError(f"Unknown setting {spec.setting!r}. Valid choices: {', '.join(SETTINGS)}.")


def sample(spec: DataSpec, rng: jax.Array, batch: int) -> dict:
    """A batch of prompts {"z": (B, n+1, d+1), "y": (B,)} drawn from `rng`."""
    k_x, k_w = jax.random.split(rng)
    x_BTD = sample_covariates(spec, k_x, (batch, spec.n + 1))
    v_BD = jax.random.normal(k_w, (batch, spec.d), jnp.float32)
    if spec.setting == "nonisotropic":
        w_BD = (v_BD / spec.dvec) @ spec.u.T  # w = U D⁻¹ v, so y = vᵀz
    else:
        w_BD = v_BD
    feats_BTD = apply_phi(spec.phi, x_BTD) if spec.setting == "nonlinear" else x_BTD
    y_BT = jnp.einsum("btd,bd->bt", feats_BTD, w_BD)
    labels_BT = y_BT.at[:, -1].set(0.0)
    z = jnp.concatenate([x_BTD, labels_BT[..., None]], axis=-1)
    return {"z": z, "y": y_BT[:, -1]}


def eval_batch(spec: DataSpec, batch: int = 1000) -> dict:
    """The one fixed evaluation batch, from its dedicated key (seed 99)."""
    return jax.jit(sample, static_argnums=(0, 2))(spec, jax.random.key(EVAL_SEED), batch)

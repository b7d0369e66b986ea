"""Prompt generators for the in-context regression settings of Ahn et al. (2024), Table 1 and Section 4.1, and of the
authors' notebooks (non-isotropic, nonlinear), on device and jittable.

`sample(spec, rng, batch)` returns {"z": (B, n+1, d+1) prompts in row form, "y": (B,) query targets}.
Every prompt draws its own w; the query covariate has the context distribution; the query's label
slot is zero. Anything the settings fix once (the non-isotropic rotation U, the nonlinear target
network φ) is built by `make_data_spec` and carried in the DataSpec, never rebuilt from a run's
seed.

Speed (prompt sampling is about half of a sweep step): every draw here uses JAX's original,
non-"partitionable" threefry bit generation (`jax.threefry_partitionable(False)`, scoped to this module's
samplers, so nothing else in the process changes). On XLA:CPU it is ~4x faster per random bit and
compiles ~3x faster than the partitionable default; partitioning is irrelevant for these small
per-seed batches. Setting 3's gamma radii come from `gamma_radius`, an exact vectorised
Marsaglia–Tsang sampler (one fixed block of candidates plus a rarely-taken redraw loop) instead of
`jax.random.gamma`, whose per-element rejection loop with per-element key splits dominated the
Setting-3 step (~10x the Gaussian draws) and its compile time.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from linear_tf import model
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

    def _key(self) -> tuple:
        """Content key: specs built alike compare equal, so jitted programs keyed on them are shared."""
        arrays = [self.u, self.dvec, *jax.tree_util.tree_leaves(self.phi)]
        blobs = tuple(None if a is None else np.asarray(a).tobytes() for a in arrays)
        return (self.setting, self.d, self.n, self.gamma_k, blobs)

    def __eq__(self, other):
        return isinstance(other, DataSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

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
        u = nonisotropic_rotation(seed, d)
        dvec = np.asarray(NONISO_D, np.float32)
    if setting == "nonlinear":
        phi = make_phi(d)
    return DataSpec(setting=setting, d=int(d), n=n, gamma_k=float(gamma_k), u=u, dvec=dvec, phi=phi)


def _fast_threefry(fn):
    """Runs a sampler under the non-partitionable threefry (see the module docstring)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.threefry_partitionable(False):
            return fn(*args, **kwargs)

    return wrapped


GAMMA_CANDIDATES = 4  # per variate in the first block; P(all rejected) < 1e-5 for shape >= 1


def _marsaglia_tsang(rng: jax.Array, a: float, shape: tuple[int, ...]):
    """(accepted (m, *shape), value (m, *shape)) for m candidate Gamma(a, 1) draws, a >= 1."""
    d = a - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    k_z, k_u = jax.random.split(rng)
    z = jax.random.normal(k_z, shape, jnp.float32)
    u = jax.random.uniform(k_u, shape, jnp.float32)
    v = (1.0 + c * z) ** 3
    safe_v = jnp.where(v > 0, v, 1.0)
    ok = (v > 0) & (jnp.log1p(-u) < 0.5 * z * z + d - d * safe_v + d * jnp.log(safe_v))
    return ok, d * safe_v


def gamma_log(rng: jax.Array, k: float, shape: tuple[int, ...]) -> jax.Array:
    """log of exact Gamma(k, 1) variates of `shape` (k static), vectorised.

    Marsaglia & Tsang (2000) for shape a = k (k >= 1) or a = k + 1 with the boost
    Gamma(k) = Gamma(k + 1) · U^(1/k) (k < 1), returned in log space so U^(1/k) cannot underflow.
    Each variate takes the first accepted of GAMMA_CANDIDATES candidates; the few variates with none
    accepted are redrawn in a `lax.while_loop` (each iteration redraws all, keeps only the missing), so
    the result is exact, not truncated.
    """
    a = k + 1.0 if k < 1 else k
    k_first, k_loop, k_boost = jax.random.split(rng, 3)
    ok, val = _marsaglia_tsang(k_first, a, (GAMMA_CANDIDATES, *shape))
    first = jnp.argmax(ok, axis=0)
    g = jnp.take_along_axis(val, first[None], axis=0)[0]
    done = jnp.any(ok, axis=0)

    def body(carry):
        i, done, g = carry
        ok1, val1 = _marsaglia_tsang(jax.random.fold_in(k_loop, i), a, shape)
        take = ok1 & ~done
        return i + 1, done | ok1, jnp.where(take, val1, g)

    _, _, g = jax.lax.while_loop(lambda c: ~jnp.all(c[1]), body, (0, done, g))
    log_g = jnp.log(g)
    if k < 1:
        log_g = log_g + jnp.log1p(-jax.random.uniform(k_boost, shape, jnp.float32)) / k
    return log_g


@_fast_threefry
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
    if spec.setting == "3":  # x = sqrt(θ g) u, g ~ Gamma(k, 1), computed in log space
        log_g = gamma_log(k_rad, spec.gamma_k, (*shape, 1))
        return jnp.exp(0.5 * (log_g + np.log(spec.gamma_theta))) * u
    raise ConfigError(f"Unknown setting {spec.setting!r}. Valid choices: {', '.join(SETTINGS)}.")


def _draw(spec: DataSpec, rng: jax.Array, batch: int):
    """(x_BTD covariates, y_BT noiseless labels of every token incl. the query) of one batch."""
    if spec.setting == "nonisotropic":
        return nonisotropic_draw(spec.u, spec.dvec, rng, batch, spec.n)
    k_x, k_w = jax.random.split(rng)
    x_BTD = sample_covariates(spec, k_x, (batch, spec.n + 1))
    w_BD = jax.random.normal(k_w, (batch, spec.d), jnp.float32)
    feats_BTD = apply_phi(spec.phi, x_BTD) if spec.setting == "nonlinear" else x_BTD
    return x_BTD, jnp.einsum("btd,bd->bt", feats_BTD, w_BD)


def nonisotropic_draw(u_DD, dvec_D, rng: jax.Array, batch: int, n: int):
    """Non-isotropic prompts (Ahn et al. 2023): x = U D z, w = U D⁻¹ v, so y = vᵀz; U and D may be
    traced arrays (the demonstration protocol vmaps over seeds, each with its own U)."""
    k_x, k_w = jax.random.split(rng)
    d = dvec_D.shape[0]
    k_dir, _ = jax.random.split(k_x)
    z = jax.random.normal(k_dir, (batch, n + 1, d), jnp.float32)
    x_BTD = (z * dvec_D) @ jnp.asarray(u_DD).T
    v_BD = jax.random.normal(k_w, (batch, d), jnp.float32)
    w_BD = (v_BD / dvec_D) @ jnp.asarray(u_DD).T
    return x_BTD, jnp.einsum("btd,bd->bt", x_BTD, w_BD)


def nonisotropic_rotation(seed: int, d: int = len(NONISO_D)) -> np.ndarray:
    """U: left singular vectors of a d×d matrix of i.i.d. U(−1, 1) entries, drawn from `seed`."""
    m = jax.random.uniform(jax.random.fold_in(jax.random.key(seed), 17), (d, d), minval=-1.0)
    return np.asarray(jnp.linalg.svd(m)[0], np.float32)


@_fast_threefry
def sample_stats(spec: DataSpec, rng: jax.Array, batch: int) -> dict:
    """{"y": (B,), "stats": ...}: the same prompts as `sample(spec, rng, batch)`, but only the
    sufficient statistics of `linear_tf.model.prompt_stats` (context Σxxᵀ, Σx·label, query x and
    label slot 0), built straight from the draws without materialising z. For models with
    `model.uses_stats` (the sweep's training stream)."""
    x_BTD, y_BT = _draw(spec, rng, batch)
    labels_TB = y_BT.T.at[-1].set(0.0)
    stats = model.stats_from_tokens(jnp.transpose(x_BTD, (2, 1, 0)), labels_TB)
    return {"y": y_BT[:, -1], "stats": stats}


@_fast_threefry
def sample(spec: DataSpec, rng: jax.Array, batch: int) -> dict:
    """A batch of prompts {"z": (B, n+1, d+1), "y": (B,)} drawn from `rng`."""
    x_BTD, y_BT = _draw(spec, rng, batch)
    labels_BT = y_BT.at[:, -1].set(0.0)
    z = jnp.concatenate([x_BTD, labels_BT[..., None]], axis=-1)
    return {"z": z, "y": y_BT[:, -1]}


def eval_batch(spec: DataSpec, batch: int = 1000) -> dict:
    """The one fixed evaluation batch, from its dedicated key (seed 99)."""
    return jax.jit(sample, static_argnums=(0, 2))(spec, jax.random.key(EVAL_SEED), batch)

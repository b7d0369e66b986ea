"""Closed forms behind the paper's model (Ahn et al. 2023, Section 4; von Oswald et al. 2023): one-layer optima, preconditioned GD, GD++, distance to identity.

All functions are plain jnp (they run in float64 under `jax.enable_x64`). Vectors are rows:
x_N D (context covariates), y_N, x_q D.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


# --- 5.3 one layer, Gaussian covariates x ~ N(0, Σ), w ~ N(0, I) -------------------------------
def gamma_matrix(sigma, n: int):
    """Γ = (1 + 1/n) Σ + (tr Σ / n) I."""
    sigma = jnp.asarray(sigma)
    d = sigma.shape[0]
    return (1.0 + 1.0 / n) * sigma + jnp.trace(sigma) / n * jnp.eye(d, dtype=sigma.dtype)


def one_layer_loss(a_mat, sigma, n: int):
    """f(A) = tr(AΣAᵀΣΓ) − 2 tr(AΣ²) + tr Σ for ŷ = (1/n) Σ_i y_i x_iᵀ A x_q."""
    sigma = jnp.asarray(sigma)
    g = gamma_matrix(sigma, n)
    return (
        jnp.trace(a_mat @ sigma @ a_mat.T @ sigma @ g)
        - 2 * jnp.trace(a_mat @ sigma @ sigma)
        + jnp.trace(sigma)
    )


def one_layer_optimum(sigma, n: int) -> dict:
    """A* = Γ⁻¹; in row-form code C_0* = −Γ⁻¹ with P̃ = diag(0,…,0,1); f* = tr Σ − tr(Σ²Γ⁻¹)."""
    sigma = jnp.asarray(sigma)
    d = sigma.shape[0]
    g = gamma_matrix(sigma, n)
    a_star = jnp.linalg.inv(g)
    p = jnp.zeros((d + 1, d + 1), sigma.dtype).at[d, d].set(1.0)
    q = jnp.zeros((d + 1, d + 1), sigma.dtype).at[:d, :d].set(-a_star)
    f_star = jnp.trace(sigma) - jnp.trace(sigma @ sigma @ a_star)
    return {"gamma": g, "a": a_star, "c0": -a_star, "p": p, "q": q, "f_star": f_star}


def isotropic_a_star(d: int, n: int) -> float:
    return n / (n + d + 1)


def isotropic_f_star(d: int, n: int) -> float:
    """f* = d(d+1)/(n+d+1) (Σ = I; also the whitened non-isotropic case)."""
    return d * (d + 1) / (n + d + 1)


def isotropic_f(a, d: int, n: int):
    """Loss along A = aI for Σ = I: f(a) = d[a²(n+d+1)/n − 2a + 1]."""
    return d * (a * a * (n + d + 1) / n - 2 * a + 1)


# --- 5.4 rotation-invariant covariates: s = E‖x‖²/d, m4 = E‖x‖⁴ --------------------------------
def rotation_invariant(s: float, m4: float, d: int, n: int) -> dict:
    denom = m4 + (n - 1) * s * s * d
    a_star = n * s * d / denom
    f_star = s * d * (1 - n * s * s * d / denom)
    return {"a_star": a_star, "f_star": f_star}


def rotation_invariant_f(a, s: float, m4: float, d: int, n: int):
    return s * (a * a * (m4 + (n - 1) * s * s * d) / n - 2 * a * s * d + d)


def setting_moments(setting: str, d: int = 5, gamma_k: float = 0.1) -> tuple[float, float]:
    """(s, m4) of the covariates of a rotation-invariant setting."""
    if setting in ("1", "2"):
        return 1.0, float(d * (d + 2))
    if setting == "sphere":
        return 1.0 / d, 1.0
    if setting == "3":
        theta = np.sqrt(10.0 / gamma_k)
        return gamma_k * theta / d, gamma_k * theta**2 * (1 + gamma_k)
    raise ValueError(f"No rotation-invariant closed form for setting {setting!r}.")


def optimal_one_layer_loss(setting: str, d: int, n: int) -> float:
    s, m4 = setting_moments(setting, d)
    return float(rotation_invariant(s, m4, d, n)["f_star"])


# --- 5.1 / 5.2 preconditioned GD and GD++ -------------------------------------------------------
def preconditioned_gd(x_ND, y_N, xq_D, c_LDD, divisor: float | None = None):
    """w_0 = 0, w_{ℓ+1} = w_ℓ + C_ℓ ∇R(w_ℓ), R(w) = (1/2·divisor) Σ_i (wᵀx_i − y_i)².

    Returns (ŷ = ⟨w_L, x_q⟩, residuals (L+1, n) = y_i − ⟨w_ℓ, x_i⟩, query slots (L+1,) = −⟨w_ℓ, x_q⟩).
    All n context points are used (no off-by-one), with the 1/n normalisation.
    """
    n = x_ND.shape[0]
    divisor = n if divisor is None else divisor
    w = jnp.zeros(x_ND.shape[1], x_ND.dtype)
    res, qs = [y_N - x_ND @ w], [-(xq_D @ w)]
    for c in c_LDD:
        grad = x_ND.T @ (x_ND @ w - y_N) / divisor
        w = w + c @ grad
        res.append(y_N - x_ND @ w)
        qs.append(-(xq_D @ w))
    return xq_D @ w, jnp.stack(res), jnp.stack(qs)


def gd_plus_plus_covariates(x_TD, b_DD, c_DD, n: int):
    """One layer's covariate update x_k ← x_k + B S Cᵀ x_k, S = (1/n) Σ_{j≤n} x_j x_jᵀ (all tokens)."""
    s = x_TD[:n].T @ x_TD[:n] / n
    return x_TD + x_TD @ (b_DD @ s @ c_DD.T).T


# --- 5.6 distance to identity ------------------------------------------------------------------
def distance_to_identity(m):
    """‖M − (tr M / d) I‖_F / ‖M‖_F."""
    m = jnp.asarray(m)
    d = m.shape[-1]
    iso = jnp.trace(m) / d * jnp.eye(d, dtype=m.dtype)
    return jnp.linalg.norm(m - iso) / jnp.linalg.norm(m)


def whiten_c(c_DD, u_DD, dvec_D):
    """(UD)ᵀ C (UD): equals −a·I at the Ahn-2023 Thm-3/4 structure C = −a Σ⁻¹, Σ = U D² Uᵀ."""
    ud = u_DD * dvec_D[None, :]
    return ud.T @ c_DD @ ud


def block_distances(bc_LH2DD, u_DD=None, dvec_D=None) -> np.ndarray:
    """Distances to identity of every B and C block, (L, H, 2); C whitened when U, D are given."""
    bc = np.asarray(bc_LH2DD)
    out = np.zeros(bc.shape[:3])
    for idx in np.ndindex(bc.shape[:2]):
        out[idx + (0,)] = float(distance_to_identity(bc[idx + (0,)]))
        c = bc[idx + (1,)]
        if u_DD is not None:
            c = whiten_c(c, np.asarray(u_DD), np.asarray(dvec_D))
        out[idx + (1,)] = float(distance_to_identity(c))
    return out

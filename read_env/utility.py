"""Nonlinear task utility ``F_tau(s)`` and the requirement vector it implies, ``r_tau = Proj([grad F_tau(s)]_+)``.

A task's utility is a weighted power mean of its capability scores (the CES form of the economics
literature; the issue's "weighted power means"), with weights ``a`` [K] on the simplex and power ``p``::

    F(s) = (sum_c a_c * s_c^p)^(1/p)          p != 0
    F(s) = prod_c s_c^(a_c)                   p == 0 (geometric mean)

``p = 1`` is the linear utility ``a . s`` of ``ReAD-Surrogate-v0``; ``p < 1`` makes capabilities
complements (the weakest required capability limits the task), more so as ``p`` falls. ``F`` is
homogeneous of degree 1, so utilities stay in profile units ([0, 1]). Its gradient is
``dF/ds_c = a_c * (s_c / F)^(p - 1)``.

The paper defines the requirement as the local linearization of the utility projected onto the simplex,
computed once per run at the start profile: ``r = Proj_simplex([grad F(s_0)]_+)`` (Euclidean projection).
For ``p = 1`` this is ``a`` itself.
"""

from __future__ import annotations

import numba
import numpy as np

MIN_SCORE = 1e-6
"""Scores are floored here before powers and logarithms (a power mean with p <= 0 is 0 at a zero score)."""


def _as_rows(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Broadcast to contiguous float64 rows: profile and weights [M, K], power [M], and the batch shape to restore."""
    power = np.asarray(power, dtype=np.float64)
    shape = np.broadcast_shapes(np.shape(profile), np.shape(weights), power.shape + (1,))

    def rows(array: np.ndarray, width: int) -> np.ndarray:
        full = shape[:-1] + (width,)
        array = np.asarray(array, dtype=np.float64)
        return np.ascontiguousarray((array if array.shape == full else np.broadcast_to(array, full)).reshape(-1, width))

    return rows(profile, shape[-1]), rows(weights, shape[-1]), rows(power[..., None], 1)[:, 0], shape[:-1]


def power_mean(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> np.ndarray:
    """``F(s)`` [...] of profiles [..., K] in [0, 1] with weights [..., K] on the simplex and power [...] or scalar."""
    profile, weights, power, batch = _as_rows(profile, weights, power)
    return power_mean_rows(profile, weights, power).reshape(batch)


@numba.njit(cache=True)
def power_mean_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``F(s)`` [M] of rows: profiles and weights [M, K], powers [M] (contiguous float64); compiled, one row at a
    time, so a row's value does not depend on the other rows (single and vector environments agree bit for bit)."""
    utility = np.empty(power.shape[0])
    for r in range(power.shape[0]):
        utility[r] = power_mean_row(profile[r], weights[r], power[r])
    return utility


@numba.njit(cache=True)
def power_mean_row(profile: np.ndarray, weights: np.ndarray, power: float) -> float:
    """``F(s)`` of one profile [K] with weights [K] and power ``power`` (compiled)."""
    total = 0.0
    for c in range(profile.shape[0]):
        if power == 1.0:
            total += weights[c] * profile[c]
        elif power == 0.0:
            total += weights[c] * np.log(max(profile[c], MIN_SCORE))
        else:
            total += weights[c] * np.exp(power * np.log(max(profile[c], MIN_SCORE)))
    if power == 1.0:
        return total
    return np.exp(total) if power == 0.0 else np.exp((1.0 / power) * np.log(total))


def project_to_simplex(vector: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``vector`` [..., K] onto the probability simplex (Duchi et al., 2008)."""
    rows = np.ascontiguousarray(np.asarray(vector, dtype=np.float64).reshape(-1, np.shape(vector)[-1]))
    return _project_rows(rows).reshape(np.shape(vector))


def requirement_from_utility(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> np.ndarray:
    """The paper's ``r = Proj_simplex([grad F(s)]_+)`` [..., K] at profile ``s`` [..., K]."""
    profile, weights, power, batch = _as_rows(profile, weights, power)
    return _requirement_rows(profile, weights, power).reshape(*batch, -1)


@numba.njit(cache=True)
def _gradient_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``grad F`` [M, K] of rows (compiled, one row at a time)."""
    out = np.empty_like(profile)
    for r in range(power.shape[0]):
        scores = np.maximum(profile[r], MIN_SCORE)
        utility = max(power_mean_row(scores, weights[r], power[r]), MIN_SCORE)
        for c in range(scores.shape[0]):
            out[r, c] = weights[r, c] * np.exp((power[r] - 1.0) * np.log(scores[c] / utility))
    return out


@numba.njit(cache=True)
def _project_row(vector: np.ndarray, out: np.ndarray) -> None:
    """``out`` [K]: the projection of ``vector`` [K] onto the simplex (sort, then the largest support)."""
    ordered = np.sort(vector)[::-1]
    cumulative = np.cumsum(ordered) - 1.0
    count = 0
    for i in range(ordered.shape[0]):
        if ordered[i] - cumulative[i] / (i + 1) > 0:
            count += 1
    threshold = cumulative[count - 1] / count
    for c in range(vector.shape[0]):
        out[c] = max(vector[c] - threshold, 0.0)


@numba.njit(cache=True)
def _project_rows(vectors: np.ndarray) -> np.ndarray:
    """Projections [M, K] of rows [M, K] onto the simplex."""
    out = np.empty_like(vectors)
    for r in range(vectors.shape[0]):
        _project_row(vectors[r], out[r])
    return out


@numba.njit(cache=True)
def _requirement_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``Proj_simplex([grad F]_+)`` [M, K] of rows (compiled, one row at a time)."""
    return _project_rows(np.maximum(_gradient_rows(profile, weights, power), 0.0))

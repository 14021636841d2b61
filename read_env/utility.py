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
    """``F(s)`` [M] of rows: profiles and weights [M, K], powers [M] (contiguous float64).

    Compiled, one row at a time, so a row's value does not depend on the other rows (single and vector
    environments agree bit for bit); :func:`power_mean` broadcasts any shapes to rows.
    """
    utility = np.empty(power.shape[0])
    for r in range(power.shape[0]):
        p = power[r]
        total = 0.0
        for c in range(profile.shape[1]):
            score = max(profile[r, c], MIN_SCORE)
            if p == 1.0:
                total += weights[r, c] * profile[r, c]
            elif p == 0.0:
                total += weights[r, c] * np.log(score)
            else:
                total += weights[r, c] * np.exp(p * np.log(score))
        utility[r] = total if p == 1.0 else np.exp(total) if p == 0.0 else np.exp((1.0 / p) * np.log(total))
    return utility


def _power(base: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``base ** exponent`` for positive ``base``, as ``exp(exponent * log(base))``: rounded the same for any
    batch size (numpy's ``power`` loops round one row and many rows differently)."""
    return np.exp(exponent * np.log(base))


def power_mean_gradient(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> np.ndarray:
    """``grad F(s)`` [..., K]: ``a_c * (s_c / F)^(p - 1)`` (>= 0)."""
    profile, weights, power, batch = _as_rows(profile, weights, power)
    scores = np.maximum(profile, MIN_SCORE)
    utility = np.maximum(power_mean(scores, weights, power), MIN_SCORE)
    return (weights * _power(scores / utility[:, None], power[:, None] - 1.0)).reshape(*batch, -1)


def project_to_simplex(vector: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``vector`` [..., K] onto the probability simplex (Duchi et al., 2008)."""
    ordered = -np.sort(-vector, axis=-1)
    cumulative = np.cumsum(ordered, axis=-1) - 1.0
    index = np.arange(1, vector.shape[-1] + 1)
    support = (ordered - cumulative / index) > 0
    count = support.sum(axis=-1, keepdims=True)
    threshold = np.take_along_axis(cumulative, count - 1, axis=-1) / count
    return np.maximum(vector - threshold, 0.0)


def requirement_from_utility(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> np.ndarray:
    """The paper's ``r = Proj_simplex([grad F(s)]_+)`` [..., K] at profile ``s`` [..., K]."""
    return project_to_simplex(np.maximum(power_mean_gradient(profile, weights, power), 0.0))

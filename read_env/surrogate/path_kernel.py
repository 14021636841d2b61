"""The compiled dynamics of :class:`~read_env.surrogate.path_world.PathWorld`: rows of states, one loop each.

The equations are in :mod:`read_env.surrogate.path_world`; these kernels compute them with numba, one row at
a time, so a row's result never depends on how many rows share the call: a vector of environments matches
single environments bit for bit, and one step costs a few microseconds instead of dozens of numpy calls on
length-K arrays. Parameters carry a leading axis of length 1 (one world for every row) or of the number of
rows (a stack of worlds, row ``r`` uses world ``r``); so does ``step_tokens``.

Parameter layout (:func:`parameters`): ``student``, ``gap`` [P, K]; ``cells`` [P, K(i), K(j), 3] (v0's
``C``); ``decay_rates`` [3] (``-1 / tau_m``); ``prerequisites`` [P, K, K]; ``scalars`` [P, 4]: readiness
tokens, repair tokens, forgetting tokens, train noise.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

READINESS, REPAIR, FORGETTING, TRAIN_NOISE = range(4)


def parameters(world: Any) -> tuple[np.ndarray, ...]:
    """The kernels' parameters of a (possibly stacked) ``PathWorld``, as contiguous float64 arrays."""
    k = len(world.capabilities)
    scalars = np.column_stack(
        [np.reshape(getattr(world, name), -1) for name in ("readiness_tokens", "repair_tokens", "forgetting_tokens", "train_noise")]
    )
    return tuple(
        np.ascontiguousarray(array, dtype=np.float64)
        for array in (
            np.reshape(world.student, (-1, k)),
            np.reshape(world.gap, (-1, k)),
            np.reshape(world.cells, (-1, k, k, 3)),
            world._decay_rates,
            np.reshape(world.prerequisites, (-1, k, k)),
            scalars,
        )
    )


@numba.njit(cache=True)
def _responses(exposure: np.ndarray, decay_rates: np.ndarray, out: np.ndarray) -> None:
    """``1 - exp(-e_i / tau_m)`` [K, 3] of one row's exposures [K]."""
    for i in range(exposure.shape[0]):
        for m in range(decay_rates.shape[0]):
            out[i, m] = 1.0 - np.exp(exposure[i] * decay_rates[m])


@numba.njit(cache=True)
def _saturate(latent: float, student: float, gap: float) -> float:
    """``s0 + sigma(z)``: the score of a latent gain (saturating at the teacher, never below 0)."""
    scale = gap if latent >= 0.0 else student
    return student + scale * np.tanh(latent / scale)


@numba.njit(cache=True)
def advance(
    state: np.ndarray,
    step_tokens: np.ndarray,
    allocation: np.ndarray,
    train_noise: np.ndarray,
    student: np.ndarray,
    gap: np.ndarray,
    cells: np.ndarray,
    decay_rates: np.ndarray,
    prerequisites: np.ndarray,
    scalars: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(states [N, 2K], their noise-free profiles [N, K]) after one step from ``state`` [N, 2K]:
    ``step_tokens`` [1 or N], ``allocation`` [N, K], ``train_noise`` [N, K] standard normal draws or [0, K]
    for noise off."""
    rows, k = allocation.shape
    new_state = np.empty_like(state)
    new_profile = np.empty((rows, k))
    readiness = np.empty(k)
    tokens = np.empty(k)
    responses = np.empty((k, decay_rates.shape[0]))
    for r in range(rows):
        p = r if scalars.shape[0] > 1 else 0
        n = step_tokens[r if step_tokens.shape[0] > 1 else 0]
        for q in range(k):
            readiness[q] = 1.0 - np.exp(-state[r, q] / scalars[p, READINESS])
        for j in range(k):
            speed = 0.0
            for q in range(k):
                speed += readiness[q] * prerequisites[p, q, j]
            tokens[j] = n * allocation[r, j] * (1.0 + speed)
            if train_noise.shape[0] > 0:
                tokens[j] *= max(0.0, 1.0 + scalars[p, TRAIN_NOISE] * train_noise[r, j])
            new_state[r, j] = state[r, j] * np.exp((allocation[r, j] - 1.0) * (n / scalars[p, FORGETTING])) + tokens[j]
        _responses(new_state[r, :k], decay_rates, responses)
        for j in range(k):
            harm, latent = 0.0, 0.0
            for i in range(k):
                effect = 0.0
                for m in range(responses.shape[1]):
                    effect += responses[i, m] * cells[p, i, j, m]
                latent += effect
                if i != j:
                    harm += min(effect, 0.0)
            repaid = min(0.0, harm + state[r, k + j]) * np.exp(-tokens[j] / scalars[p, REPAIR]) - harm
            new_state[r, k + j] = repaid
            new_profile[r, j] = _saturate(latent + repaid, student[p, j], gap[p, j])
    return new_state, new_profile


@numba.njit(cache=True)
def profile(state: np.ndarray, student: np.ndarray, gap: np.ndarray, cells: np.ndarray, decay_rates: np.ndarray) -> np.ndarray:
    """Noise-free profiles [N, K] of states [N, 2K]: ``s0 + sigma(z0(e) + q)``, rounded as :func:`advance`'s."""
    rows, k = state.shape[0], student.shape[1]
    out = np.empty((rows, k))
    responses = np.empty((k, decay_rates.shape[0]))
    for r in range(rows):
        p = r if student.shape[0] > 1 else 0
        _responses(state[r, :k], decay_rates, responses)
        for j in range(k):
            latent = 0.0
            for i in range(k):
                effect = 0.0
                for m in range(responses.shape[1]):
                    effect += responses[i, m] * cells[p, i, j, m]
                latent += effect
            out[r, j] = _saturate(latent + state[r, k + j], student[p, j], gap[p, j])
    return out

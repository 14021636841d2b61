"""The compiled dynamics of fitted worlds (:mod:`read_env.fitted.world`) and the compiled step of ``ReAD-Fitted-v0``.

A fitted world is a kind (``RECENCY`` or ``ENSEMBLE``) and a parameter table ``theta`` [M, D]: one row per
ensemble member (M = 1 for the recency model), laid out as :func:`layout` says. Rows of episodes are computed
one at a time by the same code (as :mod:`read_env.surrogate.path_dependent_kernel` does for ``ReAD-Surrogate-v1``), so a
vector of environments matches single environments bit for bit; the step's inputs and outputs are
:mod:`read_env.step_kernel`'s, its world a :class:`FittedParameters`. The equations are in
:mod:`read_env.fitted.world`; :mod:`read_env.fit.fitted` computes the same ones in torch to fit them
(``tests/test_fitted.py`` holds the two to each other).

State [2K] per row: the true profile ``s`` [K], then the recency model's peak profile ``h`` [K] or the
ensemble's previous allocation [K]. A step's tokens enter as ``x = n / token_scale`` and the budget spent
before it as ``progress`` in [0, 1].
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from read_env.step_kernel import Contract, Episodes, allocation_rows, outputs_of, read_rows

RECENCY, ENSEMBLE = 0, 1
KINDS = ("recency", "ensemble")


def layout(kind: int, k: int, hidden: int = 0) -> dict[str, tuple[int, ...]]:
    """The blocks of a parameter row, in order, with their shapes.

    Recency: ``floor``, ``ceiling`` [K]; ``learn``, ``forget``, ``prerequisites`` [K(i), K(j)]; ``schedule``
    (kappa), ``repair`` (rho) [1]. Ensemble: ``w1`` [H, 3K + 2], ``b1`` [H], ``w2`` [H, H], ``b2`` [H], ``w3``
    [K, H], ``b3`` [K].
    """
    if kind == RECENCY:
        return {"floor": (k,), "ceiling": (k,), "learn": (k, k), "forget": (k, k), "prerequisites": (k, k), "schedule": (1,), "repair": (1,)}
    inputs = 3 * k + 2
    return {"w1": (hidden, inputs), "b1": (hidden,), "w2": (hidden, hidden), "b2": (hidden,), "w3": (k, hidden), "b3": (k,)}


def width(kind: int, k: int, hidden: int = 0) -> int:
    """D, the length of a parameter row."""
    return int(sum(np.prod(shape) for shape in layout(kind, k, hidden).values()))


@numba.njit(cache=True, inline="always")
def _advance_recency(theta, k, state, x, progress, allocation, new_state):
    """The recency model's step (equations in :class:`read_env.fitted.world.FittedWorld`)."""
    floor, ceiling = theta[:k], theta[k : 2 * k]
    learn, forget, prerequisites = 2 * k, 2 * k + k * k, 2 * k + 2 * k * k
    rate = np.exp(-theta[2 * k + 3 * k * k] * progress)
    repair = theta[2 * k + 3 * k * k + 1]
    for j in range(k):
        gain, loss, speed = 0.0, 0.0, 1.0
        for i in range(k):
            gain += theta[learn + i * k + j] * allocation[i]
            loss += theta[forget + i * k + j] * allocation[i]
            speed += theta[prerequisites + i * k + j] * state[i]
        gain *= x * rate * speed * (1.0 + repair * max(0.0, state[k + j] - state[j]))
        loss *= x * rate
        total = gain + loss
        level = state[j]
        if total > 0.0:
            target = (gain * ceiling[j] + loss * floor[j]) / total
            level = target + (level - target) * np.exp(-total)
        new_state[j] = level
        new_state[k + j] = max(state[k + j], level)


@numba.njit(cache=True, inline="always")
def _advance_ensemble(theta, k, hidden, state, x, progress, allocation, new_state, scratch):
    """An ensemble member's step: ``s' = clip(s + MLP([s, w, w_prev, progress, x]), 0, 1)``, two tanh layers."""
    inputs, first, second = scratch
    d = 3 * k + 2
    for c in range(k):
        inputs[c], inputs[k + c], inputs[2 * k + c] = state[c], allocation[c], state[k + c]
    inputs[3 * k], inputs[3 * k + 1] = progress, x
    w1, b1 = 0, hidden * d
    w2, b2 = b1 + hidden, b1 + hidden + hidden * hidden
    w3, b3 = b2 + hidden, b2 + hidden + k * hidden
    for h in range(hidden):
        total = theta[b1 + h]
        for c in range(d):
            total += theta[w1 + h * d + c] * inputs[c]
        first[h] = np.tanh(total)
    for h in range(hidden):
        total = theta[b2 + h]
        for c in range(hidden):
            total += theta[w2 + h * hidden + c] * first[c]
        second[h] = np.tanh(total)
    for j in range(k):
        total = theta[b3 + j]
        for c in range(hidden):
            total += theta[w3 + j * hidden + c] * second[c]
        new_state[j] = min(max(state[j] + total, 0.0), 1.0)
        new_state[k + j] = allocation[j]


@numba.njit(cache=True, inline="always")
def _advance_row(kind, hidden, theta, state, x, progress, allocation, new_state, scratch):
    k = allocation.shape[0]
    if kind == RECENCY:
        _advance_recency(theta, k, state, x, progress, allocation, new_state)
    else:
        _advance_ensemble(theta, k, hidden, state, x, progress, allocation, new_state, scratch)


@numba.njit(cache=True)
def rollout(kind, hidden, theta, member, start, tokens, progress, allocations):
    """Noise-free profiles [N, T, K] of N episodes from start profiles ``start`` [N, K]: member ``member[r]``,
    step tokens ``tokens`` [N, T] already divided by the token scale, budget spent before each step
    ``progress`` [N, T], allocations [N, T, K]."""
    rows, steps, k = allocations.shape
    out = np.empty((rows, steps, k))
    state, new_state = np.empty(2 * k), np.empty(2 * k)
    scratch = (np.empty(3 * k + 2), np.empty(max(hidden, 1)), np.empty(max(hidden, 1)))
    for r in range(rows):
        state[:k] = start[r]
        if kind == RECENCY:
            state[k:] = start[r]
        else:
            state[k:] = 0.0
        for t in range(steps):
            _advance_row(kind, hidden, theta[member[r]], state, tokens[r, t], progress[r, t], allocations[r, t], new_state, scratch)
            state[:] = new_state
            out[r, t] = state[:k]
    return out


class FittedParameters(NamedTuple):
    """A fitted world's parameters for :func:`env_step`, with the environment's schedule and uncertainty options."""

    kind: int
    """``RECENCY`` or ``ENSEMBLE``."""
    hidden: int
    """The ensemble's hidden width (0 for the recency model)."""
    theta: np.ndarray
    """The members' parameters [M, D] (:func:`layout`)."""
    member: np.ndarray
    """Each row's ensemble member [N] (int64)."""
    progress: np.ndarray
    """The share of the budget spent before each step [T]."""
    token_scale: float
    """A step's tokens enter the dynamics as ``x = n / token_scale``."""
    probe_noise: float
    """The probe readings' standard deviation."""
    spread: bool
    """Write the uncertainty columns [N, K]: the standard deviation over all members of the next true profile from
    the row's state (the ensemble's disagreement; 0 for one member)."""
    penalty: float
    """> 0: subtract ``penalty`` times that spread's mean over capabilities from the reward (MOPO's uncertainty penalty)."""


@numba.njit(cache=True)
def env_step(action, state, steps, previous, episodes, contract, world, out, first) -> bool:
    """One ``ReAD-Fitted-v0`` step of N episodes (:mod:`read_env.step_kernel`'s shape: the readings and reward of
    :func:`read_env.surrogate.path_dependent_kernel.env_step`) with the fitted world's dynamics, row ``r`` in member
    ``world.member[r]`` of :class:`FittedParameters` ``world``; K uncertainty columns with ``world.spread``."""
    episodes, contract, world = Episodes(*episodes), Contract(*contract), FittedParameters(*world)
    rows, k = action.shape
    named = outputs_of(out, k, state.shape[1])
    if not allocation_rows(0, rows, action, contract, named, first):
        return False
    kind, hidden, theta, member = world.kind, world.hidden, world.theta, world.member
    progress, token_scale = world.progress, world.token_scale
    allocation, new_state, true_profile, uncertainty = named.allocation, named.state, named.true_profile, named.uncertainty
    step_tokens = contract.step_tokens
    measured = world.spread or world.penalty > 0.0  # the members' spread
    scratch = (np.empty(3 * k + 2), np.empty(max(hidden, 1)), np.empty(max(hidden, 1)))
    other, mean, square, deviation, spread = np.empty(2 * k), np.empty(k), np.empty(k), np.empty(k), np.empty(rows)
    for r in range(rows):
        row, t = first + r, steps[r]
        x = step_tokens[t] / token_scale
        _advance_row(kind, hidden, theta[member[r]], state[r], x, progress[t], allocation[row], new_state[row], scratch)
        true_profile[row] = new_state[row, :k]
        if measured:
            mean[:], square[:] = 0.0, 0.0
            for m in range(theta.shape[0]):
                _advance_row(kind, hidden, theta[m], state[r], x, progress[t], allocation[row], other, scratch)
                for c in range(k):
                    mean[c] += other[c]
                    square[c] += other[c] * other[c]
            total = 0.0
            for c in range(k):
                mean[c] /= theta.shape[0]
                deviation[c] = np.sqrt(max(square[c] / theta.shape[0] - mean[c] * mean[c], 0.0))
                total += deviation[c]
            if world.spread:
                uncertainty[row] = deviation
            spread[r] = total / k
    read_rows(0, rows, steps, np.array([world.probe_noise]), previous, episodes, contract, named, first)
    if measured:
        reward = named.reward
        for r in range(rows):
            reward[first + r] -= world.penalty * spread[r]
    return True

"""The compiled dynamics of :class:`~read_env.surrogate.path_dependent_world.PathWorld`, and the compiled step of
``ReAD-Surrogate-v1`` and ``-v2``: rows of episodes, one loop each.

The equations are in :mod:`read_env.surrogate.path_dependent_world` (dynamics), :mod:`read_env.contract` (allocation
and reward) and :mod:`read_env.surrogate.path_dependent_env` (readings). These kernels compute them with numba, one row
at a time, so a row's result never depends on how many rows share the call: a vector of environments matches
single environments bit for bit, and a step costs a few microseconds instead of dozens of numpy calls on
length-K arrays. The step's inputs and outputs are :mod:`read_env.step_kernel`'s, its world a
:class:`PathParameters`. Parameters carry a leading axis of length 1 (one world for every row) or of the number
of rows (a stack of worlds: row ``r`` uses world ``r``); so does :func:`advance`'s ``step_tokens``. A noise
array with an empty draw axis means noise off.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np

from read_env.step_kernel import Contract, Episodes, allocation_rows, outputs_of, read_rows

READINESS, REPAIR, FORGETTING, TRAIN_NOISE, PROBE_NOISE = range(5)
SCALARS = ("readiness_tokens", "repair_tokens", "forgetting_tokens", "train_noise", "probe_noise")


class PathParameters(NamedTuple):
    """A (possibly stacked) ``PathWorld``'s parameters, contiguous float64 with a leading axis P (1 or N)."""

    student: np.ndarray
    """The start profile [P, K]."""
    gap: np.ndarray
    """The teacher's lead over the student [P, K]."""
    cells: np.ndarray
    """The response coefficients [P, K(i), 3, K(j)]: v0's ``C[i, j, m]`` at ``[i, m, j]``, so that the effects of
    ``i`` on every ``j`` are contiguous."""
    decay_rates: np.ndarray
    """``-1 / tau_m`` [3]."""
    prerequisites: np.ndarray
    """Prerequisite gains [P, K(q), K(j)]."""
    scalars: np.ndarray
    """[P, 5]: readiness tokens, repair tokens, forgetting tokens, train noise, probe noise (``SCALARS``)."""


def parameters(world: Any) -> PathParameters:
    """The kernels' parameters of a (possibly stacked) ``PathWorld``."""
    k = len(world.capabilities)
    scalars = np.column_stack([np.reshape(getattr(world, name), -1) for name in SCALARS])
    cells = np.reshape(world._response, (-1, k, k, 3)).transpose(0, 2, 3, 1)  # v0's [j, 3i + m] -> [i, m, j]
    arrays = (world.student, world.gap, cells, world._decay_rates, world.prerequisites, scalars)
    shapes = ((-1, k), (-1, k), (-1, k, 3, k), (-1,), (-1, k, k), (-1, len(SCALARS)))
    return PathParameters(*(np.ascontiguousarray(np.reshape(array, shape), dtype=np.float64) for array, shape in zip(arrays, shapes)))


@numba.njit(cache=True, inline="always")
def _scratch(k: int, responses: int) -> tuple[np.ndarray, ...]:
    """Working memory of :func:`_advance_row`: readiness, speed-up, tokens, latent, harm [K]; responses [K, 3]."""
    return np.empty(k), np.empty(k), np.empty(k), np.empty(k), np.empty(k), np.empty((k, responses))


@numba.njit(cache=True, inline="always")
def _fill_responses(exposure, decay_rates, responses) -> None:
    """``responses[i, m] = 1 - exp(-e_i / tau_m)`` [K, 3] of one row's exposures [K]."""
    for i in range(exposure.shape[0]):
        for m in range(decay_rates.shape[0]):
            responses[i, m] = 1.0 - np.exp(exposure[i] * decay_rates[m])


@numba.njit(cache=True, inline="always")
def _fill_latent(responses, cells, p, latent, harm) -> None:
    """``latent[j] = z0_j = sum_i f_ij`` and ``harm[j] = h_j = sum_{i != j} min(0, f_ij)``, with
    ``f_ij = sum_m responses[i, m] * C[i, j, m]``. The loop over ``j`` is innermost: its accumulators are
    independent, so it vectorizes without changing the order of any sum."""
    k = latent.shape[0]
    latent[:] = 0.0
    harm[:] = 0.0
    for i in range(k):
        for j in range(k):
            effect = responses[i, 0] * cells[p, i, 0, j] + responses[i, 1] * cells[p, i, 1, j] + responses[i, 2] * cells[p, i, 2, j]
            latent[j] += effect
            if i != j:
                harm[j] += min(effect, 0.0)


@numba.njit(cache=True, inline="always")
def _saturate(latent: float, student: float, gap: float) -> float:
    """``s0 + sigma(z)``: the score of a latent gain (saturating at the teacher, never below 0)."""
    scale = gap if latent >= 0.0 else student
    return student + scale * np.tanh(latent / scale)


@numba.njit(cache=True, inline="always")
def _advance_row(p, state, n, allocation, train_noise, student, gap, cells, decay_rates, prerequisites, scalars, new_state, new_profile, scratch):
    """One row (world ``p``) after spending ``n`` tokens with ``allocation`` [K] from ``state`` [2K]: writes
    ``new_state`` [2K] and ``new_profile`` [K]; ``train_noise`` [K] or [0] (off); ``scratch`` is :func:`_scratch`'s."""
    readiness, speed, tokens, latent, harm, responses = scratch
    k = allocation.shape[0]
    readiness_tokens, repair_tokens, noise_scale = scalars[p, READINESS], scalars[p, REPAIR], scalars[p, TRAIN_NOISE]
    forgetting = n / scalars[p, FORGETTING]
    for q in range(k):
        readiness[q] = 1.0 - np.exp(-state[q] / readiness_tokens)
    speed[:] = 0.0
    for q in range(k):
        for j in range(k):
            speed[j] += readiness[q] * prerequisites[p, q, j]
    for j in range(k):
        tokens[j] = n * allocation[j] * (1.0 + speed[j])
        if train_noise.shape[0] > 0:
            tokens[j] *= max(0.0, 1.0 + noise_scale * train_noise[j])
        new_state[j] = state[j] * np.exp((allocation[j] - 1.0) * forgetting) + tokens[j]
    _fill_responses(new_state[:k], decay_rates, responses)
    _fill_latent(responses, cells, p, latent, harm)
    for j in range(k):
        repaid = min(0.0, harm[j] + state[k + j]) * np.exp(-tokens[j] / repair_tokens) - harm[j]
        new_state[k + j] = repaid
        new_profile[j] = _saturate(latent[j] + repaid, student[p, j], gap[p, j])


@numba.njit(cache=True)
def advance(state, step_tokens, allocation, train_noise, student, gap, cells, decay_rates, prerequisites, scalars):
    """(states [N, 2K], their noise-free profiles [N, K]) after one step from ``state`` [N, 2K] with
    ``step_tokens`` [1 or N], ``allocation`` [N, K] and ``train_noise`` [N or 0, K] standard normal draws, in
    the worlds of :class:`PathParameters`' fields (given one by one)."""
    rows, k = allocation.shape
    new_state, new_profile = np.empty_like(state), np.empty((rows, k))
    scratch, off = _scratch(k, decay_rates.shape[0]), np.empty(0)
    for r in range(rows):
        n = step_tokens[r if step_tokens.shape[0] > 1 else 0]
        p = r if scalars.shape[0] > 1 else 0
        noise = train_noise[r] if train_noise.shape[0] > 0 else off
        _advance_row(p, state[r], n, allocation[r], noise, student, gap, cells, decay_rates, prerequisites, scalars, new_state[r], new_profile[r], scratch)
    return new_state, new_profile


@numba.njit(cache=True)
def profile(state, student, gap, cells, decay_rates):
    """Noise-free profiles [N, K] of states [N, 2K]: ``s0 + sigma(z0(e) + q)``, rounded as :func:`advance`'s."""
    rows, k = state.shape[0], student.shape[1]
    out = np.empty((rows, k))
    _, _, _, latent, harm, responses = _scratch(k, decay_rates.shape[0])
    for r in range(rows):
        p = r if student.shape[0] > 1 else 0
        _fill_responses(state[r, :k], decay_rates, responses)
        _fill_latent(responses, cells, p, latent, harm)
        for j in range(k):
            out[r, j] = _saturate(latent[j] + state[r, k + j], student[p, j], gap[p, j])
    return out


@numba.njit(cache=True, inline="always")
def _step_rows(start, stop, action, state, steps, previous, episode_group, contract_group, world_group, out, first) -> bool:
    """Rows ``start`` to ``stop - 1`` of :func:`env_step` in three passes: action map, dynamics, readout."""
    episodes, contract, world = Episodes(*episode_group), Contract(*contract_group), PathParameters(*world_group)
    named = outputs_of(out, action.shape[1], state.shape[1])
    if not allocation_rows(start, stop, action, contract, named, first):
        return False
    student, gap, cells, decay_rates = world.student, world.gap, world.cells, world.decay_rates
    prerequisites, scalars = world.prerequisites, world.scalars
    noise, step_tokens = episodes.noise, contract.step_tokens
    allocation, new_state, true_profile = named.allocation, named.state, named.true_profile
    scratch, off = _scratch(action.shape[1], decay_rates.shape[0]), np.empty(0)
    for r in range(start, stop):
        row, t, p = first + r, steps[r], r if scalars.shape[0] > 1 else 0
        train_noise = noise[r, t] if noise.shape[1] > 0 else off  # row t: step t's training noise
        _advance_row(
            p, state[r], step_tokens[t], allocation[row], train_noise, student, gap, cells, decay_rates, prerequisites, scalars,
            new_state[row], true_profile[row], scratch,
        )  # fmt: skip
    read_rows(start, stop, steps, scalars[:, PROBE_NOISE], previous, episodes, contract, named, first)
    return True


@numba.njit(cache=True)
def env_step(action, state, steps, previous, episodes, contract, world, out, first) -> bool:
    """One ``ReAD-Surrogate-v1`` or ``-v2`` step of N episodes (:mod:`read_env.step_kernel`'s shape) in the worlds
    ``world`` (:class:`PathParameters`, leading axis 1: one world for every row; N: row ``r`` in world ``r``);
    no uncertainty columns."""
    return _step_rows(0, action.shape[0], action, state, steps, previous, episodes, contract, world, out, first)


@numba.njit(cache=True, parallel=True)
def env_step_threads(threads, action, state, steps, previous, episodes, contract, world, out, first) -> bool:
    """:func:`env_step` with the rows split into ``threads`` contiguous blocks computed on numba's thread pool;
    each row is computed by the same code, so the result is bit-identical to :func:`env_step`'s."""
    rows = action.shape[0]
    block = (rows + threads - 1) // threads
    accepted = np.ones(threads, dtype=np.bool_)
    for chunk in numba.prange(threads):
        stop = min(rows, (chunk + 1) * block)
        accepted[chunk] = _step_block(chunk * block, stop, action, state, steps, previous, episodes, contract, world, out, first)
    return accepted.all()


@numba.njit(cache=True)
def _step_block(start, stop, action, state, steps, previous, episodes, contract, world, out, first) -> bool:
    """:func:`_step_rows` behind a call: inside :func:`env_step_threads`' parallel loop, numba's parfors (0.68) lose
    the writes through the fields of a named tuple of arrays that an inlined body makes."""
    return _step_rows(start, stop, action, state, steps, previous, episodes, contract, world, out, first)

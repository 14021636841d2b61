"""The compiled dynamics of :class:`~read_env.surrogate.path_dependent_world.PathWorld`, and the compiled step of
``ReAD-Surrogate-v1`` and ``-v2``: rows of episodes, one loop each.

The equations are in :mod:`read_env.surrogate.path_dependent_world` (dynamics), :mod:`read_env.contract` (allocation
and reward) and :mod:`read_env.surrogate.path_dependent_env` (readings). These kernels compute them with numba, one row
at a time, so a row's result never depends on how many rows share the call: a vector of environments matches
single environments bit for bit, and a step costs a few microseconds instead of dozens of numpy calls on
length-K arrays. Parameters carry a leading axis of length 1 (one world for every row) or of the number of
rows (a stack of worlds: row ``r`` uses world ``r``); so does :func:`advance`'s ``step_tokens``. A noise
array with an empty draw axis means noise off.

Parameter layout (:func:`parameters`): ``student``, ``gap`` [P, K]; ``cells`` [P, K(i), 3, K(j)] (v0's
``C[i, j, m]`` at ``[i, m, j]``, so that the effects of ``i`` on every ``j`` are contiguous); ``decay_rates`` [3]
(``-1 / tau_m``); ``prerequisites`` [P, K, K]; ``scalars`` [P, 5]: readiness tokens, repair tokens,
forgetting tokens, train noise, probe noise.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from read_env.contract import LOGIT_SLACK
from read_env.tasks import SIMPLEX_ATOL
from read_env.utility import utility_row

READINESS, REPAIR, FORGETTING, TRAIN_NOISE, PROBE_NOISE = range(5)
SCALARS = ("readiness_tokens", "repair_tokens", "forgetting_tokens", "train_noise", "probe_noise")


def parameters(world: Any) -> tuple[np.ndarray, ...]:
    """The kernels' parameters of a (possibly stacked) ``PathWorld``, as contiguous float64 arrays."""
    k = len(world.capabilities)
    scalars = np.column_stack([np.reshape(getattr(world, name), -1) for name in SCALARS])
    cells = np.reshape(world._response, (-1, k, k, 3)).transpose(0, 2, 3, 1)  # v0's [j, 3i + m] -> [i, m, j]
    arrays = (world.student, world.gap, cells, world._decay_rates, world.prerequisites, scalars)
    shapes = ((-1, k), (-1, k), (-1, k, 3, k), (-1,), (-1, k, k), (-1, len(SCALARS)))
    return tuple(np.ascontiguousarray(np.reshape(array, shape), dtype=np.float64) for array, shape in zip(arrays, shapes))


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
    ``step_tokens`` [1 or N], ``allocation`` [N, K] and ``train_noise`` [N or 0, K] standard normal draws."""
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


@numba.njit(cache=True)
def allocation_row(action, r, simplex, temperature, out) -> bool:
    """``out[r]``: the allocation of ``action[r]`` (:func:`read_env.contract.allocation_from_action`'s map);
    False, with ``out[r]`` unspecified, for an action that map rejects."""
    k = action.shape[1]
    total = 0.0
    for c in range(k):
        x = np.float64(action[r, c])
        if simplex:
            if not (np.isfinite(x) and x >= 0.0):
                return False
            out[r, c] = x
        else:
            if not abs(x) <= 1.0 + LOGIT_SLACK:
                return False
            out[r, c] = np.exp(x * (1.0 / temperature))
        total += out[r, c]
    if simplex and not abs(total - 1.0) <= SIMPLEX_ATOL:
        return False
    for c in range(k):
        out[r, c] /= total
    return True


def split_step(out: np.ndarray) -> tuple[Any, ...]:
    """:func:`env_step`'s result (rows [N, 6K + 5] or one row [6K + 5]) as views: ``(allocation, profile,
    delta, true_profile, state, utility, reading, reward, gain, spillover)``, [..., K], [..., 2K] or [...]."""
    k = (out.shape[-1] - 5) // 6
    return (out[..., :k], out[..., k : 2 * k], out[..., 2 * k : 3 * k], out[..., 3 * k : 4 * k], out[..., 4 * k : 6 * k], *out[..., 6 * k :].T)


@numba.njit(cache=True, inline="always")
def _env_step_rows(
    first, last, action, simplex, temperature, state, steps, step_tokens, budget_tokens, noise, readings, utility_noise,
    previous, requirement, essential_weight, utility_weights, utility_power, utility_teacher, beta, cost_weight,
    student, gap, cells, decay_rates, prerequisites, scalars, out, valid,
):  # fmt: skip
    """Rows ``first`` to ``last - 1`` of :func:`env_step` into ``out``; ``valid[r]`` False where the action map
    rejects ``action[r]``."""
    k, num_steps = action.shape[1], step_tokens.shape[0]
    allocation, profile, delta, true_profile = out[:, :k], out[:, k : 2 * k], out[:, 2 * k : 3 * k], out[:, 3 * k : 4 * k]
    new_state, numbers = out[:, 4 * k : 6 * k], out[:, 6 * k :]
    scratch, off = _scratch(k, decay_rates.shape[0]), np.empty(0)
    for r in range(first, last):
        valid[r] = allocation_row(action, r, simplex, temperature, allocation)
        if not valid[r]:
            continue
        p = r if scalars.shape[0] > 1 else 0
        t = steps[r]
        noisy = noise.shape[1] > 0
        train_noise = noise[r, t] if noisy else off  # row t: step t's training noise
        _advance_row(p, state[r], step_tokens[t], allocation[r], train_noise, student, gap, cells, decay_rates, prerequisites, scalars, new_state[r], true_profile[r], scratch)
        read_row(r, t, num_steps, scalars[p, PROBE_NOISE], noise, readings, utility_noise, previous, requirement, essential_weight, utility_weights, utility_power,
                 utility_teacher, beta, cost_weight, step_tokens[t] / budget_tokens, true_profile, profile, delta, numbers)


@numba.njit(cache=True, inline="always")
def read_row(r, t, num_steps, probe_noise, noise, readings, utility_noise, previous, requirement, essential_weight, utility_weights, utility_power,
             utility_teacher, beta, cost_weight, cost, true_profile, profile, delta, numbers) -> None:
    """What row ``r`` reads after step ``t`` (of ``num_steps``) from its new ``true_profile[r]``: the probe reading
    ``profile[r]`` (noise row ``num_steps + t + 1``; ``noise`` [N, 0, K]: off), its change ``delta[r]`` from ``previous[r]``, and ``numbers[r]``: the
    true utility (``utility_teacher`` [N, 0]: the scores family; see :func:`read_env.utility.utility_row`), its reading, the reward (``cost``: the step's share of the budget), the gain and the spillover."""
    k, noisy = true_profile.shape[1], noise.shape[1] > 0
    gain, spill = 0.0, 0.0
    for c in range(k):
        score = true_profile[r, c]
        if noisy:  # row num_steps + t + 1: the probe noise of reading t + 1
            score = min(max(score + probe_noise * noise[r, num_steps + t + 1, c], 0.0), 1.0)
        profile[r, c] = score
        delta[r, c] = score - previous[r, c]
        gain += requirement[r, c] * delta[r, c]
        spill += essential_weight[r, c] * max(0.0, -delta[r, c])
    utility = utility_row(true_profile[r], utility_weights[r], utility_power[r], utility_teacher[r])
    reading = utility if readings.shape[1] == 0 else min(max(utility + utility_noise * readings[r, t + 1], 0.0), 1.0)
    numbers[r, 0], numbers[r, 1] = utility, reading
    numbers[r, 2] = gain - beta * spill - cost_weight * cost
    numbers[r, 3], numbers[r, 4] = gain, spill


@numba.njit(cache=True)
def env_step(
    action, simplex, temperature, state, steps, step_tokens, budget_tokens, noise, readings, utility_noise,
    previous, requirement, essential_weight, utility_weights, utility_power, utility_teacher, beta, cost_weight,
    student, gap, cells, decay_rates, prerequisites, scalars,
):  # fmt: skip
    """One ``ReAD-Surrogate-v1`` or ``-v2`` step of N episodes, everything [N, ...].

    Inputs: ``action`` [N, K]; ``state`` [N, 2K]; each row's step index ``steps`` [N] into ``step_tokens``
    [T] (the contract's tokens per step; ``budget_tokens`` prices them); each episode's standard normal
    draws ``noise`` [N, 2T + 1, K] (``draw_episode``'s layout, v2's probe bias already mixed into the probe
    rows; [N, 0, K]: noise off) and ``readings`` [N, T + 1] (the utility readings'; [N, 0]: none); the
    previous measured profile ``previous`` [N, K]; the observed requirement and its top-k part
    ``essential_weight`` [N, K]; the utility's weights [N, K], powers [N] and teacher profiles
    ``utility_teacher`` [N, K] (the shortfall family; [N, 0]: the scores family, see
    :func:`read_env.utility.utility_row`); the world's parameters.

    Returns one array [N, 6K + 5] (one array: numba boxes each returned array at a cost of microseconds),
    read with :func:`split_step`: the allocation, measured profile, its change, the true profile, the
    new state, the true utility, its noisy dev-split reading ``clip(F + utility_noise * xi)``, the reward,
    the gain and the spillover. No rows (shape [0, 6K + 5]) when the map rejects an action.
    """
    rows, k = action.shape
    out, valid = np.empty((rows, 6 * k + 5)), np.empty(rows, dtype=np.bool_)
    _env_step_rows(
        0, rows, action, simplex, temperature, state, steps, step_tokens, budget_tokens, noise, readings, utility_noise,
        previous, requirement, essential_weight, utility_weights, utility_power, utility_teacher, beta, cost_weight,
        student, gap, cells, decay_rates, prerequisites, scalars, out, valid,
    )  # fmt: skip
    return out if valid.all() else out[:0]


@numba.njit(cache=True, parallel=True)
def env_step_threads(
    threads, action, simplex, temperature, state, steps, step_tokens, budget_tokens, noise, readings, utility_noise,
    previous, requirement, essential_weight, utility_weights, utility_power, utility_teacher, beta, cost_weight,
    student, gap, cells, decay_rates, prerequisites, scalars,
):  # fmt: skip
    """:func:`env_step` with the rows split into ``threads`` contiguous blocks computed on numba's thread pool;
    each row is computed by the same code, so the result is bit-identical to :func:`env_step`'s."""
    rows, k = action.shape
    out, valid = np.empty((rows, 6 * k + 5)), np.empty(rows, dtype=np.bool_)
    block = (rows + threads - 1) // threads
    for chunk in numba.prange(threads):
        _env_step_rows(
            chunk * block, min(rows, (chunk + 1) * block), action, simplex, temperature, state, steps, step_tokens, budget_tokens, noise,
            readings, utility_noise, previous, requirement, essential_weight, utility_weights, utility_power, utility_teacher, beta, cost_weight,
            student, gap, cells, decay_rates, prerequisites, scalars, out, valid,
        )  # fmt: skip
    return out if valid.all() else out[:0]

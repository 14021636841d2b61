"""The compiled step's interface, one shape for every compiled ReAD environment, with named inputs and outputs.

A compiled step (:func:`read_env.surrogate.path_dependent_kernel.env_step` for ``ReAD-Surrogate-v1``/``-v2``,
:func:`read_env.fitted.kernel.env_step` for ``ReAD-Fitted-v0``/``-v1``) advances N rows of episodes::

    valid = env_step(action, state, steps, previous, episodes, contract, world, out, first)

* what changes every step, one row per episode: ``action`` [N, K] (any real dtype), the dynamics' ``state``
  [N, S], each row's step index ``steps`` [N] (int64) and the last measured profile ``previous`` [N, K];
* :class:`Episodes`: what each row's reset fixed (its draws and its task);
* :class:`Contract`: the environment's constants;
* ``world``: the dynamics' parameters, a named tuple of the kernel's module;
* ``out``: a float64 block [M, W] the step writes row ``r``'s :class:`StepOutputs` into, at row ``first + r``
  (:func:`new_block` makes one; :func:`outputs_of` names its columns). ``valid`` is False when the action map
  rejected an action (that row's outputs are then unspecified).

The groups are named tuples on both sides and travel as plain tuples in between (``tuple(group)``, made once
per reset): numba types a named-tuple argument in Python at every call (about 10 us) where a plain tuple of
arrays costs about 50 ns an array, and it boxes each returned array (about 0.3 us), so the outputs are written
into a block the caller owns. A single environment passes one row and writes its episode's block [T, W] at
row ``t`` (nothing a step returned is overwritten before the next reset); the native vector form passes N
rows and a fresh block [N, W] each step. Each row is computed by the same code, one at a time, so row ``i`` of
a vector matches a single environment bit for bit.

A step is three passes over its rows: the action map (:func:`allocation_rows`, the map of
:func:`read_env.contract.allocation_from_action`), the kernel's dynamics, and the readout (:func:`read_rows`: the
probe reading, the utility and its noisy reading, the contract's reward); the first and the last are here,
shared. Each pass reads the fields it needs once, before its loop. The equations are in
:mod:`read_env.contract` and :mod:`read_env.surrogate.path_dependent_env`.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from read_env.contract import LOGIT_SLACK
from read_env.tasks import SIMPLEX_ATOL
from read_env.utility import utility_row


class Contract(NamedTuple):
    """An environment's constants."""

    simplex: bool
    """``action_mode == "simplex"`` (else logits)."""
    temperature: float
    """The logit map's temperature."""
    step_tokens: np.ndarray
    """Tokens of each step [T], float64."""
    budget_tokens: float
    """The budget, which prices a step's tokens (``cost = tokens / budget_tokens``)."""
    utility_noise: float
    """Standard deviation of a utility reading."""
    beta: float
    """The reward's spillover weight."""
    cost_weight: float
    """The reward's price of the whole budget."""


class Episodes(NamedTuple):
    """What each row's reset fixed, [N, ...]: its draws and its task."""

    noise: np.ndarray
    """Standard normal draws [N, 2T + 1, K]: row ``t`` step ``t``'s training noise, row ``T + t`` probe reading
    ``t``'s (v2's probe bias already mixed in); [N, 0, K]: noise off."""
    readings: np.ndarray
    """Standard normal draws of the utility readings [N, T + 1]; [N, 0]: none."""
    requirement: np.ndarray
    """The observed requirement ``r`` [N, K]."""
    essential_weight: np.ndarray
    """``r`` masked to its top-k entries [N, K]."""
    utility_weights: np.ndarray
    """The utility's weights [N, K]."""
    utility_power: np.ndarray
    """The utility's power [N]."""
    utility_teacher: np.ndarray
    """The teacher profiles [N, K] of the shortfall family; [N, 0]: the scores family (:func:`read_env.utility.utility_row`)."""


class StepOutputs(NamedTuple):
    """A step's results, views [M, ...] of an output block (:func:`outputs_of`)."""

    allocation: np.ndarray
    """The allocation [M, K]."""
    profile: np.ndarray
    """The measured (probe) profile [M, K]."""
    delta: np.ndarray
    """Its change from ``previous`` [M, K]."""
    true_profile: np.ndarray
    """The noise-free profile [M, K]."""
    state: np.ndarray
    """The new states [M, S]."""
    utility: np.ndarray
    """The true utility [M]."""
    reading: np.ndarray
    """Its dev-split reading ``clip(F + utility_noise * xi, 0, 1)`` [M] (the true utility without draws)."""
    reward: np.ndarray
    """The contract's reward [M]."""
    gain: np.ndarray
    """``r . ds`` [M]."""
    spillover: np.ndarray
    """The spillover [M]."""
    uncertainty: np.ndarray
    """The world's spread of the next true profile [M, U] (a fitted ensemble's members', U = K); U = 0: not computed."""


def new_block(rows: int, k: int, state_width: int, extra: int = 0) -> np.ndarray:
    """An output block [rows, 4K + S + 5 + U] (uninitialized) for :func:`outputs_of` (``extra``: U)."""
    return np.empty((rows, 4 * k + state_width + 5 + extra))


@numba.njit(cache=True, inline="always")
def outputs_of(block: np.ndarray, k: int, state_width: int) -> StepOutputs:
    """:class:`StepOutputs` as views of a block [M, 4K + S + 5 + U], columns in field order. Compiled inside the
    kernels; ``outputs_of.py_func`` in Python."""
    s = 4 * k + state_width
    return StepOutputs(
        block[:, :k], block[:, k : 2 * k], block[:, 2 * k : 3 * k], block[:, 3 * k : 4 * k], block[:, 4 * k : s],
        block[:, s], block[:, s + 1], block[:, s + 2], block[:, s + 3], block[:, s + 4], block[:, s + 5 :],
    )  # fmt: skip


@numba.njit(cache=True, inline="always")
def allocation_rows(start: int, stop: int, action: np.ndarray, contract: Contract, out: StepOutputs, first: int) -> bool:
    """``out.allocation[first + r]`` [K]: the allocation of ``action[r]`` for rows ``start`` to ``stop - 1``
    (:func:`read_env.contract.allocation_from_action`'s map); False, at the first action that map rejects."""
    allocation, simplex, scale = out.allocation, contract.simplex, 1.0 / contract.temperature
    for r in range(start, stop):
        row, total = first + r, 0.0
        for c in range(action.shape[1]):
            x = np.float64(action[r, c])
            if simplex:
                if not (np.isfinite(x) and x >= 0.0):
                    return False
                allocation[row, c] = x
            else:
                if not abs(x) <= 1.0 + LOGIT_SLACK:
                    return False
                allocation[row, c] = np.exp(x * scale)
            total += allocation[row, c]
        if simplex and not abs(total - 1.0) <= SIMPLEX_ATOL:
            return False
        for c in range(action.shape[1]):
            allocation[row, c] /= total
    return True


@numba.njit(cache=True, inline="always")
def read_rows(
    start: int, stop: int, steps: np.ndarray, probe_noise: np.ndarray, previous: np.ndarray, episodes: Episodes, contract: Contract,
    out: StepOutputs, first: int,
) -> None:
    """What rows ``start`` to ``stop - 1`` read after their steps ``steps[r]`` from their new ``out.true_profile``,
    into ``out``'s rows ``first + r``: the probe reading ``profile`` (noise row ``T + t + 1``, scale ``probe_noise[r]``,
    or ``probe_noise[0]`` for every row), its change ``delta`` from ``previous[r]``, the true ``utility``, its
    ``reading`` (draw ``t + 1``), the ``reward`` (the step's share of the budget its cost), ``gain`` and ``spillover``."""
    # every field is read once, here: a named tuple's array field read inside the loop costs reference counts every row
    true_profile, profile, delta, utility, reading = out.true_profile, out.profile, out.delta, out.utility, out.reading
    reward, gain, spillover = out.reward, out.gain, out.spillover
    noise, readings, requirement, essential_weight = episodes.noise, episodes.readings, episodes.requirement, episodes.essential_weight
    weights, power, teacher = episodes.utility_weights, episodes.utility_power, episodes.utility_teacher
    step_tokens, budget_tokens, utility_noise = contract.step_tokens, contract.budget_tokens, contract.utility_noise
    beta, cost_weight = contract.beta, contract.cost_weight
    k, num_steps = true_profile.shape[1], step_tokens.shape[0]
    for r in range(start, stop):
        row, t = first + r, steps[r]
        scale = probe_noise[r if probe_noise.shape[0] > 1 else 0]
        gained, spilled = 0.0, 0.0
        for c in range(k):
            score = true_profile[row, c]
            if noise.shape[1] > 0:  # row num_steps + t + 1: the probe noise of reading t + 1
                score = min(max(score + scale * noise[r, num_steps + t + 1, c], 0.0), 1.0)
            profile[row, c] = score
            delta[row, c] = score - previous[r, c]
            gained += requirement[r, c] * delta[row, c]
            spilled += essential_weight[r, c] * max(0.0, -delta[row, c])
        value = utility_row(true_profile[row], weights[r], power[r], teacher[r])
        utility[row] = value
        reading[row] = value if readings.shape[1] == 0 else min(max(value + utility_noise * readings[r, t + 1], 0.0), 1.0)
        reward[row] = gained - beta * spilled - cost_weight * (step_tokens[t] / budget_tokens)
        gain[row], spillover[row] = gained, spilled

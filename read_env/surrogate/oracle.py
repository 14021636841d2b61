"""The oracle: a near-optimal allocation schedule on a world's noise-free dynamics, the regret reference.

Method (all schedules of a round are simulated as one batch):

1. *Best fixed allocation.* Evaluate every allocation of a library as a fixed schedule: uniform, the
   requirement ``r``, sharpened requirements ``r^p / |r^p|`` (p = 2, 4), every one-hot, and every pair of
   capabilities with weights {0.25, 0.5, 0.75} (a superset of the paper's candidate set: pairs among the
   top-3 with that grid plus one-hots). The best is the incumbent.
2. *Coordinate ascent over steps.* For each step in turn, try replacing its allocation by every library
   allocation and by moves of the current one toward each one-hot (``(1 - eta) w + eta e_i``, eta in
   {0.1, 0.3, 0.6}); keep the best schedule. Sweep until a sweep improves utility by less than 1e-7, at
   most ``max_sweeps`` times.

The objective is the task utility ``r . s`` of the true profile after the whole budget, noise off. The
result is at least as good as every fixed allocation of the library, by construction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from read_env import contract
from read_env.surrogate.world import World

PAIR_WEIGHTS = (0.25, 0.5, 0.75)
SHARPENING_POWERS = (2.0, 4.0)
STEP_MOVES = (0.1, 0.3, 0.6)
MIN_IMPROVEMENT = 1e-7


@dataclass(frozen=True)
class OracleResult:
    """A schedule [T, K] of allocations, its utility, and the best fixed allocation [K] with its utility."""

    schedule: np.ndarray
    utility: float
    best_fixed_allocation: np.ndarray
    best_fixed_utility: float


def final_utilities(world: World, requirement: np.ndarray, schedules: np.ndarray, step_tokens: np.ndarray) -> np.ndarray:
    """Noise-free task utility [M] after running each schedule [M, T, K] with ``step_tokens`` [T]."""
    exposure = np.zeros((schedules.shape[0], schedules.shape[2]))
    for step, tokens in enumerate(step_tokens):
        exposure = world.advance(exposure, float(tokens), schedules[:, step], None)
    return world.profile(exposure) @ requirement


def allocation_library(requirement: np.ndarray) -> np.ndarray:
    """Fixed allocations [M, K] the oracle starts from (see the module docstring)."""
    k = requirement.shape[0]
    library = [np.full(k, 1.0 / k), requirement]
    library += [requirement**power / (requirement**power).sum() for power in SHARPENING_POWERS]
    library += list(np.eye(k))
    for first, second in itertools.combinations(range(k), 2):
        for weight in PAIR_WEIGHTS:
            pair = np.zeros(k)
            pair[first], pair[second] = weight, 1.0 - weight
            library.append(pair)
    return np.array(library)


def oracle_schedule(world: World, requirement: np.ndarray, budget_tokens: int, num_steps: int, max_sweeps: int = 4) -> OracleResult:
    """A near-optimal schedule for ``requirement`` [K] with ``budget_tokens`` over ``num_steps`` steps."""
    requirement = np.asarray(requirement, dtype=np.float64)
    step_tokens = contract.step_tokens(int(budget_tokens), int(num_steps))
    library = allocation_library(requirement)
    fixed = final_utilities(world, requirement, np.repeat(library[:, None, :], num_steps, axis=1), step_tokens)
    best = int(np.argmax(fixed))
    schedule = np.repeat(library[best][None, :], num_steps, axis=0)
    utility = float(fixed[best])
    eye = np.eye(requirement.shape[0])
    for _ in range(max_sweeps):
        start = utility
        for step in range(num_steps):
            moves = [(1.0 - eta) * schedule[step] + eta * eye for eta in STEP_MOVES]
            options = np.concatenate([library, *moves])
            trials = np.repeat(schedule[None], options.shape[0], axis=0)
            trials[:, step] = options
            scores = final_utilities(world, requirement, trials, step_tokens)
            pick = int(np.argmax(scores))
            if scores[pick] > utility:
                schedule, utility = trials[pick], float(scores[pick])
        if utility - start < MIN_IMPROVEMENT:
            break
    return OracleResult(schedule, utility, library[best].copy(), float(fixed[best]))

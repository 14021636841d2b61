"""The oracle: a near-optimal allocation schedule on a world's noise-free dynamics, the regret reference.

Method (all schedules of a round are simulated as one batch):

1. *Best fixed allocation*, a continuous search over the simplex (:func:`best_fixed_allocation`):
   evaluate every allocation of a library as a fixed schedule (uniform, the requirement ``r``, sharpened
   requirements ``r^p / |r^p|`` (p = 2, 4), every one-hot, and every pair of capabilities with weights
   {0.25, 0.5, 0.75}: a superset of the paper's candidate set) and ``FIXED_DRAWS`` Dirichlet(0.3) points
   (a fixed seed); from the ``FIXED_STARTS`` best, a pattern search of pairwise transfers: move
   ``min(eta, w_i)`` of mass from capability ``i`` to ``j`` for every ordered pair, keep the best improving
   move of each start, halve ``eta`` when none improves (from ``FIXED_STEP`` down to ``FIXED_MIN_STEP``).
   The pairwise moves span the simplex's tangent space in both directions (a positive spanning set), so the
   search stops at a point no small feasible move improves. The best is the incumbent.
   With ``phase_starts`` (for path-dependent worlds, ``ReAD-Surrogate-v1``), the incumbent is also compared
   with every two-phase schedule ``a`` then ``b`` among the best fixed allocation and the 11 best of the
   library, switching after a
   quarter, half or three quarters of the steps, and with the greedy schedule (each step the library
   allocation that maximizes the objective after that step).
2. *Coordinate ascent over steps.* For each step in turn, try replacing its allocation by every library
   allocation and by moves of the current one toward each one-hot (``(1 - eta) w + eta e_i``, eta in
   {0.1, 0.3, 0.6}); keep the best schedule. Sweep until a sweep improves utility by less than 1e-7, at
   most ``max_sweeps`` times.

The objective is the task utility of the true profile after the whole budget, noise off: ``r . s`` by
default, or any ``objective(profile [M, K]) -> [M]``. The result is at least as good as the best fixed
allocation found, every allocation of the library and every Dirichlet draw (and, with ``phase_starts``, every such two-phase schedule and the greedy
schedule), by construction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from read_env import contract
from read_env.surrogate.world import World

PAIR_WEIGHTS = (0.25, 0.5, 0.75)
SHARPENING_POWERS = (2.0, 4.0)
STEP_MOVES = (0.1, 0.3, 0.6)
MIN_IMPROVEMENT = 1e-7
PHASE_CANDIDATES = 12
PHASE_SWITCHES = (0.25, 0.5, 0.75)
FIXED_DRAWS = 2000
FIXED_DIRICHLET = 0.3
FIXED_STARTS = 6
FIXED_STEP = 0.1
FIXED_MIN_STEP = 1e-4
FIXED_SEED = 0

Objective = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class OracleResult:
    """A schedule [T, K] of allocations, its utility, and the best fixed allocation [K] with its utility."""

    schedule: np.ndarray
    utility: float
    best_fixed_allocation: np.ndarray
    best_fixed_utility: float


def final_profiles(world: World, schedules: np.ndarray, step_tokens: np.ndarray) -> np.ndarray:
    """Noise-free true profiles [M, K] after running each schedule [M, T, K] with ``step_tokens`` [T]."""
    state = world.initial_state((schedules.shape[0],))
    for step, tokens in enumerate(step_tokens):
        state = world.advance(state, float(tokens), schedules[:, step], None)
    return world.profile(state)


def final_utilities(world: World, objective: np.ndarray | Objective, schedules: np.ndarray, step_tokens: np.ndarray) -> np.ndarray:
    """Noise-free task utility [M] after each schedule [M, T, K]; ``objective`` is ``r`` [K] (linear) or a callable."""
    profiles = final_profiles(world, schedules, step_tokens)
    return objective(profiles) if callable(objective) else profiles @ objective


def greedy_schedule(world: World, objective: np.ndarray | Objective, library: np.ndarray, step_tokens: np.ndarray) -> np.ndarray:
    """Schedule [T, K]: each step the ``library`` allocation [M, K] with the best objective right after it."""
    state = world.initial_state()
    schedule = []
    for tokens in step_tokens:
        options, profiles = world.transition(state, float(tokens), library, None)  # state [S] broadcasts against library [M, K]
        scores = objective(profiles) if callable(objective) else profiles @ objective
        pick = int(np.argmax(scores))
        schedule.append(library[pick])
        state = options[pick]
    return np.array(schedule)


def phase_schedules(fixed: np.ndarray, num_steps: int) -> np.ndarray:
    """Two-phase schedules [M, T, K]: ``a`` then ``b`` for every ordered pair of ``fixed`` [F, K], switching at each of PHASE_SWITCHES."""
    schedules = []
    for first, second in itertools.product(fixed, repeat=2):
        for switch in sorted({max(1, min(num_steps - 1, round(share * num_steps))) for share in PHASE_SWITCHES}):
            schedule = np.repeat(second[None], num_steps, axis=0)
            schedule[:switch] = first
            schedules.append(schedule)
    return np.array(schedules)


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


def pairwise_moves(points: np.ndarray, steps: np.ndarray | float) -> np.ndarray:
    """Every pairwise transfer of each point [S, K]: [S, K * (K - 1), K], ``min(step, w_i)`` moved from ``i`` to ``j``
    (``steps``: a number or one per point [S])."""
    k = points.shape[1]
    sources, targets = np.nonzero(~np.eye(k, dtype=bool))
    amount = np.minimum(np.reshape(steps, (-1, 1)), points[:, sources])  # [S, P]
    moves = np.repeat(points[:, None, :], sources.size, axis=1)
    pair = np.arange(sources.size)
    moves[:, pair, sources] -= amount
    moves[:, pair, targets] += amount
    return np.maximum(moves, 0.0)


def best_fixed_allocation(
    fixed_utility: Callable[[np.ndarray], np.ndarray], library: np.ndarray, draws: int = FIXED_DRAWS, starts: int = FIXED_STARTS,
    step: float = FIXED_STEP, min_step: float = FIXED_MIN_STEP, seed: int = FIXED_SEED,
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """The best fixed allocation [K] found by the continuous search of the module docstring, and its utility.

    ``fixed_utility(allocations [M, K]) -> [M]`` is the utility of playing each allocation for the whole
    budget. Also returns the seed points [L + draws, K] (the ``library`` [L, K] first, then the Dirichlet
    draws) and their utilities [L + draws], so callers can rank them.
    """
    k = library.shape[1]
    points = np.concatenate([library, np.random.default_rng(seed).dirichlet(np.full(k, FIXED_DIRICHLET), draws)]) if draws else library
    values = fixed_utility(points)
    order = np.argsort(-values, kind="stable")[:starts]
    current, scores = points[order].copy(), values[order].copy()
    sizes = np.full(len(order), float(step))
    while (sizes >= min_step).any():
        active = np.nonzero(sizes >= min_step)[0]
        moves = pairwise_moves(current[active], sizes[active])
        trials = fixed_utility(moves.reshape(-1, k)).reshape(len(active), -1)
        picks = trials.argmax(axis=1)
        for index, row in enumerate(active):
            if trials[index, picks[index]] > scores[row]:
                current[row], scores[row] = moves[index, picks[index]], trials[index, picks[index]]
            else:
                sizes[row] /= 2.0
    best = int(np.argmax(scores))
    return current[best] / current[best].sum(), float(scores[best]), points, values


def oracle_schedule(
    world: World,
    requirement: np.ndarray,
    budget_tokens: int,
    num_steps: int,
    max_sweeps: int = 4,
    objective: Objective | None = None,
    phase_starts: bool = False,
    **fixed_search: Any,
) -> OracleResult:
    """A near-optimal schedule with ``budget_tokens`` over ``num_steps`` steps (see the module docstring).

    ``requirement`` [K] builds the allocation library; the objective is ``requirement . s`` unless
    ``objective`` is given. ``fixed_search`` are :func:`best_fixed_allocation`'s search options (draws, starts,
    step, min_step, seed).
    """
    requirement = np.asarray(requirement, dtype=np.float64)
    goal = requirement if objective is None else objective
    step_tokens = contract.step_tokens(int(budget_tokens), int(num_steps))
    library = allocation_library(requirement)
    if phase_starts:  # v1 also tries the paper candidate set's top-3 triple, so the oracle is at least the grid search
        library = np.concatenate([library, np.eye(len(requirement))[contract.essential_mask(requirement, 3)].mean(axis=0)[None]])
    def fixed_utility(allocations: np.ndarray) -> np.ndarray:
        return final_utilities(world, goal, np.repeat(allocations[:, None, :], num_steps, axis=1), step_tokens)

    best_fixed, best_fixed_utility, _, fixed = best_fixed_allocation(fixed_utility, library, **fixed_search)
    schedule = np.repeat(best_fixed[None, :], num_steps, axis=0)
    utility = best_fixed_utility
    if phase_starts and num_steps > 1:
        phase_fixed = np.concatenate([best_fixed[None], library[np.argsort(-fixed[: len(library)])[: PHASE_CANDIDATES - 1]]])
        starts = np.concatenate([phase_schedules(phase_fixed, num_steps), greedy_schedule(world, goal, library, step_tokens)[None]])
        scores = final_utilities(world, goal, starts, step_tokens)
        if scores.max() > utility:
            schedule, utility = starts[int(np.argmax(scores))].copy(), float(scores.max())
    eye = np.eye(requirement.shape[0])
    for _ in range(max_sweeps):
        start = utility
        for step in range(num_steps):
            moves = [(1.0 - eta) * schedule[step] + eta * eye for eta in STEP_MOVES]
            options = np.concatenate([library, *moves])
            trials = np.repeat(schedule[None], options.shape[0], axis=0)
            trials[:, step] = options
            scores = final_utilities(world, goal, trials, step_tokens)
            pick = int(np.argmax(scores))
            if scores[pick] > utility:
                schedule, utility = trials[pick], float(scores[pick])
        if utility - start < MIN_IMPROVEMENT:
            break
    return OracleResult(schedule, utility, best_fixed, best_fixed_utility)

"""The oracle beats every simple allocation it is compared against."""

import itertools

import numpy as np
import pytest

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.surrogate.oracle import final_utilities, oracle_schedule
from read_env.surrogate.world import World
from read_env.tasks import TASKS


def paper_candidates(requirement, top_k=3):
    """The paper's candidate set: pairs among the top-k with weights {.25, .5, .75}, plus one-hots."""
    top = np.argsort(-requirement, kind="stable")[:top_k]
    candidates = list(np.eye(requirement.size))
    for first, second in itertools.combinations(top, 2):
        for weight in (0.25, 0.5, 0.75):
            pair = np.zeros(requirement.size)
            pair[first], pair[second] = weight, 1 - weight
            candidates.append(pair)
    return np.array(candidates)


@pytest.mark.parametrize("task", ["math_word_problems", "coding_assistant", "reasoning", "chat_assistant"])
@pytest.mark.parametrize("budget", [20_000_000, 150_000_000])
@pytest.mark.parametrize("world_seed", [None, 11])
def test_oracle_at_least_as_good_as_fixed_allocations(task, budget, world_seed):
    world = World.paper() if world_seed is None else World.random(np.random.default_rng(world_seed))
    requirement = TASKS[task].requirement(PAPER_CAPABILITIES)
    result = oracle_schedule(world, requirement, budget, 20)
    fixed = np.concatenate([paper_candidates(requirement), [np.full(8, 1 / 8), requirement]])
    tokens = np.full(20, budget // 20)
    utilities = final_utilities(world, requirement, np.repeat(fixed[:, None], 20, axis=1), tokens)
    assert result.utility >= utilities.max() - 1e-12
    assert result.schedule.shape == (20, 8)
    np.testing.assert_allclose(result.schedule.sum(axis=1), 1.0)
    assert final_utilities(world, requirement, result.schedule[None], tokens)[0] == pytest.approx(result.utility)


def test_on_v0_a_changing_schedule_is_worth_little_over_the_continuous_best_fixed_allocation():
    world = World.paper()  # v0: the profile is a function of cumulative exposures, so order matters little
    requirement = TASKS["agentic_tool_use"].requirement(PAPER_CAPABILITIES)
    result = oracle_schedule(world, requirement, 150_000_000, 20)
    assert 0.0 <= result.utility - result.best_fixed_utility < 1e-3  # under 0.1 points (the library's best was 0.1+ below)


def test_continuous_best_fixed_beats_the_library_and_matches_a_fine_solution():
    from read_env.surrogate.oracle import allocation_library, best_fixed_allocation
    from read_env.surrogate.path_dependent_world import PathWorld
    from read_env.utility import power_mean, requirement_from_utility

    world = PathWorld.paper()
    card = TASKS["coding_assistant"]
    weights = card.requirement(world.capabilities)
    requirement = requirement_from_utility(world.student, weights, card.power)
    tokens = np.full(20, 150_000_000 // 20)

    def fixed_utility(allocations):
        return final_utilities(world, lambda profile: power_mean(profile, weights, card.power), np.repeat(allocations[:, None], 20, axis=1), tokens)

    library = allocation_library(requirement)
    best, utility, points, values = best_fixed_allocation(fixed_utility, library)
    assert utility > fixed_utility(library).max() + 5e-3  # half a point above the library's best on this case
    assert utility >= values.max()  # and at least every Dirichlet draw
    assert fixed_utility(best[None])[0] == pytest.approx(utility)
    assert best.min() >= 0 and best.sum() == pytest.approx(1.0)
    _, fine, _, _ = best_fixed_allocation(fixed_utility, library, draws=20_000, starts=32, min_step=1e-7)
    assert utility >= fine - 1e-6  # within 1e-4 points of the finely solved optimum


def test_pairwise_moves_stay_on_the_simplex_and_move_the_stated_mass():
    from read_env.surrogate.oracle import pairwise_moves

    points = np.array([[0.5, 0.5, 0.0], [0.05, 0.9, 0.05]])
    moves = pairwise_moves(points, np.array([0.1, 0.2]))
    assert moves.shape == (2, 6, 3)
    np.testing.assert_allclose(moves.sum(axis=2), 1.0)
    assert (moves >= 0).all()
    np.testing.assert_allclose(moves[0, 0], [0.4, 0.6, 0.0])  # 0.1 from capability 0 to 1
    np.testing.assert_allclose(moves[1, 0], [0.0, 0.95, 0.05])  # only the 0.05 capability 0 holds moves


def test_v1_oracle_is_at_least_the_continuous_best_fixed():
    from read_env.surrogate.path_dependent_world import PathWorld
    from read_env.utility import power_mean, requirement_from_utility

    world = PathWorld.paper()
    card = TASKS["agentic_tool_use"]
    weights = card.requirement(world.capabilities)
    result = oracle_schedule(world, requirement_from_utility(world.student, weights, card.power), 20_000_000, 20,
                             objective=lambda profile: power_mean(profile, weights, card.power), phase_starts=True)
    assert result.utility >= result.best_fixed_utility
    tokens = np.full(20, 1_000_000)
    assert final_utilities(world, lambda p: power_mean(p, weights, card.power), result.best_fixed_allocation[None, None].repeat(20, axis=1), tokens)[0] == pytest.approx(result.best_fixed_utility)

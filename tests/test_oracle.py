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


def test_a_changing_schedule_beats_the_best_fixed_allocation_of_the_library():
    world = World.paper()
    requirement = TASKS["agentic_tool_use"].requirement(PAPER_CAPABILITIES)
    result = oracle_schedule(world, requirement, 150_000_000, 20)
    assert result.utility > result.best_fixed_utility + 1e-3

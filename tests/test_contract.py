"""The action map, the budget schedule and the reward formula."""

import gymnasium as gym
import numpy as np
import pytest

from read_env import contract
from read_env.tasks import TASKS


def test_logit_map_reaches_near_one_hot_and_uniform():
    peak = np.full(8, -1.0)
    peak[2] = 1.0
    allocation = contract.allocation_from_action(peak, "logits", 0.25, (8,))
    assert allocation[2] > 0.997
    np.testing.assert_allclose(contract.allocation_from_action(np.zeros(8), "logits", 0.25, (8,)), 1 / 8)


def test_plain_softmax_would_not_reach_one_hot():
    peak = np.full(8, -1.0)
    peak[0] = 1.0
    assert contract.allocation_from_action(peak, "logits", 1.0, (8,))[0] < 0.52


def test_simplex_mode_executes_the_allocation():
    env = gym.make("ReAD-Surrogate-v0", action_mode="simplex")
    env.reset(seed=0)
    allocation = np.array([0.1, 0, 0.6, 0, 0, 0, 0.3, 0], dtype=np.float32)
    _, _, _, _, info = env.step(allocation)
    np.testing.assert_allclose(info["allocation"], allocation / allocation.sum(dtype=np.float64))
    assert info["allocation"].sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("budget,steps", [(20_000_000, 20), (150_000_001, 20), (10, 3), (7, 7)])
def test_step_tokens_sum_to_budget(budget, steps):
    tokens = contract.step_tokens(budget, steps)
    assert tokens.sum() == budget and tokens.shape == (steps,) and tokens.min() >= 1


def test_reward_equals_its_components_by_hand():
    env = gym.make("ReAD-Surrogate-v0", task="math_word_problems", beta=0.7, cost_weight=0.2)
    env.reset(seed=4)
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        r = TASKS["math_word_problems"].requirement(env.unwrapped.capabilities)
        ds = info["delta_profile"]
        essential = np.argsort(-r, kind="stable")[:3]
        spill = sum(r[c] * max(0.0, -ds[c]) for c in essential)
        assert info["gain"] == pytest.approx(r @ ds)
        assert info["spillover"] == pytest.approx(spill)
        assert info["cost"] == pytest.approx(1 / 20)
        assert reward == pytest.approx(r @ ds - 0.7 * spill - 0.2 / 20)


def test_essential_mask_takes_top_k():
    mask = contract.essential_mask(np.array([0.1, 0.5, 0.0, 0.4]), 2)
    np.testing.assert_array_equal(mask, [False, True, False, True])

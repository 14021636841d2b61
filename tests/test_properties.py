"""Properties over random configurations and actions (hypothesis)."""

import gymnasium as gym
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from read_env import contract

actions = st.lists(st.floats(-1, 1, width=32), min_size=8, max_size=8)


@settings(max_examples=40, deadline=None)
@given(
    budget=st.integers(1, 10**9),
    num_steps=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    episode=st.lists(actions, min_size=40, max_size=40),
    beta=st.floats(0, 2),
    cost_weight=st.floats(0, 1),
)
def test_budget_never_exceeded_allocations_on_simplex_reward_is_its_components(budget, num_steps, seed, episode, beta, cost_weight):
    num_steps = min(num_steps, budget)
    env = gym.make("ReAD-Surrogate-v0", budget_tokens=budget, num_steps=num_steps, task="random", beta=beta, cost_weight=cost_weight)
    env.reset(seed=seed)
    total = 0
    for logits in episode[:num_steps]:
        observation, reward, terminated, _, info = env.step(np.array(logits, dtype=np.float32))
        total += info["tokens_used"]
        assert total == info["tokens_used_total"] <= budget
        allocation = info["allocation"]
        assert (allocation >= 0).all() and abs(allocation.sum() - 1) < 1e-12
        assert reward == info["gain"] - beta * info["spillover"] - cost_weight * info["cost"]
        assert env.observation_space.contains(observation)
    assert terminated and total == budget


@settings(max_examples=60, deadline=None)
@given(logits=st.lists(st.lists(st.floats(-1, 1), min_size=5, max_size=5), min_size=1, max_size=4), temperature=st.floats(0.01, 5))
def test_logit_map_lands_on_the_simplex(logits, temperature):
    allocation = contract.allocation_from_action(np.array(logits), "logits", temperature, (len(logits), 5))
    assert np.isfinite(allocation).all() and (allocation >= 0).all()
    np.testing.assert_allclose(allocation.sum(axis=-1), 1.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), world_seed=st.integers(0, 10**6))
def test_profiles_stay_in_bounds_on_random_worlds(seed, world_seed):
    env = gym.make("ReAD-Surrogate-v0", world="random", world_seed=world_seed, budget_tokens=400_000_000)
    observation, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        observation, *_ = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        true = env.unwrapped.true_profile
        assert (true >= 0).all() and (true <= env.unwrapped.world.teacher + 1e-12).all()
        assert env.observation_space.contains(observation)

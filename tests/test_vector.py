"""The native vector environment equals N single environments with the same seeds."""

import gymnasium as gym
import numba
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from tests.conftest import assert_same

N = 6


def make_vector(env_id="ReAD-Surrogate-v0", **kwargs):
    return gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"task": "random"}, {"world": "random"}, {"world": "random", "world_seed": 4, "task": "science_qa"}, {"noise": False, "budget_tokens": 150_000_000}],
)
def test_vector_equals_single_environments(env_id, kwargs):
    vector = make_vector(env_id, **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(N)]
    observations, _ = vector.reset(seed=10)
    for index, env in enumerate(singles):
        assert_same({k: v[index] for k, v in observations.items()}, env.reset(seed=10 + index)[0])
    actions = np.random.default_rng(1).uniform(-1, 1, (45, N, 8)).astype(np.float32)
    for batch in actions:
        observations, rewards, terminated, truncated, info = vector.step(batch)
        for index, env in enumerate(singles):
            observation, reward, done, cut, single_info = env.step(batch[index])
            assert reward == rewards[index] and done == terminated[index] and cut == truncated[index]
            for key in ("allocation", "delta_profile", "gain", "spillover", "utility", "tokens_used_total", "step"):
                assert_same(single_info[key], info[key][index])
            last = info["final_obs"] if done else observations
            assert_same(observation, {k: v[index] for k, v in last.items()})
            if done:
                assert info["_final_obs"][index]
                if "final_utility" in single_info:
                    assert single_info["final_utility"] == info["final_info"]["final_utility"][index]
                assert_same(env.reset()[0], {k: v[index] for k, v in observations.items()})


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v1", "ReAD-Surrogate-v2"])
@pytest.mark.parametrize("kwargs", [{}, {"world": "random", "task": "random"}, {"noise": False, "action_mode": "simplex"}])
def test_path_vector_on_two_threads_equals_one_thread(env_id, kwargs):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    one, two = make_vector(env_id, **kwargs), make_vector(env_id, num_threads=2, **kwargs)
    assert_same(one.reset(seed=3)[0], two.reset(seed=3)[0])
    rng = np.random.default_rng(2)
    for _ in range(45):
        actions = rng.dirichlet(np.ones(8), N) if kwargs.get("action_mode") == "simplex" else rng.uniform(-1, 1, (N, 8))
        first, second = one.step(actions.astype(np.float32)), two.step(actions.astype(np.float32))
        for a, b in zip(first, second):
            assert_same(a, b)


@pytest.mark.parametrize("num_threads", [0, 1.5, True, 10_000])
def test_bad_thread_counts_are_refused(num_threads):
    with pytest.raises(ValueError, match="num_threads"):
        make_vector("ReAD-Surrogate-v1", num_threads=num_threads)


def test_vector_declares_same_step_autoreset_and_batched_spaces():
    vector = make_vector()
    assert vector.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert vector.action_space.shape == (N, 8)
    observations, _ = vector.reset(seed=0)
    assert vector.observation_space.contains(observations)


@pytest.mark.parametrize("env_id", ["ReAD-Surrogate-v0", "ReAD-Surrogate-v1", "ReAD-Surrogate-v2"])
def test_vector_rejects_bad_actions_before_changing_state(env_id):
    vector = make_vector(env_id)
    vector.reset(seed=0)
    before = vector.unwrapped.state.copy()
    bad = np.zeros((N, 8), dtype=np.float32)
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        vector.step(bad)
    with pytest.raises(ValueError, match="shape"):
        vector.step(np.zeros((N - 1, 8), dtype=np.float32))
    np.testing.assert_array_equal(before, vector.unwrapped.state)


def test_partial_reset_with_mask():
    vector = make_vector()
    vector.reset(seed=0)
    vector.step(np.zeros((N, 8), dtype=np.float32))
    mask = np.zeros(N, dtype=bool)
    mask[1] = True
    vector.reset(options={"reset_mask": mask})
    assert vector.unwrapped._steps.tolist() == [1, 0, 1, 1, 1, 1]

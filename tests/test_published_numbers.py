"""v0's and v1's numbers stay bit-for-bit what they were when v2 was added (commit 1a730b7): a digest of every
observation, reward and utility reading of fixed rollouts, single and native vector forms.

A digest is exact to the last bit, so it also changes with numpy's or numba's floating-point code on another
platform; on this project's machine (the one the published tables were measured on) it must not change.
"""

import hashlib

import gymnasium as gym
import numpy as np
import pytest

PINNED = {
    ("ReAD-Surrogate-v0", "default", False): "9c44950dc41cd587",
    ("ReAD-Surrogate-v0", "default", True): "78519424b00196ad",
    ("ReAD-Surrogate-v0", "random", False): "a1bbeff8bfce2350",
    ("ReAD-Surrogate-v0", "random", True): "9d6d0831c8a9aa2a",
    ("ReAD-Surrogate-v0", "coding_150M", False): "b5c3781a74e2caf1",
    ("ReAD-Surrogate-v0", "coding_150M", True): "f660eaa5c7e82fc8",
    ("ReAD-Surrogate-v1", "default", False): "5cb3667cdde76ffc",
    ("ReAD-Surrogate-v1", "default", True): "55f9da706617dda7",
    ("ReAD-Surrogate-v1", "random", False): "7c493e5d5ee8b8ad",
    ("ReAD-Surrogate-v1", "random", True): "f4510aa9105592eb",
    ("ReAD-Surrogate-v1", "coding_150M", False): "5affdc6b79e61b32",
    ("ReAD-Surrogate-v1", "coding_150M", True): "2a4eda0c88b98978",
}
SETTINGS = {"default": {}, "random": {"task": "random", "world": "random"}, "coding_150M": {"task": "coding_assistant", "budget_tokens": 150_000_000}}


def digest(env_id: str, kwargs: dict, vector: bool) -> str:
    """sha256 (first 16 hex digits) of a 45-step rollout from seed 5 with fixed random logit actions (3 rows for the vector form)."""
    h = hashlib.sha256()
    actions = np.random.default_rng(0).uniform(-1, 1, (45, 3, 8)).astype(np.float32)
    if vector:
        env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
        env.reset(seed=5)
        for action in actions:
            observation, reward, _, _, info = env.step(action)
            for value in (*observation.values(), reward, info["utility"]):
                h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()[:16]
    env = gym.make(env_id, **kwargs)
    env.reset(seed=5)
    for action in actions[:, 0]:
        observation, reward, terminated, _, info = env.step(action)
        for value in (*observation.values(), np.float64(reward), np.float64(info["utility"])):
            h.update(np.ascontiguousarray(value).tobytes())
        if terminated:
            h.update(np.float64(info.get("final_utility", 0.0)).tobytes())
            env.reset()
    return h.hexdigest()[:16]


@pytest.mark.parametrize("env_id, setting, vector", sorted(PINNED))
def test_v0_and_v1_rollouts_are_unchanged(env_id, setting, vector):
    assert digest(env_id, SETTINGS[setting], vector) == PINNED[(env_id, setting, vector)]

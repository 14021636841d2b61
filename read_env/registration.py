"""Registration of the ReAD environments with Gymnasium (idempotent; runs on ``import read_env``)."""

from __future__ import annotations

import gymnasium as gym

SURROGATE_ID = "ReAD-Surrogate-v0"
SURROGATE_V1_ID = "ReAD-Surrogate-v1"
REAL_ID = "ReAD-v0"
MINI_ID = "ReAD-Mini-v0"
MINI_V1_ID = "ReAD-Mini-v1"


def register_envs() -> None:
    """Register every ReAD environment id once; a second call changes nothing and warns nothing."""
    if SURROGATE_ID not in gym.registry:
        gym.register(
            SURROGATE_ID,
            entry_point="read_env.surrogate.env:SurrogateEnv",
            vector_entry_point="read_env.surrogate.vector_env:SurrogateVectorEnv",
        )
    if SURROGATE_V1_ID not in gym.registry:
        gym.register(
            SURROGATE_V1_ID,
            entry_point="read_env.surrogate.path_env:PathSurrogateEnv",
            vector_entry_point="read_env.surrogate.vector_env:PathSurrogateVectorEnv",
        )
    if REAL_ID not in gym.registry:
        gym.register(REAL_ID, entry_point="read_env.distill.env:DistillationEnv", nondeterministic=True)
    if MINI_ID not in gym.registry:
        gym.register(MINI_ID, entry_point="read_env.mini.env:MiniEnv")  # bit-exact under a seed on CPU (threads fixed)
    if MINI_V1_ID not in gym.registry:
        gym.register(MINI_V1_ID, entry_point="read_env.mini.env:MiniV1Env")  # MiniEnv with V1_DEFAULTS under the caller's options

"""The surrogate's oracle as an agent: the noise-free near-optimal schedule of the environment's world.

Needs the world the environment simulates, so it works on ``ReAD-Surrogate-v0`` with ``world="paper"`` (the
default), calibration data, or ``world="random"`` with a ``world_seed``; otherwise ``ValueError``. The
schedule comes from :func:`read_env.surrogate.oracle.oracle_schedule` (cached per requirement and budget).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from agents.base import Agent, Setting


@lru_cache(maxsize=256)
def _schedule(world_key: str, world_seed: int | None, capabilities: tuple[str, ...], requirement: tuple[float, ...], budget: int, steps: int) -> tuple[np.ndarray, float]:
    from read_env.surrogate.oracle import oracle_schedule
    from read_env.surrogate.world import resolve_world

    world = resolve_world(world_key, capabilities, world_seed, np.random.default_rng(0))
    result = oracle_schedule(world, np.array(requirement), budget, steps)
    return result.schedule, result.utility


def oracle_available(setting: Setting) -> bool:
    world = setting.env_kwargs.get("world", "paper")
    return setting.env_id.startswith("ReAD-Surrogate") and (world == "paper" or (world == "random" and setting.env_kwargs.get("world_seed") is not None))


class OracleAgent(Agent):
    name = "oracle"

    def __init__(self, setting: Setting, seed: int | None = None) -> None:
        super().__init__(setting, seed)
        if not oracle_available(setting):
            raise ValueError(f"the oracle needs a surrogate environment with a known world (world='paper', or 'random' with world_seed); got {setting.env_id} {dict(setting.env_kwargs)}")

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        kwargs = self.setting.env_kwargs
        requirement = tuple(float(x) for x in observation["requirement"] / observation["requirement"].sum())
        self.schedule, self.planned_utility = _schedule(kwargs.get("world", "paper"), kwargs.get("world_seed"), self.setting.capabilities, requirement, self.setting.budget_tokens, self.setting.num_steps)

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.schedule[min(self.t, len(self.schedule) - 1)]

    def report(self) -> dict[str, Any]:
        return {"planned_utility": float(self.planned_utility)}

"""The surrogate's oracle as an agent: the noise-free near-optimal schedule of the environment's world.

Needs the world the environment simulates, so it works on the surrogate ids with ``world="paper"`` (the
default), calibration data, or ``world="random"`` with a ``world_seed``; otherwise ``ValueError``. The
schedule comes from :func:`read_env.surrogate.oracle.oracle_schedule` (cached per task and budget). On
``ReAD-Surrogate-v1`` and ``-v2`` it optimizes the task's true utility ``F_tau`` in the environment's utility
family (a privileged signal: the oracle is the regret reference, not an agent to deploy) and searches
two-phase and greedy schedules too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from read_env.registration import SURROGATE_SPECS
from read_env.surrogate.oracle import OracleResult


@lru_cache(maxsize=256)
def _schedule(
    env_id: str, world_key: str, world_seed: int | None, capabilities: tuple[str, ...], task: str, requirement: tuple[float, ...],
    budget: int, steps: int, family: str,
) -> OracleResult:  # fmt: skip
    from read_env.surrogate.oracle import oracle_schedule
    from read_env.surrogate.path_dependent_env import named_task
    from read_env.surrogate.path_dependent_world import PathWorld
    from read_env.surrogate.world import World, resolve_world
    from read_env.tasks import TASKS

    path = SURROGATE_SPECS[env_id].dynamics == "path_dependent"
    world = resolve_world(world_key, capabilities, world_seed, np.random.default_rng(0), PathWorld if path else World)
    if not path:
        return oracle_schedule(world, np.array(requirement), budget, steps)
    if task not in TASKS:
        raise ValueError(f"the {env_id} oracle needs a named task (its true utility), got {task!r}")
    objective, _ = named_task(world, task, family)
    return oracle_schedule(world, np.array(requirement), budget, steps, objective=objective, phase_starts=True)


def oracle_available(setting: Setting) -> bool:
    world = setting.env_kwargs.get("world", "paper")
    return setting.env_id.startswith("ReAD-Surrogate") and (world == "paper" or (world == "random" and setting.env_kwargs.get("world_seed") is not None))


class OracleAgent(Agent):
    """Plays the oracle schedule; with ``fixed=True`` the best fixed allocation in hindsight (the value of
    adapting is the oracle's utility minus this one's)."""

    name = "oracle"

    def __init__(self, setting: Setting, seed: int | None = None, fixed: bool = False) -> None:
        super().__init__(setting, seed)
        self.fixed = bool(fixed)
        if not oracle_available(setting):
            raise ValueError(f"the oracle needs a surrogate environment with a known world (world='paper', or 'random' with world_seed); got {setting.env_id} {dict(setting.env_kwargs)}")
        self.schedule = np.empty((0, setting.num_capabilities))  # [T, K] (begin plans it)
        self.planned_utility = np.nan

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        kwargs = self.setting.env_kwargs
        family = kwargs.get("utility_family", SURROGATE_SPECS[self.setting.env_id].utility)
        requirement = tuple(float(x) for x in observation["requirement"] / observation["requirement"].sum())
        result = _schedule(
            self.setting.env_id, kwargs.get("world", "paper"), kwargs.get("world_seed"), self.setting.capabilities, str(info.get("task")), requirement,
            self.setting.budget_tokens, self.setting.num_steps, family,
        )  # fmt: skip
        if self.fixed:
            self.schedule, self.planned_utility = result.best_fixed_allocation[None], result.best_fixed_utility
        else:
            self.schedule, self.planned_utility = result.schedule, result.utility

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.schedule[min(self.t, len(self.schedule) - 1)]

    def report(self) -> dict[str, Any]:
        return {"planned_utility": float(self.planned_utility)}

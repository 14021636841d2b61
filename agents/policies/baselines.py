"""Fixed-rule baselines: uniform, task-static (``w = r``), single capability (one-hot), random (Dirichlet)."""

from __future__ import annotations

import numpy as np

from agents.base import Agent, Setting


class UniformAgent(Agent):
    """``w = 1/K`` every step: stratified sampling, the baseline Aioli's study found hard to beat."""

    name = "uniform"

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        k = self.setting.num_capabilities
        return np.full(k, 1.0 / k)


class TaskStaticAgent(Agent):
    """``w = r_tau`` every step (the paper's task-static schedule)."""

    name = "task_static"

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return observation["requirement"] / observation["requirement"].sum()


class SingleCapabilityAgent(Agent):
    """The whole budget on the top required capability (the paper's one-hot setting)."""

    name = "single"

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.eye(self.setting.num_capabilities)[int(np.argmax(observation["requirement"]))]


class RandomAgent(Agent):
    """A fresh ``Dirichlet(alpha)`` allocation every step (alpha = 1: uniform on the simplex)."""

    name = "random"

    def __init__(self, setting: Setting, seed: int | None = None, alpha: float = 1.0) -> None:
        super().__init__(setting, seed)
        self.alpha = float(alpha)

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.rng.dirichlet(np.full(self.setting.num_capabilities, self.alpha))

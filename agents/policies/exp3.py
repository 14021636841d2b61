"""EXP3 over capabilities, as in online data mixing (ODM, Albalak et al. 2023).

ODM treats each domain as an arm of EXP3 and plays the sampling distribution ``p`` as the mixture, rewarding
a domain by its (importance-weighted) training loss. Here the arms are capabilities, the mixture is the
allocation, and the reward of arm i after a step is ``r_i * ds_i / p_i`` (task-weighted measured change of
capability i, importance weighted), divided by a running mean of its absolute value so that ``eta`` is
scale free::

    p = (1 - gamma) * softmax(log_weights) + gamma / K
    log_weights += eta * reward_hat
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting


@dataclass
class Exp3Config:
    gamma: float = 0.1  # uniform exploration mixed into the distribution
    eta: float = 0.3  # learning rate on normalized rewards


class Exp3Agent(Agent):
    name = "exp3"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = Exp3Config(**overrides)
        # episode state (begin sets it)
        self.log_weights = np.zeros(setting.num_capabilities)
        self.reward_scale = 0.0
        self.updates = 0

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.log_weights = np.zeros(self.setting.num_capabilities)
        self.reward_scale = 0.0
        self.updates = 0

    def distribution(self) -> np.ndarray:
        weights = np.exp(self.log_weights - self.log_weights.max())
        k = self.setting.num_capabilities
        return (1.0 - self.config.gamma) * weights / weights.sum() + self.config.gamma / k

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.distribution()

    def update(self, observation, action, reward, next_observation, info) -> None:
        p = np.maximum(action, 1e-6)
        reward_hat = observation["requirement"] * next_observation["last_gain"] / p
        self.updates += 1
        self.reward_scale += (np.abs(reward_hat).mean() - self.reward_scale) / self.updates
        self.log_weights += self.config.eta * reward_hat / max(self.reward_scale, 1e-12)

"""LinUCB (Li et al. 2010) over the bandit's candidate set, with one shared linear reward model.

Features of (context, allocation w): ``phi = [w; w * r; w * s; w * b; 1]`` (4K + 1). Ridge statistics
``A = lambda I + sum phi phi^T``, ``b = sum phi R / scale``; choice ``argmax theta . phi + alpha sqrt(phi^T A^-1 phi)``.
Rewards are divided by a running mean of their absolute value so that ``alpha`` is scale free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.candidates import candidate_set


@dataclass
class LinUCBConfig:
    alpha: float = 1.0
    ridge: float = 1.0
    top_k: int = 3
    max_candidates: int = 50


class LinUCBAgent(Agent):
    name = "linucb"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = LinUCBConfig(**overrides)

    def features(self, observation: dict[str, np.ndarray], allocations: np.ndarray) -> np.ndarray:
        w = allocations
        return np.concatenate([w, w * observation["requirement"], w * observation["profile"], w * observation["budget_left"], np.ones((w.shape[0], 1))], axis=1)

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        d = 4 * self.setting.num_capabilities + 1
        self.gram = self.config.ridge * np.eye(d)
        self.target = np.zeros(d)
        self.raw: list[tuple[np.ndarray, float]] = []

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        previous = observation["last_allocation"] if observation["last_allocation"].sum() > 0 else None
        candidates = candidate_set(observation["requirement"], previous, self.config.top_k, max_candidates=self.config.max_candidates)
        phi = self.features(observation, candidates)
        inverse = np.linalg.inv(self.gram)
        theta = inverse @ self.target
        bonus = np.sqrt(np.einsum("md,de,me->m", phi, inverse, phi))
        return candidates[int(np.argmax(phi @ theta + self.config.alpha * bonus))]

    def update(self, observation, action, reward, next_observation, info) -> None:
        phi = self.features(observation, action[None])[0]
        self.raw.append((phi, reward))
        scale = max(np.mean([abs(r) for _, r in self.raw]), 1e-12)
        self.gram += np.outer(phi, phi)
        self.target = sum(p * (r / scale) for p, r in self.raw)

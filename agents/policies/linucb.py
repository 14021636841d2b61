"""LinUCB (Li et al. 2010) over the bandit's candidate set, with one shared linear reward model.

Features of (context, allocation w): ``phi = [w; w * r; w * s; w * b; 1]`` (4K + 1). Ridge statistics
``A = lambda I + sum phi phi^T``, ``b = sum phi R / scale``; choice ``argmax theta . phi + alpha sqrt(phi^T A^-1 phi)``.
Rewards are divided by a running mean of their absolute value so that ``alpha`` is scale free. With
``profile_fraction > 0`` the profiling runs of :mod:`agents.policies.profiling` (the static candidates, at the scale of
one episode step) enter the statistics before the episode; their tokens are reported as ``profiling_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.policies.candidates import candidate_set
from agents.policies.profiling import DEFAULT_PROFILE_FRACTION, check_profile_fraction, profile


@dataclass
class LinUCBConfig:
    alpha: float = 1.0
    ridge: float = 1.0
    top_k: int = 3
    max_candidates: int = 50
    profile_fraction: float = DEFAULT_PROFILE_FRACTION  # profiling tokens / episode budget; 0: no profiling

    def __post_init__(self) -> None:
        check_profile_fraction(self.profile_fraction)


class LinUCBAgent(Agent):
    name = "linucb"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = LinUCBConfig(**overrides)
        d = 4 * setting.num_capabilities + 1
        # episode state (begin sets it)
        self.gram = self.config.ridge * np.eye(d)
        self.target = np.zeros(d)
        self.raw: list[tuple[np.ndarray, float]] = []
        self.profiling_tokens = 0

    def features(self, observation: dict[str, np.ndarray], allocations: np.ndarray) -> np.ndarray:
        w = allocations
        return np.concatenate([w, w * observation["requirement"], w * observation["profile"], w * observation["budget_left"], np.ones((w.shape[0], 1))], axis=1)

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        d = 4 * self.setting.num_capabilities + 1
        self.gram = self.config.ridge * np.eye(d)
        self.target = np.zeros(d)
        self.raw = []
        self.profiling_tokens = 0
        if self.config.profile_fraction > 0:
            runs = profile(self.setting, observation["requirement"], self.config.profile_fraction, self.rng, self.config.top_k, self.config.max_candidates)
            self.profiling_tokens = sum(run.tokens for run in runs)
            for run in runs:
                self.add(self.features(run.observation, run.allocation[None])[0], run.reward)

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        previous = observation["last_allocation"] if observation["last_allocation"].sum() > 0 else None
        candidates = candidate_set(observation["requirement"], previous, self.config.top_k, max_candidates=self.config.max_candidates)
        phi = self.features(observation, candidates)
        inverse = np.linalg.inv(self.gram)
        theta = inverse @ self.target
        bonus = np.sqrt(np.einsum("md,de,me->m", phi, inverse, phi))
        return candidates[int(np.argmax(phi @ theta + self.config.alpha * bonus))]

    def update(self, observation, action, reward, next_observation, info) -> None:
        self.add(self.features(observation, action[None])[0], reward)

    def add(self, phi: np.ndarray, reward: float) -> None:
        """Add one transition (features [4K + 1], reward) to the ridge statistics."""
        self.raw.append((phi, reward))
        scale = max(np.mean([abs(r) for _, r in self.raw]), 1e-12)
        self.gram += np.outer(phi, phi)
        self.target = sum(p * (r / scale) for p, r in self.raw)

    def report(self) -> dict[str, Any]:
        return {"profiling_tokens": int(self.profiling_tokens)}

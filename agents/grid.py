"""Grid-searched fixed allocation: the best candidate of ``A(tau)`` on a small profiling budget.

Before the episode, each static candidate (:func:`agents.candidates.candidate_set` without a previous
allocation: r, uniform, one-hots and pairs on the top-k, the top-k triple) is profiled in its own short
episode of the same environment id (``profile_fraction * budget_tokens`` tokens shared equally, one step
each, fresh student, seeds from the agent's generator); the candidate with the best proxy reward is played
for the whole episode. The profiling tokens are extra spending, reported as ``profiling_tokens`` (the paper
profiles on a 10% split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.candidates import candidate_set


@dataclass
class GridConfig:
    profile_fraction: float = 0.1  # profiling tokens as a fraction of the episode budget
    top_k: int = 3
    max_candidates: int = 50


class GridSearchAgent(Agent):
    name = "grid"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = GridConfig(**overrides)
        self.profiling_tokens = 0
        self.choice: np.ndarray | None = None

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        from agents.runner import make_env

        requirement = observation["requirement"] / observation["requirement"].sum()
        candidates = candidate_set(requirement, None, self.config.top_k, max_candidates=self.config.max_candidates)
        tokens = max(1, int(self.config.profile_fraction * self.setting.budget_tokens / len(candidates)))
        kwargs = {key: value for key, value in self.setting.env_kwargs.items() if key != "task"}
        env = make_env(self.setting.env_id, "simplex", None, tokens, 1, kwargs)
        scores = []
        try:
            for allocation in candidates:
                env.reset(seed=int(self.rng.integers(2**31)), options={"requirement": requirement})
                _, reward, _, _, _ = env.step(allocation)
                scores.append(float(reward))
        finally:
            env.close()
        self.profiling_tokens = tokens * len(candidates)
        self.choice = candidates[int(np.argmax(scores))]

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.choice

    def report(self) -> dict[str, Any]:
        return {"profiling_tokens": int(self.profiling_tokens)}

"""Grid-searched fixed allocation: the best candidate of ``A(tau)`` on a small profiling budget.

Before the episode, each static candidate (:func:`agents.policies.candidates.candidate_set` without a previous allocation: r, uniform,
one-hots and pairs on the top-k, the top-k triple) is profiled in its own short episode of the same
environment id (:func:`agents.policies.profiling.profile`: ``profile_fraction * budget_tokens`` tokens in all, one step
each, fresh student, seeds from the agent's generator); the candidate with the best step-scale proxy reward
is played for the whole episode. The profiling tokens are extra spending, reported as ``profiling_tokens``
(the paper profiles on a 10% split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.policies.profiling import DEFAULT_PROFILE_FRACTION, check_profile_fraction, profile


@dataclass
class GridConfig:
    profile_fraction: float = DEFAULT_PROFILE_FRACTION  # profiling tokens as a fraction of the episode budget
    top_k: int = 3
    max_candidates: int = 50

    def __post_init__(self) -> None:
        check_profile_fraction(self.profile_fraction, allow_zero=False)


class GridSearchAgent(Agent):
    name = "grid"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = GridConfig(**overrides)
        self.profiling_tokens = 0
        self.choice: np.ndarray | None = None

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        runs = profile(self.setting, observation["requirement"], self.config.profile_fraction, self.rng, self.config.top_k, self.config.max_candidates)
        self.profiling_tokens = sum(run.tokens for run in runs)
        self.choice = runs[int(np.argmax([run.reward for run in runs]))].allocation

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.choice

    def report(self) -> dict[str, Any]:
        return {"profiling_tokens": int(self.profiling_tokens)}

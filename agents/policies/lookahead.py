"""``read_lookahead``: the ReAD bandit with a multi-step target, beyond the paper and its public code.

The paper's bandit regresses the one-step proxy reward ``R_t`` on ``(x_t, w_t)``, so it cannot see what a
step does to later steps (on ``ReAD-Surrogate-v1`` prerequisites make later training cheaper and later
training repairs earlier harm: the oracle's gain over a fixed mixture is all in such delays). This agent
keeps everything of :class:`~agents.policies.bandit.ReadBandit` (context, candidates, ensemble, UCB choice
``argmax mu + kappa * sigma``, warm-up on ``w = r``, calibration across the buffer) and changes the target of
each transition of the episode to the return to the end of the budget, observed up to now and bootstrapped
by the ensemble's value of the current state:

    y_t = sum_{i=t}^{tau-1} R_i + V(x_tau),      V(x) = max over the candidates w of mu(x, w)

after ``tau`` steps (``V = 0`` once the budget is spent; ``V = 0`` while the buffer's weight is below
``warmup_steps``, when the ensemble has not yet seen the episode). ``mu`` is the ensemble mean from the fit
before the step, so ``h_j(x, w)`` estimates the proxy return of playing ``w`` at ``x`` and then the agent's
choices, and its spread ``sigma`` is the uncertainty of that return. The context holds the budget left, so
the same network can value a state early and late in the budget. No profiling split (its one-step runs
have no return) and no buffer across episodes (``persist_buffer`` is refused: the returns belong to one
episode).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Setting
from agents.policies.bandit import BanditConfig, ReadBandit


class ReadLookahead(ReadBandit):
    """The bandit with n-step returns to the end of the budget as targets; see the module docstring."""

    name = "read_lookahead"

    def __init__(self, setting: Setting, seed: int | None = None, config: BanditConfig | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed, config, **{"profile_fraction": 0.0, **overrides})
        if self.config.persist_buffer:
            raise ValueError("read_lookahead's targets are returns within one episode: persist_buffer must be False")
        if self.config.profile_fraction > 0:
            raise ValueError("read_lookahead has no profiling split (a one-step profiling run has no return): profile_fraction must be 0")
        self.bootstrap = 0.0

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().begin(observation, info)
        self.bootstrap = 0.0

    def value(self, observation: dict[str, np.ndarray]) -> float:
        """``V(x)``: the best ensemble-mean return over the candidates of ``observation`` (0 at the end or during warm-up)."""
        if observation["budget_left"][0] <= 0 or sum(self.weights) < self.config.warmup_steps:
            return 0.0
        _, mu, _ = self.score(observation, self.candidates(observation))
        return float(mu.max())

    def update(self, observation: dict[str, np.ndarray], action: np.ndarray, reward: float, next_observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.bootstrap = self.value(next_observation)
        super().update(observation, action, reward, next_observation, info)

    def targets(self) -> np.ndarray:
        """Returns [N]: the calibrated rewards to the end of the buffer, plus the bootstrap value of the current state."""
        rewards = super().targets()
        return np.cumsum(rewards[::-1])[::-1] + self.bootstrap

"""``read_lookahead``: the ReAD bandit with a multi-step target, beyond the paper and its public code.

The paper's bandit regresses the one-step proxy reward ``R_t`` on ``(x_t, w_t)``, so it cannot see what a
step does to later steps (on ``ReAD-Surrogate-v1`` prerequisites make later training cheaper and later
training repairs earlier harm: the oracle's gain over a fixed mixture is all in such delays). This agent
keeps everything of :class:`~agents.policies.bandit.ReadBandit` (context, candidates, ensemble, UCB choice
``argmax mu + kappa * sigma``, warm-up on ``w = r``) and makes ``h_j(x, w)`` an estimate of the return to the
end of the budget: after ``tau`` steps of the episode, transition ``t`` has the n-step target

    y_t = sum_{i=t}^{m-1} R_i + V_m,       m = min(t + n, tau)
    V_m = mu(x_m, w_m)                      for m < tau (the value of the step the agent then took)
    V_tau = max over the candidates w of mu(x_tau, w)     (0 once the budget is spent)

with ``n = lookahead_steps`` and ``mu`` the ensemble mean of the fit before the step (n-step SARSA, bootstrapped
by the agent's own choices; ``V = 0`` while the ensemble has not been fitted past the warm-up). Its spread
``sigma`` is the uncertainty of that return. The context holds the budget left, so one network values a
state early and late in the budget.

``reward_source="proxy"`` (default) keeps the paper's proxy reward (with the bandit's calibration);
``"utility"`` takes as ``R_i`` the change of the dev utility reading (``info["utility"]`` of consecutive
steps, a noisy reading of the task's true utility ``F_tau``), so the returns telescope to the utility gained
to the end of the budget, the quantity the episode is scored on. On six v1 cells (math, math_word_problems,
agentic_tool_use at 20M and 150M, 3 seeds) the proxy did better: 31.03 against 30.87 points (task-static
30.98), noise off 31.01 against 30.33 (``benchmarks/bandit_ceiling.py``). No profiling split (a one-step
profiling run has no return) and no buffer across episodes (the returns belong to one episode).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Setting
from agents.policies.bandit import BanditConfig, ReadBandit

REWARD_SOURCES = ("proxy", "utility")
DEFAULT_LOOKAHEAD_STEPS = 4


class ReadLookahead(ReadBandit):
    """The bandit with n-step returns to the end of the budget as targets; see the module docstring.

    Args: ``reward_source`` ("proxy" or "utility"), ``lookahead_steps`` (n >= 1), and the bandit's options.
    """

    name = "read_lookahead"

    def __init__(self, setting: Setting, seed: int | None = None, config: BanditConfig | None = None, reward_source: str = "proxy",
                 lookahead_steps: int = DEFAULT_LOOKAHEAD_STEPS, **overrides: Any) -> None:
        if reward_source not in REWARD_SOURCES:
            raise ValueError(f"reward_source must be one of {REWARD_SOURCES}, got {reward_source!r}")
        if isinstance(lookahead_steps, bool) or not isinstance(lookahead_steps, int) or lookahead_steps < 1:
            raise ValueError(f"lookahead_steps must be an integer >= 1, got {lookahead_steps!r}")
        self.reward_source, self.lookahead_steps = reward_source, lookahead_steps
        fixed = {"profile_fraction": 0.0, **({"calibrate": False} if reward_source == "utility" else {})}
        super().__init__(setting, seed, config, **{**fixed, **overrides})
        if self.config.persist_buffer:
            raise ValueError("read_lookahead's targets are returns within one episode: persist_buffer must be False")
        if self.config.profile_fraction > 0:
            raise ValueError("read_lookahead has no profiling split (a one-step profiling run has no return): profile_fraction must be 0")
        self.next_observation: dict[str, np.ndarray] | None = None
        self.last_utility = np.nan  # the dev utility reading of the last step (begin sets it)

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().begin(observation, info)
        self.last_utility = float(info.get("utility", np.nan))

    def values(self, next_observation: dict[str, np.ndarray]) -> np.ndarray:
        """Bootstrap values [N + 1] of the current fit: ``mu(x_m, w_m)`` of every buffered transition, then
        ``V(x_tau)`` of the next state (0 once the budget is spent). Zeros until the ensemble has been fitted on
        a buffer of weight ``warmup_steps``."""
        out = np.zeros(len(self.rewards) + 1)
        if sum(self.weights) <= self.config.warmup_steps:  # the fit before this step saw less than the warm-up
            return out
        inputs = np.concatenate([np.array(self.contexts), np.array(self.allocations)], axis=1)
        out[:-1] = self.ensemble.predict(inputs).mean(axis=0) * self.target_std + self.target_mean
        if next_observation["budget_left"][0] > 0:
            _, mu, _ = self.score(next_observation, self.candidates(next_observation))
            out[-1] = mu.max()
        return out

    def update(self, observation: dict[str, np.ndarray], action: np.ndarray, reward: float, next_observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        if self.reward_source == "utility":
            utility = float(info.get("utility", np.nan))
            if not (np.isfinite(utility) and np.isfinite(self.last_utility)):
                raise ValueError("reward_source='utility' needs a dev utility reading in the reset info and every step's info['utility']")
            reward, self.last_utility = utility - self.last_utility, utility
        self.next_observation = next_observation
        super().update(observation, action, reward, next_observation, info)

    def targets(self) -> np.ndarray:
        """n-step returns [N] of the buffer (see the module docstring)."""
        rewards = super().targets()
        n, count = self.lookahead_steps, rewards.shape[0]
        values = self.values(self.next_observation)  # [count + 1]: index m is x_m's value, index count is x_tau's
        sums = np.concatenate([[0.0], np.cumsum(rewards)])
        ends = np.minimum(np.arange(count) + n, count)
        return sums[ends] - sums[:count] + values[ends]

"""An Aioli-style agent (Chen et al. 2024): estimate the transfer matrix, then exponentiated gradient.

Aioli alternates short probe rounds, which estimate how training on each group changes every group's loss
(a transfer matrix ``A``), with exponentiated-gradient updates of the mixture along ``A``. Here:

* probe steps (the first ``probe_steps``): play ``(1 - probe_mix) * p + probe_mix * e_i``, cycling i over the
  capabilities in decreasing requirement;
* after every step, ridge-regress the measured profile changes on the allocations played so far,
  ``ds_t ~ A^T w_t`` (``A`` [K, K], row = trained, column = measured; penalty ``ridge``);
* the gradient of the task gain is ``g = A r``; update ``p <- p * exp(eta * g / max|g|)``, renormalized, and
  mixed with ``floor`` of uniform so that no capability is abandoned;
* with ``profile_fraction > 0``, the profiling runs of :mod:`agents.policies.profiling` (the static candidates of the
  top-k, ``ds`` at the scale of one episode step) enter the regression before the episode, followed by one
  update of ``p``; their tokens are reported as ``profiling_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.policies.profiling import DEFAULT_PROFILE_FRACTION, check_profile_fraction, fit_transfer, profile


@dataclass
class AioliConfig:
    probe_steps: int = 4
    probe_mix: float = 0.5
    eta: float = 0.5
    ridge: float = 1e-2
    floor: float = 0.01
    profile_fraction: float = DEFAULT_PROFILE_FRACTION  # profiling tokens / episode budget; 0: no profiling
    top_k: int = 3  # profiling allocations on the top-k required capabilities

    def __post_init__(self) -> None:
        check_profile_fraction(self.profile_fraction)


class AioliAgent(Agent):
    name = "aioli"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = AioliConfig(**overrides)
        k = setting.num_capabilities
        # episode state (begin sets it)
        self.p = np.full(k, 1.0 / k)
        self.order = np.arange(k)
        self.played: list[np.ndarray] = []
        self.changes: list[np.ndarray] = []
        self.transfer = np.zeros((k, k))
        self.profiling_tokens = 0

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        k = self.setting.num_capabilities
        self.p = np.full(k, 1.0 / k)
        self.order = np.argsort(-observation["requirement"], kind="stable")
        self.played = []
        self.changes = []
        self.transfer = np.zeros((k, k))
        self.profiling_tokens = 0
        if self.config.profile_fraction > 0:
            runs = profile(self.setting, observation["requirement"], self.config.profile_fraction, self.rng, self.config.top_k)
            self.profiling_tokens = sum(run.tokens for run in runs)
            self.played += [run.allocation for run in runs]
            self.changes += [run.delta_profile for run in runs]
            self.fit_and_step(observation["requirement"])

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.t < self.config.probe_steps:
            target = np.eye(self.setting.num_capabilities)[self.order[self.t % len(self.order)]]
            return (1.0 - self.config.probe_mix) * self.p + self.config.probe_mix * target
        return self.p

    def update(self, observation, action, reward, next_observation, info) -> None:
        self.played.append(action)
        self.changes.append(np.asarray(info["delta_profile"], dtype=np.float64))
        self.fit_and_step(observation["requirement"])

    def fit_and_step(self, requirement: np.ndarray) -> None:
        """Ridge-fit the transfer matrix on every (allocation, change) so far, then one exponentiated-gradient step."""
        c, k = self.config, self.setting.num_capabilities
        self.transfer = fit_transfer(np.array(self.played), np.array(self.changes), c.ridge)  # [K trained, K measured]
        gradient = self.transfer @ requirement
        scale = np.abs(gradient).max()
        if scale > 0:
            p = self.p * np.exp(c.eta * gradient / scale)
            self.p = (1.0 - c.floor) * p / p.sum() + c.floor / k

    def report(self) -> dict[str, Any]:
        return {"profiling_tokens": int(self.profiling_tokens)}

"""An Aioli-style agent (Chen et al. 2024): estimate the transfer matrix, then exponentiated gradient.

Aioli alternates short probe rounds, which estimate how training on each group changes every group's loss
(a transfer matrix ``A``), with exponentiated-gradient updates of the mixture along ``A``. Here:

* probe steps (the first ``probe_steps``): play ``(1 - probe_mix) * p + probe_mix * e_i``, cycling i over the
  capabilities in decreasing requirement;
* after every step, ridge-regress the measured profile changes on the allocations played so far,
  ``ds_t ~ A^T w_t`` (``A`` [K, K], row = trained, column = measured; penalty ``ridge``);
* the gradient of the task gain is ``g = A r``; update ``p <- p * exp(eta * g / max|g|)``, renormalized, and
  mixed with ``floor`` of uniform so that no capability is abandoned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting


@dataclass
class AioliConfig:
    probe_steps: int = 4
    probe_mix: float = 0.5
    eta: float = 0.5
    ridge: float = 1e-2
    floor: float = 0.01


class AioliAgent(Agent):
    name = "aioli"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = AioliConfig(**overrides)

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        k = self.setting.num_capabilities
        self.p = np.full(k, 1.0 / k)
        self.order = np.argsort(-observation["requirement"], kind="stable")
        self.played: list[np.ndarray] = []
        self.changes: list[np.ndarray] = []
        self.transfer = np.zeros((k, k))

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.t < self.config.probe_steps:
            target = np.eye(self.setting.num_capabilities)[self.order[self.t % len(self.order)]]
            return (1.0 - self.config.probe_mix) * self.p + self.config.probe_mix * target
        return self.p

    def update(self, observation, action, reward, next_observation, info) -> None:
        c, k = self.config, self.setting.num_capabilities
        self.played.append(action)
        self.changes.append(np.asarray(info["delta_profile"], dtype=np.float64))
        w, ds = np.array(self.played), np.array(self.changes)
        self.transfer = np.linalg.solve(w.T @ w + c.ridge * np.eye(k), w.T @ ds)  # [K trained, K measured]
        gradient = self.transfer @ observation["requirement"]
        scale = np.abs(gradient).max()
        if scale > 0:
            p = self.p * np.exp(c.eta * gradient / scale)
            self.p = (1.0 - c.floor) * p / p.sum() + c.floor / k

"""Online Skill-It (Chen et al. 2023, Algorithm 1; public code ``HazyResearch/skill-it``, ``trainer/mw_trainer.py``).

Skill-It mixes training skills by multiplicative weights on the evaluation skills' losses propagated through a
skills graph ``A`` [K trained, K evaluated] (``A_ij``: how much training skill i lowers skill j's loss). Each
round trains on the mixture, evaluates, and re-weights from the losses of the last ``window`` evaluations.

Mapping onto capability scores. A capability's loss is read from its observed score ``s_j`` in [0, 1] as the
negative log-likelihood of a correct answer, ``L_j = -log s_j`` (``loss="nll"``, in nats like the language
model losses Skill-It's ``eta`` was set for; ``s`` is floored at 1e-3), or as the shortfall ``L_j = 1 - s_j``
(``loss="shortfall"``; in [0, 1], so ``eta = 0.8`` keeps the weights within a factor ``e^(0.8 sum_j m_j)`` of
each other, 2.2 for one target skill). Measured on ReAD-Surrogate-v1, the mixture stays near uniform with
either reading (docs/agents.md). The evaluation skills are the task's: Skill-It's target mask (1 on
target skills) becomes the requirement scaled to a top weight of 1, ``m = r / max(r)``. A round is one
episode step.

Skills graph, estimated on the profiling split (:mod:`agents.policies.profiling`, as Aioli): the transfer
matrix ``T`` [K, K] is ridge-fitted on the profiling runs' (allocation, step-scale change) pairs
(:func:`~agents.policies.profiling.fit_transfer`); an edge is the relative loss decrease it forecasts to first
order, ``-L'(s_j(0)) T_ij / L_j(0)`` (the paper's ``(L_j(f) - L_j(f_i)) / L_j(f)``), kept where positive and
scaled to a largest entry of 1 (the self-edge weight of the paper's synthetic graphs, whose other edges are 0.5).

Equations (``L(u)`` the losses after step u, ``L(0)`` at the start; after step t)::

    A    = max(-L'(s(0)) T / L(0), 0) / max_ij (...)   (columns j; once, after profiling)
    Lbar = mean(L(t - window + 1), ..., L(t))                                  (fewer while t < window - 1)
    p_i  = exp(eta * sum_j A_ij m_j Lbar_j) / sum_k exp(eta * sum_j A_kj m_j Lbar_j)

(the public code's update with a target mask: window mean of the target losses, uniform prior weights). The
first mixture uses ``L(0)``, the start profile (the public code's first round, before any evaluation, uses
``L = 1``). Constants of the public code: ``eta = 0.8`` and ``mw_window = 3`` (its targeted fine-tuning
runs on Natural Instructions; the LEGO and addition runs use ``eta = 0.5``). The ridge penalty, the
profiling share and its top-k are Aioli's here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.policies.profiling import DEFAULT_PROFILE_FRACTION, check_profile_fraction, fit_transfer, profile


MIN_SCORE = 1e-3
LOSSES = {"nll": (lambda s: -np.log(np.maximum(s, MIN_SCORE)), lambda s: -1.0 / np.maximum(s, MIN_SCORE)),
          "shortfall": (lambda s: 1.0 - s, lambda s: -np.ones_like(s))}
"""Loss readings of a score: name -> (``L(s)``, ``dL/ds``), elementwise on arrays [K]."""


@dataclass
class SkillItConfig:
    eta: float = 0.8  # multiplicative-weights learning rate
    window: int = 3  # evaluations averaged in each update
    loss: str = "nll"  # the loss read from a score: "nll" (-log s) or "shortfall" (1 - s)
    ridge: float = 1e-2  # of the transfer fit
    profile_fraction: float = DEFAULT_PROFILE_FRACTION  # profiling tokens / episode budget (> 0: the graph needs it)
    top_k: int = 3  # profiling allocations on the top-k required capabilities

    def __post_init__(self) -> None:
        check_profile_fraction(self.profile_fraction, allow_zero=False)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown Skill-It loss {self.loss!r}; known: {sorted(LOSSES)}")
        if self.eta < 0 or self.window < 1 or self.ridge <= 0:
            raise ValueError(f"Skill-It needs eta >= 0, window >= 1 and ridge > 0, got {self}")


def skills_graph(transfer: np.ndarray, loss_decrease: np.ndarray, start_loss: np.ndarray) -> np.ndarray:
    """The skills graph [K trained, K evaluated]: relative loss decreases, positive part, largest entry 1.

    ``transfer`` [K, K] score changes per unit of allocation, ``loss_decrease`` [K] = ``-dL/ds`` at the start,
    ``start_loss`` [K] > 0; all zeros if no edge is positive.
    """
    edges = np.maximum(transfer * (loss_decrease / start_loss)[None, :], 0.0)
    return edges / edges.max() if edges.max() > 0 else edges


class SkillItAgent(Agent):
    name = "skill_it"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = SkillItConfig(**overrides)
        k = setting.num_capabilities
        # episode state (begin sets it)
        self.target = np.ones(k)  # m [K]
        self.losses: list[np.ndarray] = []  # L(0), L(1), ... [K] each
        self.profiling_tokens = 0
        self.graph = np.zeros((k, k))  # A [K trained, K evaluated]

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        c = self.config
        requirement = observation["requirement"]
        self.target = requirement / requirement.max()
        loss, loss_slope = LOSSES[c.loss]
        self.losses = [loss(observation["profile"])]
        runs = profile(self.setting, requirement, c.profile_fraction, self.rng, c.top_k)
        self.profiling_tokens = sum(run.tokens for run in runs)
        transfer = fit_transfer(np.array([run.allocation for run in runs]), np.array([run.delta_profile for run in runs]), c.ridge)
        self.graph = skills_graph(transfer, -loss_slope(observation["profile"]), np.maximum(self.losses[0], 1e-6))

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        loss = np.mean(self.losses[-self.config.window :], axis=0)
        logits = self.config.eta * self.graph @ (self.target * loss)
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def update(self, observation, action, reward, next_observation, info) -> None:
        self.losses.append(LOSSES[self.config.loss][0](next_observation["profile"]))

    def report(self) -> dict[str, Any]:
        return {"profiling_tokens": int(self.profiling_tokens)}

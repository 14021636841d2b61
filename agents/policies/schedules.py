"""Open-loop schedules drawn broadly, for logging real episodes to fit a world to (``read-env log-episodes``).

Each agent draws its whole schedule [T, K] at ``begin`` from its own generator, so a schedule depends only on
the agent's seed, K and T (not on the task or what the environment shows): the same seed replays the same
schedule on every task and budget. Families (alpha: ``Dirichlet`` concentration):

* ``mixture``: one ``Dirichlet(alpha)`` allocation held for the whole episode (fixed mixtures);
* ``blocks``: the steps cut into 2-4 contiguous blocks (cut points uniform), each one-hot on a capability
  drawn uniformly (one-hot phases, the miniature's forgetting regime);
* ``phases``: 2-3 contiguous phases, each its own ``Dirichlet(alpha)`` allocation (phase orders of mixtures).

The per-step Dirichlet family is ``random`` (:class:`~agents.policies.baselines.RandomAgent`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, Setting

FAMILIES = ("mixture", "blocks", "phases")
BLOCKS = (2, 4)
PHASES = (2, 3)


def draw_schedule(family: str, num_capabilities: int, num_steps: int, rng: np.random.Generator, alpha: float = 0.5) -> np.ndarray:
    """A schedule [num_steps, num_capabilities] of allocations on the simplex, of ``family`` (see the module docstring)."""
    k, t = num_capabilities, num_steps
    if family == "mixture":
        return np.tile(rng.dirichlet(np.full(k, alpha)), (t, 1))
    if family not in ("blocks", "phases"):
        raise ValueError(f"unknown schedule family {family!r}; expected one of {list(FAMILIES)}")
    low, high = BLOCKS if family == "blocks" else PHASES
    count = min(t, int(rng.integers(low, high + 1)))
    cuts = np.sort(rng.choice(np.arange(1, t), size=count - 1, replace=False)) if count > 1 else np.array([], dtype=int)
    pieces = np.eye(k)[rng.integers(k, size=count)] if family == "blocks" else rng.dirichlet(np.full(k, alpha), size=count)
    return pieces[np.searchsorted(cuts, np.arange(t), side="right")]


class ScheduleAgent(Agent):
    """Plays a schedule of ``family`` drawn at ``begin`` (see the module docstring); ``alpha`` > 0."""

    def __init__(self, setting: Setting, seed: int | None = None, family: str = "mixture", alpha: float = 0.5) -> None:
        super().__init__(setting, seed)
        if family not in FAMILIES:
            raise ValueError(f"unknown schedule family {family!r}; expected one of {list(FAMILIES)}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.family, self.alpha = family, float(alpha)
        self.name = f"schedule_{family}"
        self.schedule = np.empty((0, setting.num_capabilities))

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.schedule = draw_schedule(self.family, self.setting.num_capabilities, self.setting.num_steps, self.rng, self.alpha)

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.schedule[min(self.t, len(self.schedule) - 1)]

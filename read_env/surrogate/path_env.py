"""``ReAD-Surrogate-v1``: the surrogate with path-dependent dynamics and nonlinear task utilities.

Everything of ``ReAD-Surrogate-v0`` (:class:`~read_env.surrogate.env.SurrogateEnv`) holds, except:

* **Dynamics**: a :class:`~read_env.surrogate.path_world.PathWorld`: prerequisites speed up learning and
  interference is a debt that later training of the harmed capability repairs, so the order of steps
  matters (equations in :mod:`read_env.surrogate.path_world`). One-hot runs still reproduce the paper's
  transfer matrices exactly.
* **Utility**: each task's utility is the weighted power mean ``F_tau(s)`` of its card (``weights``,
  ``power``; :mod:`read_env.utility`), and the observed requirement is the paper's local linearization at
  the start profile, ``r = Proj_simplex([grad F_tau(s_0)]_+)``, computed once per episode. ``task="random"``
  draws the weights from ``Dirichlet(0.5)`` and the power uniformly from ``RANDOM_POWERS``; a custom
  ``requirement`` is a linear utility with those weights.
* **No privileged signal**: ``info["utility"]`` is a noisy dev-split reading, ``F(s) + N(0,
  utility_noise^2)`` clipped to [0, 1] (noise off with ``noise=False``); the noise-free ``final_utility``
  and ``initial_utility`` appear only in the info of the last step, the final report.
* ``world="random"`` (without ``world_seed``) draws a new world, prerequisites and repair included, every
  episode, so no static rule can be tuned to one world.

Per-episode draws from the episode's generator, in order: the random task's weights (by the contract),
the random task's power, the random world, the training and probe noise, the utility-reading noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from read_env.surrogate.env import SurrogateEnv
from read_env.surrogate.path_world import PathWorld
from read_env.tasks import RANDOM_TASK, TASKS
from read_env.utility import power_mean, requirement_from_utility

DEFAULT_UTILITY_NOISE = 0.005
"""Standard deviation of a dev-split utility reading (0.5 points, as a probe reading)."""
RANDOM_POWERS = (1.0, 0.5, 0.0, -1.0)


class PathSurrogateEnv(SurrogateEnv):
    """``ReAD-Surrogate-v1`` (see the module docstring).

    Args:
        utility_noise: standard deviation of ``info["utility"]`` readings, in utility units (>= 0).
        **kwargs: the arguments of :class:`~read_env.surrogate.env.SurrogateEnv` (``world``, ``world_seed``,
            ``noise``, ``capabilities``, ``task``, ``budget_tokens``, ``num_steps``, ``action_mode``, ...);
            calibration data for ``world`` may add ``prerequisites``, ``repair_tokens``, ``readiness_tokens``.
    """

    world_class = PathWorld
    REPORTS_FINAL_UTILITY = True

    def __init__(self, utility_noise: float = DEFAULT_UTILITY_NOISE, **kwargs: Any) -> None:
        if isinstance(utility_noise, bool) or not isinstance(utility_noise, (int, float)) or not (np.isfinite(utility_noise) and utility_noise >= 0):
            raise ValueError(f"utility_noise must be a finite number >= 0, got {utility_noise!r}")
        self.utility_noise = float(utility_noise)
        super().__init__(**kwargs)

    task_utility = staticmethod(power_mean)
    observed_requirement = staticmethod(requirement_from_utility)

    def draw_power(self, rng: np.random.Generator, task_name: str) -> float:
        """The card's power for a named task, 1 for a custom requirement, a draw from ``RANDOM_POWERS`` for a random task."""
        if task_name == RANDOM_TASK:
            return float(RANDOM_POWERS[int(rng.integers(len(RANDOM_POWERS)))])
        return float(TASKS[task_name].power) if task_name in TASKS else 1.0

    def draw_utility_readings(self, rng: np.random.Generator) -> np.ndarray | None:
        """Standard normal noise [num_steps + 1] of the utility readings (``None`` with noise off)."""
        return rng.standard_normal(self.num_steps + 1) if self.noise else None

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        self.utility_weights = self.requirement
        self.utility_power = self.draw_power(self.np_random, self.task_name)
        self._utility_readings = None
        profile, _ = super()._begin(prepared)
        self._utility_readings = self.draw_utility_readings(self.np_random)
        self._set_task(self.task_name, self.observed_requirement(self.world.student, self.utility_weights, self.utility_power))
        return profile, self._read_utility(0)

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        profile, utility, extra = super()._distill(allocation, tokens)
        if self._step + 1 == self.num_steps:
            extra["final_utility"] = self._true_utility(self.true_profile)
            extra["initial_utility"] = self._true_utility(self.world.student)
        return profile, utility, extra

    def _true_utility(self, profile: np.ndarray) -> float:
        return float(self.task_utility(profile, self.utility_weights, self.utility_power))

    def _read_utility(self, reading: int) -> float:
        utility = self._true_utility(self.true_profile)
        if self._utility_readings is None:
            return utility
        return float(np.clip(utility + self.utility_noise * self._utility_readings[reading], 0.0, 1.0))

    def utility_spec(self) -> Mapping[str, Any]:
        """The episode's utility: ``weights`` [K] and ``power`` (for oracles and diagnostics, not for agents)."""
        return {"weights": self.utility_weights.copy(), "power": self.utility_power}

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

from typing import Any, SupportsFloat

import numpy as np

from read_env import contract
from read_env.surrogate import path_kernel
from read_env.surrogate.env import SurrogateEnv
from read_env.surrogate.path_world import PathWorld
from read_env.tasks import RANDOM_TASK, TASKS
from read_env.utility import power_mean, power_mean_row, requirement_from_utility

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
        self._kernel_tokens = self.step_tokens.astype(np.float64)
        self._step_index = np.arange(self.num_steps)[:, None]  # [num_steps, 1]: env_step's steps for one row

    task_utility = staticmethod(power_mean)
    observed_requirement = staticmethod(requirement_from_utility)

    def draw_power(self, rng: np.random.Generator | None, task_name: str) -> float:
        """The card's power for a named task, 1 for a custom requirement (``rng`` unused, may be ``None``), a draw
        from ``RANDOM_POWERS`` for a random task."""
        if task_name == RANDOM_TASK:
            return float(RANDOM_POWERS[int(rng.integers(len(RANDOM_POWERS)))])
        return float(TASKS[task_name].power) if task_name in TASKS else 1.0

    def draw_utility_readings(self, rng: np.random.Generator, out: np.ndarray | None = None) -> np.ndarray | None:
        """Standard normal noise [num_steps + 1] of the utility readings, into ``out`` when given (``None`` with noise off)."""
        return rng.standard_normal(self.num_steps + 1, out=out) if self.noise else None

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        self.utility_weights = np.ascontiguousarray(self.requirement, dtype=np.float64)
        self.utility_power = self.draw_power(self.np_random, self.task_name)
        self._start_episode(prepared)
        self._utility_readings = self.draw_utility_readings(self.np_random)
        self._set_task(self.task_name, self.observed_requirement(self.world.student, self.utility_weights, self.utility_power))
        # the episode as env_step's rows [1, ...]: its draws (none: noise off) and its task
        noise, readings = self._noise, self._utility_readings
        self._draw_rows = (np.empty((1, 0, len(self.capabilities))) if noise is None else noise[None], np.empty((1, 0)) if readings is None else readings[None])
        self._task_rows = (self.requirement[None], self._essential_weight[None], self.utility_weights[None], np.array([self.utility_power]))
        return self._read_profile()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        """The contract's step (:class:`~read_env.allocation_env.AllocationEnv`), computed by one call of
        :func:`~read_env.surrogate.path_kernel.env_step`."""
        self._check_running()
        t = self._step
        tokens = int(self.step_tokens[t])
        action_rows = np.ascontiguousarray(contract.action_array(action, self._action_shape))[None]
        out = path_kernel.env_step(
            action_rows, self.action_mode == "simplex", self.logit_temperature, self.state[None], self._step_index[t], self._kernel_tokens,
            self.budget_tokens, *self._draw_rows, self.utility_noise, self.profile[None], *self._task_rows, self.beta, self.cost_weight,
            *self.world._kernel_parameters,
        )  # fmt: skip
        if not len(out):
            self.reject_action(action)
        allocation, profile, delta, self.true_profile, self.state, utility, reading, reward, gain, spill = path_kernel.split_step(out[0])
        extra = {}
        if t + 1 == self.num_steps:
            extra = {"final_utility": float(utility), "initial_utility": self._true_utility(self.world.student)}
        return self._record_step(allocation, tokens, profile, delta, float(reading), (reward, gain, spill, tokens / self.budget_tokens), extra)

    def reject_action(self, action: np.ndarray) -> None:
        """Raise the contract's error for ``action`` [..., K], one that :func:`path_kernel.env_step` rejected."""
        contract.allocation_from_action(action, self.action_mode, self.logit_temperature, np.shape(action))  # raises, naming the problem
        raise ValueError(f"action {np.asarray(action).tolist()} is not a valid {self.action_mode} action")

    def _true_utility(self, profile: np.ndarray) -> float:
        return power_mean_row(profile, self.utility_weights, self.utility_power)  # as env_step computes it

    def _read_utility(self, reading: int) -> float:
        utility = self._true_utility(self.true_profile)
        if self._utility_readings is None:
            return utility
        return min(max(utility + self.utility_noise * float(self._utility_readings[reading]), 0.0), 1.0)  # as env_step reads it

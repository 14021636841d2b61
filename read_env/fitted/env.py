"""``ReAD-Fitted-v0`` and ``-v1``: the allocation contract on a world fitted to logged real episodes (:mod:`read_env.fitted.world`).

The two ids differ only by their default ``world``: v0's is ``"default"`` (fitted to a small ReAD-Mini-v0 data
set), v1's ``"mini_v1"`` (fitted to ReAD-Mini-v1's broad data set, at 8 steps of up to 80k tokens).

Everything of ``ReAD-Surrogate-v1`` (:class:`~read_env.surrogate.path_dependent_env.PathSurrogateEnv`) holds (noisy
probe and dev-split utility readings, the noise-free ``final_utility`` in the last step's info, one compiled
call per step), except:

* **Dynamics**: the fitted world's (recency model or network ensemble), loaded from ``world``: a file written
  by ``read-env fit-world --model ...``, its data, the name of a world shipped with the package
  (:data:`~read_env.fitted.world.SHIPPED_WORLDS`), or a list of those: a prior over worlds fitted to several
  students (:meth:`~read_env.fitted.world.FittedWorld.combine`; shipped: ``"mini_v1_students"``). Probe noise
  is the world's ``probe_noise`` (the fitting data's mean binomial standard error); there is no training noise
  (the ensemble's members carry the model's uncertainty).
* **Ensemble**: each episode draws one member uniformly, after v1's draws, so a policy cannot exploit one
  member's errors, and starts from that member's start profile (one fitted world's members share theirs; a
  prior's start from their own students'). With ``uncertainty=True`` each step's info holds ``uncertainty`` [K], the standard
  deviation over all members of the next true profile from the episode's state (zeros for one member), and
  ``uncertainty_penalty=lambda`` subtracts ``lambda`` times its mean over capabilities from every reward (MOPO's
  penalty against exploiting the model; the info's ``gain`` and ``spillover`` are unchanged).
* **Utility**: linear by default, ``r . s`` (the miniature's ``r . accuracy``), so the observed requirement is ``r``;
  ``utility_family`` takes another of :mod:`read_env.utility` (``"scores"``, ``"shortfall"``: the episode world's teacher).
* **Defaults**: ``budget_tokens`` is the world's token scale (the largest budget it was fitted on) and
  ``num_steps`` the steps of its fitting episodes; other budgets extrapolate the fitted dynamics.

``gym.make_vec("ReAD-Fitted-v1", num_envs=N, vectorization_mode="vector_entry_point")`` is the native vector
form: row ``i`` seeded ``seed + i`` is bit-identical to a single environment reset with that seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from read_env.fitted import kernel
from read_env.fitted.world import FittedWorld
from read_env.surrogate.path_dependent_env import PathSurrogateEnv
from read_env.surrogate.vector_env import PathSurrogateVectorEnv
from read_env.utility import LINEAR


class FittedEnv(PathSurrogateEnv):
    """``ReAD-Fitted-v0`` and ``-v1`` (see the module docstring).

    Args:
        world: a shipped world's name (``"default"``, ``"mini_v1"``, ``"mini_v1_students"``), the path of a fitted
            world ``.json`` file, its data, or a list of those (a prior over worlds).
        uncertainty: add ``info["uncertainty"]`` [K] (the members' spread) to every step.
        uncertainty_penalty: ``lambda`` >= 0, the reward's penalty per unit of mean spread (0: none).
        **kwargs: :class:`~read_env.surrogate.path_dependent_env.PathSurrogateEnv`'s (``noise``, ``utility_noise``,
            ``task``, ``budget_tokens``, ``num_steps``, ``action_mode``, ...; no ``world_seed``).
    """

    world_class = FittedWorld

    def __init__(self, world: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] = "default", uncertainty: bool = False, uncertainty_penalty: float = 0.0,
                 **kwargs: Any) -> None:
        penalty = uncertainty_penalty
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not (np.isfinite(penalty) and penalty >= 0):
            raise ValueError(f"uncertainty_penalty must be a finite number >= 0, got {uncertainty_penalty!r}")
        if kwargs.get("world_seed") is not None:
            raise ValueError("a fitted world is not drawn: world_seed is not supported")
        loaded = FittedWorld.resolve(world)
        kwargs.setdefault("budget_tokens", int(loaded.token_scale))
        kwargs.setdefault("num_steps", int(loaded.fit.get("num_steps", 20)))
        kwargs.setdefault("utility_family", LINEAR)
        self.uncertainty, self.uncertainty_penalty = bool(uncertainty), float(uncertainty_penalty)
        super().__init__(world=loaded, **kwargs)
        spent = np.cumsum(self.step_tokens) - self.step_tokens
        self._progress = spent / self.budget_tokens  # [T]: the share of the budget spent before each step
        self.uncertainty_width = len(self.capabilities) if self.uncertainty else 0
        self.member = 0

    def _reset_options(self) -> tuple[str, ...]:
        return tuple(option for option in super()._reset_options() if option not in ("world", "world_seed"))

    @staticmethod
    def draw_member(rng: np.random.Generator, members: int) -> int:
        """The episode's ensemble member, uniform over ``members``."""
        return int(rng.integers(members))

    def _place_start(self) -> None:
        """Draw the episode's member (the episode's last draw) and start from its start profile."""
        self.member = self.draw_member(self.np_random, self.world.members)
        world = self.world
        self.state = world.initial_state(member=self.member)
        self.true_profile = world.profile(self.state)

    compiled_step = staticmethod(kernel.env_step)

    def kernel_world(self) -> kernel.FittedParameters:
        """The world group of :attr:`compiled_step` for this episode (its member)."""
        return self.fitted_parameters(self.world, np.array([self.member]))

    def fitted_parameters(self, world: FittedWorld, member: np.ndarray) -> kernel.FittedParameters:
        """The world group of :attr:`compiled_step` in ``world`` for rows in members ``member`` [N]."""
        return kernel.FittedParameters(
            world.kind_index, world.hidden, world.theta, member, self._progress, world.token_scale, world.probe_noise, self.uncertainty,
            self.uncertainty_penalty,
        )  # fmt: skip

    def extra_info(self, uncertainty: np.ndarray) -> dict[str, Any]:
        """``uncertainty`` [..., K] (the members' spread of the step) with ``uncertainty=True``."""
        return {"uncertainty": uncertainty} if self.uncertainty else {}

    def _start_profile(self) -> np.ndarray:
        return self.world.starts[self.member]


class FittedVectorEnv(PathSurrogateVectorEnv):
    """The native vector form of ``ReAD-Fitted-v0``/``-v1``: N :class:`FittedEnv` episodes in lockstep, one kernel call
    per step in the calling thread; ``info["uncertainty"]`` [N, K] with ``uncertainty``."""

    env_class = FittedEnv

    def __init__(self, num_envs: int = 1, num_threads: int = 1, **kwargs: Any) -> None:
        if num_threads != 1:
            raise ValueError(f"the fitted environment's vector form steps in the calling thread: num_threads must be 1, got {num_threads!r}")
        super().__init__(num_envs, **kwargs)
        self.member = np.zeros(self.num_envs, dtype=np.int64)

    def _start_states(self, rows: np.ndarray) -> np.ndarray:
        """Draw each row's member (as single environments do, last) and return their start states [len(rows), 2K]."""
        for row in rows:
            self.member[row] = self.template.draw_member(self._rngs[row], self.world.members)
        return self.world.initial_state((len(rows),), self.member[rows])

    def _start_utility(self) -> np.ndarray:
        """True utility [N] of each row's start profile (its member's)."""
        world = self.world
        return self.template.utility_family.value(world.starts[self.member], self.utility_weights, self.utility_power, world.teacher)

    def kernel_world(self) -> kernel.FittedParameters:
        """The rows' world group of the template's compiled step (each row's member)."""
        return self.template.fitted_parameters(self.world, self.member)

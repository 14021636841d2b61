"""``ReAD-Surrogate-v1`` and ``-v2``: the surrogate with path-dependent dynamics and nonlinear task utilities.

Everything of ``ReAD-Surrogate-v0`` (:class:`~read_env.surrogate.env.SurrogateEnv`) holds, except:

* **Dynamics**: a :class:`~read_env.surrogate.path_dependent_world.PathWorld`: prerequisites speed up learning and
  interference is a debt that later training of the harmed capability repairs, so the order of steps
  matters (equations in :mod:`read_env.surrogate.path_dependent_world`). One-hot runs still reproduce the paper's
  transfer matrices exactly.
* **Utility**: each task's utility ``F_tau(s)`` is of a family (``utility_family``, :mod:`read_env.utility`)
  with the card's ``weights`` and a power, and the observed requirement is the paper's local linearization
  at the start profile, ``r = Proj_simplex([grad F_tau(s_0)]_+)``, computed once per episode. ``"scores"``
  (v1): the weighted power mean of the scores, the card's ``power``. ``"shortfall"`` (v2): ``a . t - M_q(t -
  s; a)`` with ``t`` the episode world's teacher, ``q = MULTI_TASK_SHORTFALL_POWER`` for a multi-capability
  task and 1 (linear) for a single-capability one. ``task="random"`` draws the weights from
  ``Dirichlet(0.5)`` and the power uniformly from the family's ``random_powers``; a custom ``requirement`` is
  a linear utility with those weights.
* **No privileged signal**: ``info["utility"]`` is a noisy dev-split reading, ``F(s) + N(0,
  utility_noise^2)`` clipped to [0, 1] (noise off with ``noise=False``); the noise-free ``final_utility``
  and ``initial_utility`` appear only in the info of the last step, the final report.
* **Probe noise** (``probe_bias``, v2: 0.5; v1: 0; the probe part, :mod:`read_env.surrogate.probe`): a probe reading of capability ``c`` after step ``t`` is
  ``clip(s_c + probe_noise * (sqrt(rho) * b_c + sqrt(1 - rho) * xi_tc), 0, 1)``: ``b`` [K] standard normal,
  drawn once per episode, is the bias of the fixed probe suite (a fixed set of items scores a model above or
  below the capability's population score, and keeps doing so while the model changes slowly); ``xi`` is
  fresh every reading. The total variance is v1's (``probe_noise^2``) for any share ``rho``; a measured
  change ``ds`` carries only the fresh part (``2 (1 - rho) probe_noise^2``), the level carries both.
  The bias is drawn per episode, not per world: the paper's dev suite is fixed within a run, and each seed
  of an experiment is then a replicate over suites as well as over training noise, so averages over seeds
  do not hinge on one suite's luck, and an agent trained over episodes cannot learn one suite's bias as if it
  were the world. (``ReAD-v0`` probes with one fixed suite; a fixed bias across episodes is the limit of
  many episodes on one suite, not modelled here.)
* ``world="random"`` (without ``world_seed``) draws a new world, prerequisites and repair included, every
  episode, so no static rule can be tuned to one world.

Per-episode draws from the episode's generator, in order: the random task's weights (by the contract),
the random task's power, the random world, the training and probe noise, the utility-reading noise, the
probe bias (only when ``probe_bias > 0``, so v1's draws are unchanged).

``ReAD-Surrogate-v2`` is this class with ``utility_family="shortfall"`` and ``probe_bias=0.5`` (its
registered options, :data:`read_env.registration.V2_OPTIONS`); ``ReAD-Surrogate-v1`` with ``"scores"`` and 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from read_env import contract
from read_env.allocation_env import Transition
from read_env.step_kernel import Contract, Episodes, StepOutputs, new_block, outputs_of
from read_env.surrogate import path_dependent_kernel
from read_env.surrogate.env import SurrogateEnv
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.surrogate.probe import Probe
from read_env.tasks import TASKS
from read_env.utility import SCORES, Utility, resolve_utility, utility_row

DEFAULT_UTILITY_NOISE = 0.005
"""Standard deviation of a dev-split utility reading (0.5 points, as a probe reading)."""


class PathSurrogateEnv(SurrogateEnv):
    """``ReAD-Surrogate-v1`` and ``-v2`` (see the module docstring).

    Args:
        utility_noise: standard deviation of ``info["utility"]`` readings, in utility units (>= 0).
        utility_family: a :class:`~read_env.utility.Utility` or its name: ``"scores"`` (v1), ``"shortfall"`` (v2) or
            ``"linear"``, see :mod:`read_env.utility`.
        probe_bias: share of the probe noise variance that is a per-episode bias of each capability, in [0, 1].
        **kwargs: the arguments of :class:`~read_env.surrogate.env.SurrogateEnv` (``world``, ``world_seed``,
            ``noise``, ``capabilities``, ``task``, ``budget_tokens``, ``num_steps``, ``action_mode``, ...);
            calibration data for ``world`` may add ``prerequisites``, ``repair_tokens``, ``readiness_tokens``.
    """

    world_class = PathWorld
    REPORTS_FINAL_UTILITY = True

    def __init__(
        self, utility_noise: float = DEFAULT_UTILITY_NOISE, utility_family: str | Utility = SCORES, probe_bias: float = 0.0, **kwargs: Any
    ) -> None:
        check_probe_options(utility_noise, probe_bias)
        self.utility_family = resolve_utility(utility_family)
        self.probe = Probe(bool(kwargs.get("noise", True)), float(probe_bias), float(utility_noise))
        super().__init__(**kwargs)
        self.kernel_contract = Contract(
            self.action_mode == "simplex", self.logit_temperature, self.step_tokens.astype(np.float64), float(self.budget_tokens),
            self.probe.utility_noise, self.beta, self.cost_weight,
        )  # fmt: skip
        """The constants of :attr:`compiled_step`."""
        self._step_index = np.arange(self.num_steps)[:, None]  # [num_steps, 1]: env_step's steps for one row

    @property
    def utility_noise(self) -> float:
        """The standard deviation of a dev-split utility reading (:class:`~read_env.surrogate.probe.Probe`)."""
        return self.probe.utility_noise

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        """:class:`SurrogateEnv`'s episode start, then the episode as :attr:`compiled_step`'s groups and output block."""
        start = super()._begin(prepared)
        # the episode as compiled_step's rows [1, ...] (its draws, none with noise off, and its task), and its outputs [T, ...]
        noise, readings = self._noise, self._utility_readings
        episodes = Episodes(
            np.empty((1, 0, len(self.capabilities))) if noise is None else noise[None],
            np.empty((1, 0)) if readings is None else readings[None],
            self.requirement[None], self._essential_weight[None], self.utility_weights[None], np.array([self.utility_power]),
            self._utility_teacher[None],
        )  # fmt: skip
        self._kernel_groups = (tuple(episodes), tuple(self.kernel_contract), tuple(self.kernel_world()))
        self._block = self.output_block(self.num_steps)
        self._name_block()
        return start

    def _transition(self, action: np.ndarray, tokens: int) -> Transition:
        """The action map, dynamics, readings and reward of step ``t`` in one call of :attr:`compiled_step`, written
        to row ``t`` of the episode's outputs (what a step returns stays as it is until the next reset)."""
        t = self._step
        action_rows = np.ascontiguousarray(contract.action_array(action, self._action_shape))[None]
        accepted = self.compiled_step(
            action_rows, self.state[None], self._step_index[t], self.profile[None], *self._kernel_groups, self._block, t
        )  # fmt: skip
        if not accepted:
            self.reject_action(action)
        out = self._outputs
        self.true_profile, self.state = out.true_profile[t], out.state[t]
        extra = self.extra_info(out.uncertainty[t]) if self.uncertainty_width else {}
        if t + 1 == self.num_steps:
            extra.update(final_utility=float(out.utility[t]), initial_utility=self._true_utility(self._start_profile()))
        feedback = (out.reward[t], out.gain[t], out.spillover[t], tokens / self.budget_tokens)
        return Transition(out.allocation[t], out.profile[t], float(out.reading[t]), extra, out.delta[t], feedback)

    def _name_block(self) -> None:
        """Name the columns of the episode's output block [T, W] (:class:`~read_env.step_kernel.StepOutputs` of views)."""
        k = len(self.capabilities)
        self._outputs: StepOutputs = outputs_of.py_func(self._block, k, self.world_class.STATE_BLOCKS * k)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle (or deep-copy), naming the episode's output block anew: a copy of views does not share their block."""
        self.__dict__.update(state)
        if "_block" in state:
            self._name_block()

    compiled_step = staticmethod(path_dependent_kernel.env_step)
    """The compiled step of rows (:mod:`read_env.step_kernel`'s shape)."""

    uncertainty_width = 0
    """The width U of :attr:`compiled_step`'s uncertainty columns (none here)."""

    def output_block(self, rows: int) -> np.ndarray:
        """An output block of :attr:`compiled_step` with ``rows`` rows (:func:`read_env.step_kernel.new_block`)."""
        k = len(self.capabilities)
        return new_block(rows, k, self.world_class.STATE_BLOCKS * k, self.uncertainty_width)

    def kernel_world(self) -> tuple[Any, ...]:
        """The world group of :attr:`compiled_step` for this episode (a named tuple of the kernel's module)."""
        return self.world._kernel_parameters

    def extra_info(self, uncertainty: np.ndarray) -> dict[str, Any]:
        """Info entries of a step's uncertainty columns [..., U] (none here)."""
        return {}

    def _start_profile(self) -> np.ndarray:
        """The true profile [K] the episode started from."""
        return self.world.student

    def reject_action(self, action: np.ndarray) -> None:
        """Raise the contract's error for ``action`` [..., K], one that :attr:`compiled_step` rejected."""
        contract.allocation_from_action(action, self.action_mode, self.logit_temperature, np.shape(action))  # raises, naming the problem
        raise ValueError(f"action {np.asarray(action).tolist()} is not a valid {self.action_mode} action")


def check_probe_options(utility_noise: object, probe_bias: object) -> None:
    """``ValueError`` naming the problem unless ``utility_noise`` is a finite number >= 0 and ``probe_bias`` a share in [0, 1]."""
    if isinstance(utility_noise, bool) or not isinstance(utility_noise, (int, float)) or not (np.isfinite(utility_noise) and utility_noise >= 0):
        raise ValueError(f"utility_noise must be a finite number >= 0, got {utility_noise!r}")
    if isinstance(probe_bias, bool) or not isinstance(probe_bias, (int, float)) or not 0 <= probe_bias <= 1:
        raise ValueError(f"probe_bias must be a share in [0, 1], got {probe_bias!r}")


def named_task(world: PathWorld, task_name: str, family: str | Utility) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """A named task in ``world`` and ``family``: (its true utility, a function of profiles [..., K] -> [...]; the
    requirement [K] the environment observes), as :class:`PathSurrogateEnv` computes them."""
    if task_name not in TASKS:
        raise ValueError(f"unknown task {task_name!r}; known: {list(TASKS)}")
    utility = resolve_utility(family)
    weights, power = TASKS[task_name].requirement(world.capabilities), utility.card_power(task_name)
    return lambda profile: utility.value(profile, weights, power, world.teacher), utility.requirement(world.student, weights, power, world.teacher)

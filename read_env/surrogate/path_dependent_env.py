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

from read_env.surrogate.env import SurrogateEnv
from read_env.surrogate.path_dependent_world import PathWorld
from read_env.tasks import TASKS
from read_env.utility import SCORES, Utility, resolve_utility

DEFAULT_UTILITY_NOISE = 0.005
"""Standard deviation of a dev-split utility reading (0.5 points, as a probe reading)."""


class PathSurrogateEnv(SurrogateEnv):
    """``ReAD-Surrogate-v1`` and ``-v2`` (see the module docstring): :class:`~read_env.surrogate.env.SurrogateEnv` with
    the path-dependent world and v1's defaults.

    Args:
        utility_noise: standard deviation of ``info["utility"]`` readings, in utility units (>= 0; ``None``: the true utility).
        utility_family: a :class:`~read_env.utility.Utility` or its name: ``"scores"`` (v1), ``"shortfall"`` (v2) or
            ``"linear"``, see :mod:`read_env.utility`.
        probe_bias: share of the probe noise variance that is a per-episode bias of each capability, in [0, 1].
        **kwargs: the arguments of :class:`~read_env.surrogate.env.SurrogateEnv` (``world``, ``world_seed``,
            ``noise``, ``capabilities``, ``task``, ``budget_tokens``, ``num_steps``, ``action_mode``, ...);
            calibration data for ``world`` may add ``prerequisites``, ``repair_tokens``, ``readiness_tokens``.
    """

    world_class = PathWorld

    def __init__(
        self,
        utility_noise: float | None = DEFAULT_UTILITY_NOISE,
        utility_family: str | Utility = SCORES,
        probe_bias: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(utility_family=utility_family, utility_noise=utility_noise, probe_bias=probe_bias, **kwargs)


def named_task(world: PathWorld, task_name: str, family: str | Utility) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """A named task in ``world`` and ``family``: (its true utility, a function of profiles [..., K] -> [...]; the
    requirement [K] the environment observes), as :class:`PathSurrogateEnv` computes them."""
    if task_name not in TASKS:
        raise ValueError(f"unknown task {task_name!r}; known: {list(TASKS)}")
    utility = resolve_utility(family)
    weights, power = TASKS[task_name].requirement(world.capabilities), utility.card_power(task_name)
    requirement = utility.requirement(world.student, weights, power, world.teacher)
    return lambda profile: utility.value(profile, weights, power, world.teacher), requirement

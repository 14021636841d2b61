"""The surrogate environment: budgeted capability distillation simulated by a world, in microseconds.

:class:`SurrogateEnv` is ``ReAD-Surrogate-v0`` with its defaults, and every surrogate id is this class with its parts
(:mod:`read_env.specs`): the dynamics (its ``world_class``: v0's calibrated world here, the path-dependent world of
:class:`~read_env.surrogate.path_dependent_env.PathSurrogateEnv`, a fitted world in :class:`~read_env.fitted.env.FittedEnv`),
the utility family (:mod:`read_env.utility`) and the probe (:mod:`read_env.surrogate.probe`). Every one steps with
one call of a compiled kernel (:mod:`read_env.step_kernel`), in :meth:`SurrogateEnv._transition`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from read_env import contract
from read_env.allocation_env import RESET_OPTIONS, AllocationEnv, Transition
from read_env.step_kernel import Contract, Episodes, StepOutputs, new_block, outputs_of
from read_env.surrogate import path_dependent_kernel
from read_env.surrogate.path_dependent_world import CalibratedWorld, PathWorld
from read_env.surrogate.probe import Probe, measure
from read_env.surrogate.world import World, resolve_world
from read_env.utility import LINEAR, Utility, resolve_utility, utility_row

WorldSpec = str | Mapping[str, Any] | Any
"""An environment's ``world`` argument: a name, calibration data, a ``.json`` path, or a world of its class already built."""


def fixed_world(world: WorldSpec, world_seed: int | None, capabilities: Sequence[str] | None, world_class: type[World] = World) -> World | None:
    """The world to use for every episode, or ``None`` when each episode draws its own (random, unseeded)."""
    if world == "random" and world_seed is None:
        return None
    return resolve_world(world, capabilities, world_seed, np.random.default_rng(0), world_class)


def draw_episode(
    rng: np.random.Generator,
    world: World | None,
    world_spec: WorldSpec,
    world_seed: int | None,
    capabilities: Sequence[str],
    noise: bool,
    num_steps: int,
    world_class: type[World] = World,
    out: np.ndarray | None = None,
) -> tuple[World, np.ndarray | None]:
    """The episode's world and its standard normal noise [2 * num_steps + 1, K] (``None`` with noise off),
    written into ``out`` when given (a contiguous float64 array of that shape).

    Row ``t`` is step ``t``'s training noise; row ``num_steps + t`` is the probe noise of reading ``t``
    (reading 0 after reset, reading ``t`` after step ``t``).

    Draws from ``rng`` in a fixed order (world if random, then all the noise at once), so a vector
    environment that calls this per sub-environment reproduces single environments exactly.
    """
    if world is None:
        world = resolve_world(world_spec, capabilities, world_seed, rng, world_class)
    if not noise:
        return world, None
    return world, rng.standard_normal((2 * num_steps + 1, len(capabilities)), out=out)


class SurrogateEnv(AllocationEnv):
    """Simulated budgeted distillation: the contract of :class:`~read_env.allocation_env.AllocationEnv` on a world.

    Dynamics of v0 (see :mod:`read_env.surrogate.world` for the equations and their calibration; computed by the
    path-dependent kernels without path terms, :class:`~read_env.surrogate.path_dependent_world.CalibratedWorld`): a step spends
    its tokens with the allocation ``w``; exposures ``e`` [K] grow by the tokens that reach each capability
    (relative noise ``train_noise``) and decay with tokens spent elsewhere (``forgetting_tokens``); the true
    profile is ``s(e)``, saturating at the teacher; the observed profile is a probe reading ``s(e) + N(0,
    probe_noise^2)`` clipped to [0, 1]. Task utility is ``r . s(e)`` of the true profile. With
    ``world="paper"`` a one-hot allocation of 20M, 80M or 150M tokens reproduces the paper's transfer
    matrices.

    Args (beyond the contract's, see :class:`AllocationEnv`):
        world: ``"paper"`` (default), ``"random"`` (a world drawn from the prior around the paper's), or
            calibration data as a dict in the schema of ``paper_calibration.json`` or the path of a ``.json`` file
            holding it (what ``read-env fit-world`` writes).
        world_seed: fixes the random world (so training and held-out worlds can be named); without it each
            episode draws a world from the episode's seed.
        noise: training and probe noise on (default) or off.
        capabilities: names and order of the capabilities (default: the world's).
        utility_family: a :class:`~read_env.utility.Utility` or its name (``"linear"``, v0's; ``"scores"``;
            ``"shortfall"``), see :mod:`read_env.utility`.
        utility_noise: standard deviation (>= 0, utility units) of a dev-split reading of the utility, reported in
            ``info["utility"]`` with the noise-free ``final_utility`` and ``initial_utility`` in the last step's info
            (v1, v2); ``None`` (v0): the true utility is reported (:class:`~read_env.surrogate.probe.Probe`).
        probe_bias: share of the probe noise variance that is a per-episode bias of each capability, in [0, 1].
        **contract_args: the contract's other arguments (``task``, ``budget_tokens``, ``num_steps``,
            ``action_mode``, ...; see :class:`AllocationEnv`).

    Each step is one call of :attr:`compiled_step` (:mod:`read_env.step_kernel`'s shape), which maps the action,
    advances the world, reads the probe and the utility and prices the step.

    Reset options: ``task``, ``requirement``, ``world``, ``world_seed`` (for that episode).
    """

    world_class: type[PathWorld] = CalibratedWorld
    """The dynamics part: v0's calibrated world, in the compiled kernels' path-dependent form without path terms."""

    def __init__(
        self,
        world: WorldSpec = "paper",
        world_seed: int | None = None,
        noise: bool = True,
        capabilities: Sequence[str] | None = None,
        utility_family: str | Utility = LINEAR,
        utility_noise: float | None = None,
        probe_bias: float = 0.0,
        **contract_args: Any,
    ) -> None:
        check_probe_options(utility_noise, probe_bias)
        self.world_spec, self.world_seed, self.noise = world, world_seed, bool(noise)
        self.utility_family = resolve_utility(utility_family)
        self.probe = Probe(self.noise, float(probe_bias), None if utility_noise is None else float(utility_noise))
        self._fixed_world = fixed_world(world, world_seed, capabilities, self.world_class)
        known = self._fixed_world.capabilities if self._fixed_world is not None else self.world_class.paper().capabilities
        super().__init__(capabilities=capabilities, known_capabilities=known, **contract_args)
        self.kernel_contract = Contract(
            self.action_mode == "simplex", self.logit_temperature, self.step_tokens.astype(np.float64), float(self.budget_tokens),
            self.probe.utility_noise or 0.0, self.beta, self.cost_weight,
        )  # fmt: skip
        """The constants of :attr:`compiled_step`."""
        self._step_index = np.arange(self.num_steps)[:, None]  # [num_steps, 1]: env_step's steps for one row

    @property
    def reports_final_utility(self) -> bool:
        """Whether the last step's info holds the noise-free ``final_utility`` and ``initial_utility``: with noisy
        utility readings (v1, v2), whose info holds no true utility until then."""
        return self.probe.utility_noise is not None

    @property
    def utility_noise(self) -> float | None:
        """The standard deviation of a dev-split utility reading (:class:`~read_env.surrogate.probe.Probe`; ``None``: none)."""
        return self.probe.utility_noise

    def _reset_options(self) -> tuple[str, ...]:
        return (*RESET_OPTIONS, "world", "world_seed")

    def _prepare(self, options: dict[str, Any]) -> dict[str, Any]:
        prepared = super()._prepare(options)
        spec, seed = prepared.get("world", self.world_spec), prepared.get("world_seed", self.world_seed)
        same = (spec, seed) == (self.world_spec, self.world_seed)
        prepared["_world"] = (spec, seed, self._fixed_world if same else fixed_world(spec, seed, self.capabilities, self.world_class))
        return prepared

    @property
    def probe_bias(self) -> float:
        """The probe's bias share ``rho`` (:class:`~read_env.surrogate.probe.Probe`)."""
        return self.probe.bias

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        """Start an episode: the utility's weights and power, the world and every draw of the episode, the observed
        requirement, the start state, and the episode as :attr:`compiled_step`'s groups and output block; return the
        start's probe reading and reported utility."""
        self.utility_weights = np.ascontiguousarray(self.requirement, dtype=np.float64)
        self.utility_power = self.utility_family.power(self.task_name, self.np_random)
        self._start_episode(prepared)
        self._utility_teacher = np.ascontiguousarray(self.utility_family.teacher_columns(self.world.teacher))
        family, world = self.utility_family, self.world
        self._set_task(self.task_name, family.requirement(world.student, self.utility_weights, self.utility_power, world.teacher))
        self._place_start()
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
        return self._read_profile()

    def _start_episode(self, prepared: dict[str, Any]) -> None:
        """Draw the episode's world and noise (``draw_episode``), then the probe's utility-reading noise and bias."""
        spec, seed, world = prepared["_world"]
        self.world, self._noise = draw_episode(self.np_random, world, spec, seed, self.capabilities, self.noise, self.num_steps, self.world_class)
        self._utility_readings = self.probe.draw_utility_readings(self.np_random, self.num_steps)
        bias = self.probe.draw_bias(self.np_random, len(self.capabilities))
        if bias is not None:
            self.probe.mix_bias(self._noise[self.num_steps :], bias)

    def _place_start(self) -> None:
        """Put the student at the episode's start state, after every other draw of the episode."""
        self.state = self.world.initial_state()
        self.true_profile = self.world.profile(self.state)

    def _read_profile(self, reading: int = 0) -> tuple[np.ndarray, float]:
        """The probe reading of ``true_profile`` and the utility reported after reading ``reading``."""
        noise = None if self._noise is None else self._noise[self.num_steps + reading]
        eta = None if self._utility_readings is None else float(self._utility_readings[reading])
        utility = self.probe.read_utility(self._true_utility(self.true_profile), eta)
        return measure(self.world.probe_noise, self.true_profile, noise), utility

    def _true_utility(self, profile: np.ndarray) -> float:
        """The task utility of a true profile [K], as the compiled step computes it (:func:`read_env.utility.utility_row`)."""
        return utility_row(profile, self.utility_weights, self.utility_power, self._utility_teacher)

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
        if t + 1 == self.num_steps and self.reports_final_utility:
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
    """``ValueError`` naming the problem unless ``utility_noise`` is ``None`` or a finite number >= 0 and ``probe_bias``
    a share in [0, 1]."""
    number = not isinstance(utility_noise, bool) and isinstance(utility_noise, (int, float))
    if utility_noise is not None and not (number and np.isfinite(utility_noise) and utility_noise >= 0):
        raise ValueError(f"utility_noise must be a finite number >= 0, got {utility_noise!r}")
    if isinstance(probe_bias, bool) or not isinstance(probe_bias, (int, float)) or not 0 <= probe_bias <= 1:
        raise ValueError(f"probe_bias must be a share in [0, 1], got {probe_bias!r}")

"""``ReAD-Surrogate-v0``: budgeted capability distillation simulated by a calibrated world, in microseconds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from read_env.allocation_env import RESET_OPTIONS, AllocationEnv
from read_env.surrogate.probe import Probe, measure
from read_env.surrogate.world import World, resolve_world
from read_env.utility import LINEAR, Utility, utility_row

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

    Dynamics (see :mod:`read_env.surrogate.world` for the equations and their calibration): a step spends
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
        **contract_args: the contract's other arguments (``task``, ``budget_tokens``, ``num_steps``,
            ``action_mode``, ...; see :class:`AllocationEnv`).

    Reset options: ``task``, ``requirement``, ``world``, ``world_seed`` (for that episode).
    """

    world_class: type[World] = World
    REPORTS_FINAL_UTILITY = False
    """v1 reports the noise-free ``final_utility`` and ``initial_utility`` in the last step's info."""

    utility_family: Utility = LINEAR
    """The task utility (:mod:`read_env.utility`): v0's is linear, ``weights . s``."""

    def __init__(
        self,
        world: WorldSpec = "paper",
        world_seed: int | None = None,
        noise: bool = True,
        capabilities: Sequence[str] | None = None,
        **contract_args: Any,
    ) -> None:
        self.world_spec, self.world_seed, self.noise = world, world_seed, bool(noise)
        if not hasattr(self, "probe"):  # v0's: no bias, no utility readings (v1 and v2 set theirs first)
            self.probe = Probe(self.noise)
        self._fixed_world = fixed_world(world, world_seed, capabilities, self.world_class)
        known = self._fixed_world.capabilities if self._fixed_world is not None else World.paper().capabilities
        super().__init__(capabilities=capabilities, known_capabilities=known, **contract_args)

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
        requirement, the start state; return the start's probe reading and reported utility."""
        self.utility_weights = np.ascontiguousarray(self.requirement, dtype=np.float64)
        self.utility_power = self.utility_family.power(self.task_name, self.np_random)
        self._start_episode(prepared)
        self._utility_teacher = np.ascontiguousarray(self.utility_family.teacher_columns(self.world.teacher))
        self._set_task(self.task_name, self.utility_family.requirement(self.world.student, self.utility_weights, self.utility_power, self.world.teacher))
        self._place_start()
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

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        noise = None if self._noise is None else self._noise[self._step]
        self.state, self.true_profile = self.world.transition(self.state, tokens, allocation, noise)
        profile, utility = self._read_profile(self._step + 1)
        return profile, utility, {}

    def _read_profile(self, reading: int = 0) -> tuple[np.ndarray, float]:
        """The probe reading of ``true_profile`` and the utility reported after reading ``reading``."""
        noise = None if self._noise is None else self._noise[self.num_steps + reading]
        eta = None if self._utility_readings is None else float(self._utility_readings[reading])
        return measure(self.world.probe_noise, self.true_profile, noise), self.probe.read_utility(self._true_utility(self.true_profile), eta)

    def _true_utility(self, profile: np.ndarray) -> float:
        """The task utility of a true profile [K], as the compiled step computes it (:func:`read_env.utility.utility_row`)."""
        return utility_row(profile, self.utility_weights, self.utility_power, self._utility_teacher)

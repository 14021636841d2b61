"""A path-dependent surrogate world (``ReAD-Surrogate-v1``): what a capability gains depends on the state it is in.

In v0 the profile is a function of cumulative exposures, so a schedule is worth about as much as its average
allocation. v1 keeps v0's calibrated responses and adds two documented mechanisms that make the order of
training matter.

State [..., 2K]: exposures ``e`` [K] (effective tokens per capability, as in v0) and repaid harm ``q`` [K]
(latent units, >= 0). Start: ``e = 0``, ``q = 0``.

Responses (v0's, calibrated as in v0): ``f_ij(e_i) = sum_m C[i, j, m] * (1 - exp(-e_i / tau_m))`` is the
latent effect on capability ``j`` of exposure to ``i``; v0's latent gain is ``z0_j(e) = sum_i f_ij(e_i)``.
Its off-diagonal negative part is the *harm* done to ``j``: ``h_j(e) = sum_{i != j} min(0, f_ij(e_i))``. The
profile::

    z_j = z0_j(e) + q_j
    s_j = s0_j + sigma_j(z_j)                      (v0's saturation toward the teacher, never below 0)

One step spends ``n`` tokens with allocation ``w``; ``xi`` is training noise::

    m_j  = 1 + sum_p G[p, j] * (1 - exp(-e_p / readiness_tokens))   (1) prerequisites speed up learning
    a_j  = n * w_j * m_j * max(0, 1 + train_noise * xi_j)              effective tokens that reach j
    e_j <- e_j * exp(-n * (1 - w_j) / forgetting_tokens) + a_j           v0's slow forgetting
    d_j  = min(0, h_j(e) + q_j)                                          outstanding harm (debt), <= 0
    q_j <- min(0, h_j(e_new) + q_j) * exp(-a_j / repair_tokens) - h_j(e_new)
                                                  (2) the debt decays with j's own training: harm is repaired

(1) **Prerequisites** (Skill-It, Chen et al. 2023: ordered skill graphs measured on real LMs, where training
on a skill's prerequisites first lets it be learned with less data): ``G[p, j] >= 0`` is the speed-up of
``j``'s learning once ``p`` has been trained (``readiness_tokens`` of exposure reach 63% of it); ``G = 1``
halves the tokens ``j`` needs.
(2) **Recency-dependent interference** (forgetting in sequential fine-tuning: recent training overwrites
earlier gains, Luo et al. 2023; the lost ability is largely recovered by a little training on the harmed
capability, Kotha et al. 2023 and Zheng et al. 2025 "spurious forgetting"): the harm that training ``i`` does
to ``j`` is a debt; training ``j`` afterwards repays it at an ``e``-folding of ``repair_tokens`` effective
tokens, while harm done after ``j``'s last training stays. So "harmful capability first, harmed capability
last" beats the reverse order and the mixture.

Both mechanisms are state dependent, which is what makes allocation sequential: the same tokens are worth
more once the prerequisites are in place, and harm costs less when repair follows it.

The equations are computed row by row by the compiled kernels of :mod:`read_env.surrogate.path_dependent_kernel`
(``tests/test_surrogate_v1.py`` checks them against a plain-numpy transcription of this docstring).

Calibration: a one-hot run on ``i`` has no exposure to any prerequisite of ``i`` (``m_i = 1``) and repairs no
harm (``a_j = 0`` for every harmed ``j != i``), so ``q = 0`` and its profile is v0's: over any number of
steps it reproduces the paper's transfer matrices exactly, with v0's ``C``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from read_env.surrogate import path_dependent_kernel
from read_env.surrogate.world import World

DEFAULT_REPAIR_FRACTION = 0.25
"""Default ``repair_tokens`` as a fraction of the first calibration budget (5M tokens for the paper's 20M)."""
DEFAULT_PREREQUISITES: dict[str, dict[str, float]] = {
    "reasoning": {"math": 1.0, "code": 0.5, "long_context": 0.5},
    "math": {"code": 0.5},
    "code": {"tool_use": 1.0},
    "steerability": {"tool_use": 0.5},
    "general_knowledge": {"multilingual": 0.5, "long_context": 0.5},
}
"""``G[p][j]``: capability ``j`` builds on ``p`` (multi-step reasoning under math word problems, programs and
long-document questions; algorithms under code; code and instruction following under tool calls; knowledge
under multilingual and long-document QA). A modelling choice in the spirit of Skill-It's graphs, not a
measurement: ``world="random"`` perturbs it."""
MAX_PREREQUISITE_GAIN = 2.0
"""Largest entry of ``G`` accepted (a 3x learning rate at full progress of that prerequisite)."""
DEFAULT_READINESS_FRACTION = 0.1
"""Default ``readiness_tokens`` as a fraction of the first calibration budget (2M tokens for the paper's 20M)."""

# The prior of world="random" beyond v0's (documented in PathWorld.random).
RANDOM_PREREQUISITE_LOG_SCALE = 0.5
RANDOM_PREREQUISITE_KEEP = 0.8
RANDOM_PREREQUISITE_NEW = 0.08
RANDOM_REPAIR_LOG_SCALE = 0.5


class PathWorld(World):
    """v0's calibrated world plus prerequisites ``G`` and interference repair (see the module docstring).

    Args (keywords; positional and other arguments are :class:`~read_env.surrogate.world.World`'s):
        prerequisites: ``G`` [K, K] (row the prerequisite, column the learner), entries in
            [0, MAX_PREREQUISITE_GAIN], zero diagonal.
        repair_tokens: effective tokens of a capability that repay its interference debt by a factor e (``inf``: no
            repair, harm is permanent as in v0).
        readiness_tokens: exposure of a prerequisite at which a fraction 1 - 1/e of its speed-up applies.
    """

    def __init__(
        self, *world_args: Any, prerequisites: Any = None, repair_tokens: float | None = None, readiness_tokens: float | None = None, **world_kwargs: Any
    ) -> None:
        super().__init__(*world_args, **world_kwargs)
        k = len(self.capabilities)
        self.prerequisites = default_prerequisites(self.capabilities) if prerequisites is None else np.asarray(prerequisites, dtype=np.float64)
        self.repair_tokens = float(DEFAULT_REPAIR_FRACTION * self.calibration_budgets[0] if repair_tokens is None else repair_tokens)
        self.readiness_tokens = float(DEFAULT_READINESS_FRACTION * self.calibration_budgets[0] if readiness_tokens is None else readiness_tokens)
        if self.prerequisites.shape != (k, k) or not np.isfinite(self.prerequisites).all():
            raise ValueError(f"prerequisites must be a finite ({k}, {k}) matrix, got shape {self.prerequisites.shape}")
        if (self.prerequisites < 0).any() or (self.prerequisites > MAX_PREREQUISITE_GAIN).any() or np.diagonal(self.prerequisites).any():
            raise ValueError(f"prerequisites must lie in [0, {MAX_PREREQUISITE_GAIN}] with a zero diagonal")
        if not self.repair_tokens > 0:
            raise ValueError(f"repair_tokens must be positive (inf: no repair), got {self.repair_tokens}")
        if not (np.isfinite(self.readiness_tokens) and self.readiness_tokens > 0):
            raise ValueError(f"readiness_tokens must be positive, got {self.readiness_tokens}")
        self._kernel_parameters = path_dependent_kernel.parameters(self)

    # ----------------------------------------------------------------------------------------- dynamics
    STATE_BLOCKS = 2  # exposures, then repaid harm

    def profile(self, state: np.ndarray) -> np.ndarray:
        """Noise-free profile [..., K] in [0, 1] of a state [..., 2K]."""
        student, gap, cells, decay_rates, _, _ = self._kernel_parameters
        return path_dependent_kernel.profile(_rows(state), student, gap, cells, decay_rates).reshape(*np.shape(state)[:-1], -1)

    def advance(self, state: np.ndarray, step_tokens: Any, allocation: np.ndarray, train_noise: np.ndarray | None) -> np.ndarray:
        """State [..., 2K] after spending ``step_tokens`` (scalar or [..., 1]) with ``allocation`` [..., K].

        ``train_noise`` [..., K] holds standard normal draws (``None``: noise off).
        """
        return self.transition(state, step_tokens, allocation, train_noise)[0]

    def transition(self, state: np.ndarray, step_tokens: Any, allocation: np.ndarray, train_noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``advance`` and the new state's ``profile`` [..., K], computed together by :func:`path_dependent_kernel.advance`."""
        batch = np.broadcast_shapes(np.shape(state)[:-1], np.shape(allocation)[:-1])
        noise = np.empty((0, len(self.capabilities))) if train_noise is None else _rows(train_noise, batch)
        tokens = np.asarray(step_tokens, dtype=np.float64).reshape(-1)
        new_state, new_profile = path_dependent_kernel.advance(_rows(state, batch), tokens, _rows(allocation, batch), noise, *self._kernel_parameters)
        return new_state.reshape(*batch, -1), new_profile.reshape(*batch, -1)

    # -------------------------------------------------------------------------------------- construction
    @classmethod
    def _extend(cls, base: World, **path_terms: Any) -> PathWorld:
        """A world with ``base``'s v0 parameters and the path terms given as keywords."""
        return cls(
            base.capabilities, base.student, base.teacher, base.calibration_budgets, base.transfer, base.forgetting_tokens, base.train_noise, base.probe_noise,
            **path_terms,
        )  # fmt: skip

    def subset(self, capabilities: Sequence[str]) -> PathWorld:
        """The same world restricted to (and reordered as) ``capabilities``."""
        base = super().subset(capabilities)
        index = [self.capabilities.index(name) for name in base.capabilities]
        return self._extend(base, prerequisites=self.prerequisites[index][:, index], repair_tokens=self.repair_tokens, readiness_tokens=self.readiness_tokens)

    @classmethod
    def stack(cls, worlds: Sequence[PathWorld]) -> PathWorld:
        """One world whose parameters carry a leading batch axis [N, ...] (see ``World.stack``)."""
        stacked = super().stack(worlds)
        if stacked is worlds[0]:
            return stacked
        stacked.prerequisites = np.stack([world.prerequisites for world in worlds])
        for name in ("repair_tokens", "readiness_tokens"):
            setattr(stacked, name, np.array([[getattr(world, name)] for world in worlds]))
        stacked._kernel_parameters = path_dependent_kernel.parameters(stacked)
        return stacked

    @classmethod
    def from_calibration(cls, data: Mapping[str, Any]) -> PathWorld:
        """A world from calibration data (``World.from_calibration``'s schema) plus optional ``prerequisites``
        ({prerequisite: {learner: gain}}), ``repair_tokens`` and ``readiness_tokens``."""
        base = World.from_calibration(data)
        prerequisites = data.get("prerequisites")
        matrix = None if prerequisites is None else prerequisite_matrix(prerequisites, base.capabilities)
        return cls._extend(base, prerequisites=matrix, repair_tokens=data.get("repair_tokens"), readiness_tokens=data.get("readiness_tokens"))

    @classmethod
    def random(cls, rng: np.random.Generator, around: World | None = None) -> PathWorld:
        """A world drawn from v0's prior (``World.random``) plus: each prerequisite edge kept with probability
        0.8 and scaled by ``exp(0.5 Z)``, each absent off-diagonal edge added with probability 0.08 at a gain
        ``U(0, 1)``, gains clipped to [0, 2]; ``repair_tokens * exp(0.5 Z)``. Draw order: v0's, then these."""
        base = around if isinstance(around, PathWorld) else cls.paper()  # type: ignore[assignment]
        drawn = World.random(rng, base)
        k = len(base.capabilities)
        kept = base.prerequisites * (rng.random((k, k)) < RANDOM_PREREQUISITE_KEEP) * np.exp(RANDOM_PREREQUISITE_LOG_SCALE * rng.standard_normal((k, k)))
        added = (base.prerequisites == 0) * (rng.random((k, k)) < RANDOM_PREREQUISITE_NEW) * rng.random((k, k))
        prerequisites = np.clip((kept + added) * (1.0 - np.eye(k)), 0.0, MAX_PREREQUISITE_GAIN)
        repair = base.repair_tokens * np.exp(RANDOM_REPAIR_LOG_SCALE * rng.standard_normal())
        return cls._extend(drawn, prerequisites=prerequisites, repair_tokens=repair, readiness_tokens=base.readiness_tokens)

    def to_calibration(self) -> dict[str, Any]:
        """This world as calibration data (the inverse of ``from_calibration``), JSON-able."""
        data = super().to_calibration()
        data["prerequisites"] = {
            first: {second: float(self.prerequisites[i, j]) for j, second in enumerate(self.capabilities) if self.prerequisites[i, j] > 0}
            for i, first in enumerate(self.capabilities)
            if (self.prerequisites[i] > 0).any()
        }
        data["repair_tokens"] = self.repair_tokens
        data["readiness_tokens"] = self.readiness_tokens
        return data


class CalibratedWorld(PathWorld):
    """``ReAD-Surrogate-v0``'s calibrated world (:class:`~read_env.surrogate.world.World`) in the path-dependent form:
    no prerequisites (``G = 0``, so ``m = 1``) and no repair (``repair_tokens = inf``), so that ``q`` stays exactly 0
    (``min(0, h) - h = 0`` for harm ``h <= 0``) and the profile is v0's ``s0 + sigma(z0(e))``: v0's equations, computed
    by the compiled kernels of :mod:`read_env.surrogate.path_dependent_kernel` (sums in another order than v0's numpy:
    the same numbers within rounding). Its constructors are v0's: the paper's world, v0's random prior (the same draws),
    calibration data without path terms (any in the data are ignored)."""

    @classmethod
    def without_path_terms(cls, base: World) -> CalibratedWorld:
        """``base``'s v0 parameters with no prerequisites and no repair."""
        k = len(base.capabilities)
        return cls._extend(base, prerequisites=np.zeros((k, k)), repair_tokens=np.inf)

    @classmethod
    def from_calibration(cls, data: Mapping[str, Any]) -> CalibratedWorld:
        return cls.without_path_terms(World.from_calibration(data))

    @classmethod
    def random(cls, rng: np.random.Generator, around: World | None = None) -> CalibratedWorld:
        """A world drawn from v0's prior (``World.random``: v0's draws, none more)."""
        return cls.without_path_terms(World.random(rng, around if around is not None else World.paper()))

    def to_calibration(self) -> dict[str, Any]:
        """This world as v0's calibration data (no path terms)."""
        return World.to_calibration(self)


def prerequisite_matrix(prerequisites: Mapping[str, Mapping[str, float]], capabilities: Sequence[str]) -> np.ndarray:
    """``G`` [K, K] from ``{prerequisite: {learner: gain}}``; unknown names raise ``ValueError``."""
    names = list(capabilities)
    matrix = np.zeros((len(names), len(names)))
    for first, row in prerequisites.items():
        for second, gain in row.items():
            unknown = [name for name in (first, second) if name not in names]
            if unknown:
                raise ValueError(f"prerequisites name unknown capabilities {unknown}; known: {names}")
            matrix[names.index(first), names.index(second)] = float(gain)
    return matrix


def default_prerequisites(capabilities: Sequence[str]) -> np.ndarray:
    """``DEFAULT_PREREQUISITES`` restricted to ``capabilities`` [K, K]."""
    rows = {first: {second: gain for second, gain in row.items() if second in capabilities} for first, row in DEFAULT_PREREQUISITES.items() if first in capabilities}
    return prerequisite_matrix(rows, capabilities)


def _rows(array: np.ndarray, batch: tuple[int, ...] | None = None) -> np.ndarray:
    """``array`` [..., W] as contiguous float64 rows [M, W], broadcast to the batch shape ``batch`` first when given."""
    array = np.asarray(array, dtype=np.float64)
    if batch is not None and array.shape[:-1] != batch:
        array = np.broadcast_to(array, (*batch, array.shape[-1]))
    return np.ascontiguousarray(array.reshape(-1, array.shape[-1]))

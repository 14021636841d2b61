"""A path-dependent surrogate world (``ReAD-Surrogate-v1``): what a capability gains depends on the state it is in.

In v0 the profile is a function of cumulative exposures, so a schedule is worth about as much as its average
allocation. v1 keeps v0's calibrated responses and adds two documented mechanisms that make the order of
training matter.

State [..., 2K]: exposures ``e`` [K] (effective tokens per capability, as in v0) and interference debts
``d`` [K] (latent units, <= 0). Start: ``e = 0``, ``d = 0``.

Responses (v0's, calibrated below): ``f_ij(e_i) = sum_m C[i, j, m] * (1 - exp(-e_i / tau_m))`` is the latent
effect on capability ``j`` of exposure to ``i``. Its off-diagonal negative part is *harm*:
``h_j(e) = sum_{i != j} min(0, f_ij(e_i))``. The profile::

    z_j = f_jj(e_j) + sum_{i != j} max(0, f_ij(e_i)) + d_j
    s_j = s0_j + sigma_j(z_j)                      (v0's saturation toward the teacher, never below 0)

One step spends ``n`` tokens with allocation ``w``; ``xi`` is training noise and ``pi = clip((s - s0) /
(teacher - s0), 0, 1)`` the progress of each capability toward the teacher at the step's start::

    m_j  = 1 + sum_p G[p, j] * pi_p                        (1) prerequisites speed up learning
    a_j  = n * w_j * m_j * max(0, 1 + train_noise * xi_j)      effective tokens that reach j
    e_j <- e_j * exp(-n * (1 - w_j) / forgetting_tokens) + a_j   v0's slow forgetting
    d_j <- min(0, d_j + h_j(e_new) - h_j(e_old)) * exp(-a_j / repair_tokens)
                                                           (2) harm is a debt that later training of j repairs

(1) **Prerequisites** (Skill-It, Chen et al. 2023: ordered skill graphs measured on real LMs, where training
the prerequisite skills first lets a later skill be learned with less data): ``G[p, j] >= 0`` is the
speed-up of ``j``'s learning once ``p`` has reached the teacher; ``G = 1`` halves the tokens ``j`` needs.
(2) **Recency-dependent interference** (forgetting in sequential fine-tuning: recent training overwrites
earlier gains, Luo et al. 2023; and the lost ability is largely recoverable with little data of the harmed
capability, Kotha et al. 2023, Zheng et al. 2025 "spurious forgetting"): the harm that training ``i`` does
to ``j`` accrues as a debt; training ``j`` afterwards repays it at ``e``-folding ``repair_tokens`` effective
tokens, while harm done after ``j``'s last training stays. So "harmful capability first, harmed capability
last" beats the reverse order and the mixture.

Both mechanisms are state dependent, which is what makes allocation sequential: the same tokens are worth
more once the prerequisites are in place, and harm costs less when it is followed by repair.

Calibration: one-hot training of ``i`` never repairs (``w_j = 0`` for ``j != i``) and never forgets, so its
profile is v0's profile at the exposure ``E_i(B)`` it reaches; prerequisites make ``E_i(B) >= B``. ``C`` is
solved row by row so that ``s(E_i(B_b) onehot_i) - s0 = T_b[i]``, where ``E_i(B_b)`` comes from simulating
the one-hot run over ``calibration_steps`` steps; since ``E`` depends on ``C`` through the progress along the
run, the two are iterated to a fixed point. One-hot runs of ``calibration_steps`` steps (the paper's 20)
then reproduce the transfer matrices; other step counts differ slightly (measured in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from read_env.surrogate.world import (
    DEFAULT_FORGETTING_TOKENS,
    DEFAULT_PROBE_NOISE,
    DEFAULT_TRAIN_NOISE,
    NUM_RESPONSES,
    World,
    _inverse_saturation,
)

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

    Args (beyond :class:`~read_env.surrogate.world.World`'s):
        prerequisites: ``G`` [K, K] (row the prerequisite, column the learner), entries in
            [0, MAX_PREREQUISITE_GAIN], zero diagonal.
        repair_tokens: effective tokens of a capability that repay its interference debt by a factor e.
        readiness_tokens: exposure of a prerequisite at which a fraction 1 - 1/e of its speed-up applies.
    """

    def __init__(
        self,
        capabilities: Sequence[str],
        student: Sequence[float],
        teacher: Sequence[float],
        calibration_budgets: Sequence[float],
        transfer: Any,
        forgetting_tokens: float = DEFAULT_FORGETTING_TOKENS,
        train_noise: float = DEFAULT_TRAIN_NOISE,
        probe_noise: float = DEFAULT_PROBE_NOISE,
        prerequisites: Any = None,
        repair_tokens: float | None = None,
        readiness_tokens: float | None = None,
    ) -> None:
        super().__init__(capabilities, student, teacher, calibration_budgets, transfer, forgetting_tokens, train_noise, probe_noise)
        k = len(self.capabilities)
        self.prerequisites = default_prerequisites(self.capabilities) if prerequisites is None else np.asarray(prerequisites, dtype=np.float64)
        self.repair_tokens = float(DEFAULT_REPAIR_FRACTION * self.calibration_budgets[0] if repair_tokens is None else repair_tokens)
        self.readiness_tokens = float(DEFAULT_READINESS_FRACTION * self.calibration_budgets[0] if readiness_tokens is None else readiness_tokens)
        if self.prerequisites.shape != (k, k) or not np.isfinite(self.prerequisites).all():
            raise ValueError(f"prerequisites must be a finite ({k}, {k}) matrix, got shape {self.prerequisites.shape}")
        if (self.prerequisites < 0).any() or (self.prerequisites > MAX_PREREQUISITE_GAIN).any() or np.diagonal(self.prerequisites).any():
            raise ValueError(f"prerequisites must lie in [0, {MAX_PREREQUISITE_GAIN}] with a zero diagonal")
        if not (np.isfinite(self.repair_tokens) and self.repair_tokens > 0):
            raise ValueError(f"repair_tokens must be positive, got {self.repair_tokens}")
        if not (np.isfinite(self.readiness_tokens) and self.readiness_tokens > 0):
            raise ValueError(f"readiness_tokens must be positive, got {self.readiness_tokens}")
        self._off_diagonal = ~np.eye(k, dtype=bool)
        self.cells = np.ascontiguousarray(self._response.reshape(k, k, NUM_RESPONSES).transpose(1, 0, 2))  # v0's C [K(i), K(j), 3]

    # ----------------------------------------------------------------------------------------- dynamics
    STATE_BLOCKS = 2  # exposures, then debts
    def _cell_effects(self, exposure: np.ndarray) -> np.ndarray:
        """``f_ij(e_i)`` [..., K(i), K(j)]."""
        responses = 1.0 - np.exp(exposure[..., :, None] * self._decay_rates)  # [..., K(i), 3]
        return np.einsum("...im,...ijm->...ij", responses, self.cells)

    def _harm(self, effects: np.ndarray) -> np.ndarray:
        """``h_j`` [..., K(j)]: the off-diagonal negative effects on each capability."""
        return np.einsum("...ij->...j", np.where(self._off_diagonal, np.minimum(effects, 0.0), 0.0))

    def _latent(self, state: np.ndarray) -> np.ndarray:
        """``z`` [..., K]: own effect, positive transfer and the debt."""
        k = len(self.capabilities)
        effects = self._cell_effects(state[..., :k])
        retained = np.where(self._off_diagonal, np.maximum(effects, 0.0), effects)
        return np.einsum("...ij->...j", retained) + state[..., k:]

    def profile(self, state: np.ndarray) -> np.ndarray:
        """Noise-free profile [..., K] in [0, 1] of a state [..., 2K]."""
        latent = self._latent(state)
        scale = np.where(latent >= 0.0, self.gap, self.student)
        return self.student + scale * np.tanh(latent / scale)

    def advance(self, state: np.ndarray, step_tokens: Any, allocation: np.ndarray, train_noise: np.ndarray | None) -> np.ndarray:
        """State [..., 2K] after spending ``step_tokens`` (scalar or [..., 1]) with ``allocation`` [..., K].

        ``train_noise`` [..., K] holds standard normal draws (``None``: noise off).
        """
        k = len(self.capabilities)
        exposure, debt = state[..., :k], state[..., k:]
        readiness = 1.0 - np.exp(-exposure / self.readiness_tokens)
        speed = 1.0 + np.einsum("...p,...pj->...j", readiness, self.prerequisites)
        tokens = step_tokens * allocation * speed
        if train_noise is not None:
            tokens = tokens * np.maximum(0.0, 1.0 + self.train_noise * train_noise)
        new_exposure = exposure * np.exp((allocation - 1.0) * (step_tokens / self.forgetting_tokens)) + tokens
        harm_change = self._harm(self._cell_effects(new_exposure)) - self._harm(self._cell_effects(exposure))
        new_debt = np.minimum(0.0, debt + harm_change) * np.exp(-tokens / self.repair_tokens)
        return np.concatenate([new_exposure, new_debt], axis=-1)

    # -------------------------------------------------------------------------------------- construction
    def subset(self, capabilities: Sequence[str]) -> PathWorld:
        """The same world restricted to (and reordered as) ``capabilities``."""
        base = super().subset(capabilities)
        index = [self.capabilities.index(name) for name in base.capabilities]
        return PathWorld(
            base.capabilities, base.student, base.teacher, base.calibration_budgets, base.transfer, base.forgetting_tokens, base.train_noise, base.probe_noise,
            self.prerequisites[index][:, index], self.repair_tokens, self.readiness_tokens,
        )  # fmt: skip

    @classmethod
    def stack(cls, worlds: Sequence[PathWorld]) -> PathWorld:
        """One world whose parameters carry a leading batch axis [N, ...] (see ``World.stack``)."""
        stacked = super().stack(worlds)
        if stacked is worlds[0]:
            return stacked
        for name in ("prerequisites", "cells"):
            setattr(stacked, name, np.stack([getattr(world, name) for world in worlds]))
        for name in ("repair_tokens", "readiness_tokens"):
            setattr(stacked, name, np.array([[getattr(world, name)] for world in worlds]))
        return stacked

    @classmethod
    def from_calibration(cls, data: Mapping[str, Any]) -> PathWorld:
        """A world from calibration data (``World.from_calibration``'s schema) plus optional ``prerequisites``
        ({prerequisite: {learner: gain}}), ``repair_tokens`` and ``readiness_tokens``."""
        base = World.from_calibration(data)
        prerequisites = data.get("prerequisites")
        matrix = None if prerequisites is None else prerequisite_matrix(prerequisites, base.capabilities)
        return cls(
            base.capabilities, base.student, base.teacher, base.calibration_budgets, base.transfer, base.forgetting_tokens, base.train_noise, base.probe_noise,
            matrix, data.get("repair_tokens"), data.get("readiness_tokens"),
        )  # fmt: skip

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
        return cls(
            drawn.capabilities, drawn.student, drawn.teacher, drawn.calibration_budgets, drawn.transfer, drawn.forgetting_tokens, drawn.train_noise, drawn.probe_noise,
            prerequisites, repair, base.readiness_tokens,
        )  # fmt: skip

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

"""The surrogate worlds in JAX: the parameters a step needs, their calibration, the random prior, one step.

The equations are those of :mod:`read_env.surrogate.world` (v0) and :mod:`read_env.surrogate.path_dependent_world`
(v1); here they are pure functions of arrays [K] (vmap adds the batch), written once for both versions::

    m_j  = 1 + sum_p G[p, j] * (1 - exp(-e_p / readiness_tokens))       v1's prerequisites (v0: G = 0, m = 1)
    a_j  = n * w_j * m_j * max(0, 1 + train_noise * xi_j)
    e_j <- e_j * exp(-n * (1 - w_j) / forgetting_tokens) + a_j
    f_ij = sum_m C[i, j, m] * (1 - exp(-e_i / tau_m));  z0_j = sum_i f_ij;  h_j = sum_{i != j} min(0, f_ij)
    q_j <- min(0, h_j + q_j) * exp(-a_j / repair_tokens) - h_j           v1's repair (v0: q stays 0)
    s_j  = s0_j + sigma_j(z0_j + q_j)

:class:`World` holds what a step reads (``C`` laid out [i, m, j] as in :mod:`read_env.surrogate.path_dependent_kernel`);
:class:`WorldPrior` holds a calibration (student, teacher, transfer matrices, ...) from which
:func:`draw_world` draws a random world exactly as ``World.random`` / ``PathWorld.random`` do (same
distribution; JAX's generator, so not the same numbers) and :func:`calibrate` solves its ``C``.

Precision: float32. Token counts (up to ~1e9) keep a relative precision of 6e-8; ``C`` is at most ~1 for the
paper's and the prior's worlds, so profiles agree with the float64 numpy worlds to ~1e-6 (the tests hold
whole episodes to 1e-5).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from read_env.surrogate import world as numpy_world
from read_env.surrogate.path_dependent_world import MAX_PREREQUISITE_GAIN, RANDOM_PREREQUISITE_KEEP, RANDOM_PREREQUISITE_LOG_SCALE
from read_env.surrogate.path_dependent_world import RANDOM_PREREQUISITE_NEW, RANDOM_REPAIR_LOG_SCALE, PathWorld

NO_REPAIR = float("inf")
"""``repair_tokens`` of a v0 world: debts never decay, so the repaid harm ``q`` stays 0."""


@struct.dataclass
class World:
    """What one step reads, for K capabilities: ``student``, ``gap`` [K]; ``cells`` [K(i), 3, K(j)]; ``decay_rates``
    [3] (``-1 / tau_m``, per token); ``prerequisites`` [K, K]; and scalars in tokens or relative units."""

    student: jax.Array
    gap: jax.Array
    cells: jax.Array
    decay_rates: jax.Array
    prerequisites: jax.Array
    readiness_tokens: jax.Array
    repair_tokens: jax.Array
    forgetting_tokens: jax.Array
    train_noise: jax.Array
    probe_noise: jax.Array

    @property
    def teacher(self) -> jax.Array:
        """The teacher's profile [K], ``student + gap``: where profiles saturate (v2's utility measures shortfalls from it)."""
        return self.student + self.gap


@struct.dataclass
class WorldPrior:
    """A calibration to draw random worlds around: ``student``, ``teacher`` [K]; ``transfer`` [3, K, K] (profile
    units); ``budget_share`` [3] (each calibration budget over the largest); ``inverse_basis`` [3, 3] (solves
    ``C`` from latent targets); ``decay_rates`` [3]; ``prerequisites`` [K, K]; scalars as :class:`World`'s."""

    student: jax.Array
    teacher: jax.Array
    transfer: jax.Array
    budget_share: jax.Array
    inverse_basis: jax.Array
    decay_rates: jax.Array
    prerequisites: jax.Array
    readiness_tokens: jax.Array
    repair_tokens: jax.Array
    forgetting_tokens: jax.Array
    train_noise: jax.Array
    probe_noise: jax.Array


def _f32(value: Any) -> jax.Array:
    return jnp.asarray(np.asarray(value, dtype=np.float64), dtype=jnp.float32)


def _path_terms(world: numpy_world.World) -> tuple[np.ndarray, float, float]:
    """(prerequisites [K, K], readiness, repair tokens) of a numpy world; a v0 world has none (no repair)."""
    if isinstance(world, PathWorld):
        return world.prerequisites, world.readiness_tokens, world.repair_tokens
    k = len(world.capabilities)
    return np.zeros((k, k)), 1.0, NO_REPAIR


def from_numpy(world: numpy_world.World) -> World:
    """The :class:`World` of a numpy ``World`` or ``PathWorld`` (its float64 ``C`` rounded to float32)."""
    k = len(world.capabilities)
    prerequisites, readiness, repair = _path_terms(world)
    cells = np.reshape(world._response, (k, k, numpy_world.NUM_RESPONSES)).transpose(1, 2, 0)  # [j, 3i + m] -> [i, m, j]
    return World(
        _f32(world.student), _f32(world.gap), _f32(cells), _f32(world._decay_rates), _f32(prerequisites),
        _f32(readiness), _f32(repair), _f32(world.forgetting_tokens), _f32(world.train_noise), _f32(world.probe_noise),
    )  # fmt: skip


def prior_from_numpy(world: numpy_world.World) -> WorldPrior:
    """The :class:`WorldPrior` centred on a numpy world (what ``World.random(rng, around=world)`` perturbs)."""
    budgets = world.calibration_budgets
    basis = 1.0 - np.exp(-budgets[:, None] / world.time_constants[None, :])  # [b, m]
    prerequisites, readiness, repair = _path_terms(world)
    return WorldPrior(
        _f32(world.student), _f32(world.teacher), _f32(world.transfer), _f32(budgets / budgets[-1]), _f32(np.linalg.inv(basis)),
        _f32(world._decay_rates), _f32(prerequisites), _f32(readiness), _f32(repair), _f32(world.forgetting_tokens),
        _f32(world.train_noise), _f32(world.probe_noise),
    )  # fmt: skip


def calibrate(prior: WorldPrior) -> World:
    """The :class:`World` whose one-hot runs reproduce ``prior``'s transfer matrices (``World.__init__``'s solve)."""
    gap = prior.teacher - prior.student
    scale = jnp.where(prior.transfer >= 0.0, gap, prior.student)  # per measured column j
    latent = scale * jnp.arctanh(prior.transfer / scale)  # [b, i, j]
    cells = jnp.einsum("mb,bij->imj", prior.inverse_basis, latent)
    return World(
        prior.student, gap, cells, prior.decay_rates, prior.prerequisites, prior.readiness_tokens, prior.repair_tokens,
        prior.forgetting_tokens, prior.train_noise, prior.probe_noise,
    )  # fmt: skip


def draw_world(key: jax.Array, prior: WorldPrior, path_terms: bool) -> World:
    """A random world around ``prior`` (``World.random``'s prior; with ``path_terms`` also ``PathWorld.random``'s
    prerequisite edges and repair scale), calibrated."""
    k = prior.student.shape[-1]
    keys = jax.random.split(key, 9)
    student = jnp.clip(prior.student + numpy_world.RANDOM_PROFILE_SCALE * jax.random.normal(keys[0], (k,)), 0.01, 0.95)
    gap = prior.teacher - prior.student
    teacher = jnp.minimum(0.995, student + gap * jnp.exp(numpy_world.RANDOM_GAP_LOG_SCALE * jax.random.normal(keys[1], (k,))))
    scale = jnp.exp(numpy_world.RANDOM_TRANSFER_LOG_SCALE * jax.random.normal(keys[2], (k, k)))
    shift = numpy_world.RANDOM_TRANSFER_SHIFT * jax.random.normal(keys[3], (k, k))
    transfer = prior.transfer * scale + shift * prior.budget_share[:, None, None]
    transfer = jnp.clip(transfer, -numpy_world.RANDOM_HEADROOM * student, numpy_world.RANDOM_HEADROOM * (teacher - student))
    forgetting = prior.forgetting_tokens * jnp.exp(numpy_world.RANDOM_FORGETTING_LOG_SCALE * jax.random.normal(keys[4]))
    prerequisites, repair = prior.prerequisites, prior.repair_tokens
    if path_terms:
        kept = prerequisites * (jax.random.uniform(keys[5], (k, k)) < RANDOM_PREREQUISITE_KEEP)
        kept = kept * jnp.exp(RANDOM_PREREQUISITE_LOG_SCALE * jax.random.normal(keys[6], (k, k)))
        new_keys = jax.random.split(keys[7])
        added = (prerequisites == 0) * (jax.random.uniform(new_keys[0], (k, k)) < RANDOM_PREREQUISITE_NEW) * jax.random.uniform(new_keys[1], (k, k))
        prerequisites = jnp.clip((kept + added) * (1.0 - jnp.eye(k)), 0.0, MAX_PREREQUISITE_GAIN)
        repair = repair * jnp.exp(RANDOM_REPAIR_LOG_SCALE * jax.random.normal(keys[8]))
    drawn = prior.replace(student=student, teacher=teacher, transfer=transfer, forgetting_tokens=forgetting, prerequisites=prerequisites, repair_tokens=repair)
    return calibrate(drawn)


def saturate(latent: jax.Array, student: jax.Array, gap: jax.Array) -> jax.Array:
    """``s0 + sigma(z)`` [K]: saturating at the teacher, never below 0."""
    scale = jnp.where(latent >= 0.0, gap, student)
    return student + scale * jnp.tanh(latent / scale)


def transition(world: World, state: jax.Array, tokens: jax.Array, allocation: jax.Array, train_noise: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """(state [2K], noise-free profile [K]) after spending ``tokens`` with ``allocation`` [K] from ``state`` [2K]
    (exposures ``e``, then repaid harm ``q``); ``train_noise`` [K] standard normal draws or ``None`` (off)."""
    k = allocation.shape[-1]
    exposure, repaid = state[:k], state[k:]
    speed = (1.0 - jnp.exp(-exposure / world.readiness_tokens)) @ world.prerequisites
    effective = tokens * allocation * (1.0 + speed)
    if train_noise is not None:
        effective = effective * jnp.maximum(0.0, 1.0 + world.train_noise * train_noise)
    exposure = exposure * jnp.exp((allocation - 1.0) * (tokens / world.forgetting_tokens)) + effective
    responses = 1.0 - jnp.exp(exposure[:, None] * world.decay_rates)  # [i, m]
    effects = (responses[:, :, None] * world.cells).sum(axis=1)  # [i, j]; elementwise, XLA fuses it (a batched dot does not)
    latent = effects.sum(axis=0)
    harm = jnp.where(jnp.eye(k, dtype=bool), 0.0, jnp.minimum(effects, 0.0)).sum(axis=0)
    repaid = jnp.minimum(0.0, harm + repaid) * jnp.exp(-effective / world.repair_tokens) - harm
    return jnp.concatenate([exposure, repaid]), saturate(latent + repaid, world.student, world.gap)

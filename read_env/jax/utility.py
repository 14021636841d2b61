"""The task utility and its requirement in JAX: :mod:`read_env.utility`'s formulas for one episode (vmap adds rows).

Each family of :data:`read_env.utility.UTILITIES` has its pair here (:data:`FAMILIES`). ``"linear"`` (v0): ``F = a . s``,
the requirement ``a``. The ``"scores"`` family (v1): ``F(s) = M_p(s; a) = (sum_c a_c s_c^p)^(1/p)`` (``p = 0``: ``prod_c s_c^(a_c)``;
``p = 1``: ``a . s``), scores floored at ``MIN_SCORE`` before powers and logarithms; the requirement
``r = Proj_simplex([grad F(s)]_+)`` with ``dF/ds_c = a_c (s_c / F)^(p - 1)``. The ``"shortfall"`` family (v2):
``F(s) = a . t - M_q(t - s; a)`` with the teacher's profile ``t``, whose gradient is ``grad M_q`` at ``t - s``.
The power is an array, so a batch may mix powers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from read_env.utility import MIN_SCORE


def power_mean(profile: jax.Array, weights: jax.Array, power: jax.Array) -> jax.Array:
    """``F(s)`` (a scalar) of a profile [K] in [0, 1] with weights [K] on the simplex and a scalar power."""
    logs = jnp.log(jnp.maximum(profile, MIN_SCORE))
    safe_power = jnp.where(power == 0.0, 1.0, power)
    general = jnp.exp(jnp.log(weights @ jnp.exp(safe_power * logs)) / safe_power)
    return jnp.where(power == 1.0, weights @ profile, jnp.where(power == 0.0, jnp.exp(weights @ logs), general))


def project_to_simplex(vector: jax.Array) -> jax.Array:
    """Euclidean projection of ``vector`` [K] onto the probability simplex (Duchi et al., 2008).

    Duchi's sort, done by pairwise comparisons (a sort of K = 8 entries costs XLA on the CPU ~100x more):
    entry ``i``'s sorted position is ``c_i = #{j at or before i in descending order}`` and its prefix sum
    ``S_i``; the support is the entries with ``v_i > (S_i - 1) / c_i``, the threshold that of the last one."""
    before = descending_order(vector)  # [i, j]: j comes at or before i
    count = before.sum(axis=-1)
    prefix = (before * vector).sum(axis=-1) - 1.0
    support = vector * count > prefix
    last = count == jnp.max(jnp.where(support, count, 0))
    threshold = (jnp.where(last, prefix, 0.0)).sum() / (jnp.where(last, count, 0)).sum()
    return jnp.maximum(vector - threshold, 0.0)


def descending_order(vector: jax.Array) -> jax.Array:
    """Boolean [K, K]: ``[i, j]`` when entry ``j`` comes at or before entry ``i`` in descending order, ties by
    lower index (a stable sort of ``-vector``)."""
    index = jnp.arange(vector.shape[-1])
    other, this = vector[None, :], vector[:, None]
    return (other > this) | ((other == this) & (index[None, :] <= index[:, None]))


def requirement_from_utility(profile: jax.Array, weights: jax.Array, power: jax.Array) -> jax.Array:
    """The paper's ``r = Proj_simplex([grad F(s)]_+)`` [K] at profile ``s`` [K]."""
    scores = jnp.maximum(profile, MIN_SCORE)
    utility = jnp.maximum(power_mean(scores, weights, power), MIN_SCORE)
    gradient = weights * jnp.exp((power - 1.0) * jnp.log(scores / utility))
    return project_to_simplex(jnp.maximum(gradient, 0.0))


def shortfall_utility(profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
    """``F(s) = a . t - M_q(t - s; a)`` (a scalar) of a profile [K] below the teacher's profile ``teacher`` [K]."""
    return weights @ teacher - power_mean(teacher - profile, weights, power)


def shortfall_requirement(start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
    """``r = Proj_simplex([grad F(s0)]_+)`` [K] of :func:`shortfall_utility`: ``grad M_q`` at the shortfalls ``t - s0``."""
    return requirement_from_utility(teacher - start_profile, weights, power)


def linear_utility(profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
    """``F(s) = a . s`` (a scalar) of a profile [K] (``power`` and ``teacher`` unused)."""
    return weights @ profile


def linear_requirement(start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
    """The weights [K] themselves: a linear utility's requirement."""
    return weights


def scores_utility(profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
    """:func:`power_mean` of the scores (``teacher`` unused)."""
    return power_mean(profile, weights, power)


def scores_requirement(start_profile: jax.Array, weights: jax.Array, power: jax.Array, teacher: jax.Array) -> jax.Array:
    """:func:`requirement_from_utility` at the start profile (``teacher`` unused)."""
    return requirement_from_utility(start_profile, weights, power)


FAMILIES = {
    "linear": (linear_utility, linear_requirement),
    "scores": (scores_utility, scores_requirement),
    "shortfall": (shortfall_utility, shortfall_requirement),
}
"""Each family of :data:`read_env.utility.UTILITIES` in JAX, by name: (utility, requirement), both
``(profile [K], weights [K], power, teacher [K]) -> ...``."""

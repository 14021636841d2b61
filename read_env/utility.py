"""Nonlinear task utility ``F_tau(s)`` and the requirement vector it implies, ``r_tau = Proj([grad F_tau(s)]_+)``.

A task's utility is a weighted power mean of its capability scores (the CES form of the economics
literature; the issue's "weighted power means"), with weights ``a`` [K] on the simplex and power ``p``::

    F(s) = (sum_c a_c * s_c^p)^(1/p)          p != 0
    F(s) = prod_c s_c^(a_c)                   p == 0 (geometric mean)

``p = 1`` is the linear utility ``a . s`` of ``ReAD-Surrogate-v0``; ``p < 1`` makes capabilities
complements (the weakest required capability limits the task), more so as ``p`` falls. ``F`` is
homogeneous of degree 1, so utilities stay in profile units ([0, 1]). Its gradient is
``dF/ds_c = a_c * (s_c / F)^(p - 1)``.

The paper defines the requirement as the local linearization of the utility projected onto the simplex,
computed once per run at the start profile: ``r = Proj_simplex([grad F(s_0)]_+)`` (Euclidean projection).
For ``p = 1`` this is ``a`` itself.

Three families, objects of this module (:data:`UTILITIES`, by name), all linear at power 1 (``F = a . s``):

* ``LINEAR`` (``"linear"``; ``ReAD-Surrogate-v0``, ``ReAD-Fitted``): ``F = a . s`` for every task, the power mean at
  ``p = 1``; nothing is drawn.
* ``SCORES`` (``"scores"``; ``ReAD-Surrogate-v1``): the power mean of the scores above, ``F = M_p(s; a)``, at the
  task card's power.
* ``SHORTFALL`` (``"shortfall"``; ``ReAD-Surrogate-v2``): the card's linear utility less a power mean of the
  *shortfalls from the teacher* ``d = t - s`` (``t`` the teacher's profile, ``d > 0`` since the student stays below it)::

      F(s) = a . t - M_q(t - s; a),      q >= 1          dF/ds_c = a_c * (d_c / M_q(d))^(q - 1)

  ``q = 1`` is ``a . s``; ``q > 1`` penalizes uneven shortfalls, so the capabilities furthest below the teacher
  are complements (the task is limited by what it lacks most). The requirement at the start is the card's
  weight times ``(room to gain / mean room)^(q - 1)``, room to gain being ``t_c - s0_c``.

Why v2 changes family. A power ``p < 1`` of raw scores gives a low *score* a high marginal value whatever its
room: at the paper's start profile the geometric mean gives reasoning (8.72 points, teacher 10.51: 1.8 points
to gain) 0.48-0.66 of ``r``, the most of any capability, on each of the 5 multi-capability cards that name it,
coding_assistant included (card weight 0.15), so ``w = r`` spends the budget where little can be gained. Normalising scores by the
teacher or by the room to gain does not cure this: ``r`` is a gradient per *point* of score, so normalising
``s_c`` by a scale ``t_c`` or ``t_c - s0_c`` multiplies capability ``c``'s gradient by ``1 / t_c`` (10x for
reasoning) or ``1 / (t_c - s0_c)`` (56x): progress ``(s - s0) / (t - s0)`` puts reasoning on top of ``r`` on 5
of the 7 cards.
Shortfalls from the teacher tilt the card toward room to gain instead, which is what a budget buys.

Calibration of ``q`` (``tasks.MULTI_TASK_SHORTFALL_POWER = 1.25``), on the paper's world, noise off, 20
steps, over the 7 multi-capability tasks, against two criteria only (no agent enters it):
(a) ``w = r`` beats uniform on every task at 20M, 80M and 150M tokens (as the paper's task-static beats
uniform) and (b) the top capability of ``r`` is the one the card weighs most. (a) holds for ``q >= 1.2``
(worst task, long_document_qa: +0.004 points at 80M for 1.2, +0.08 for 1.25; linear ``q = 1`` fails it,
-0.36 at 150M), (b) for ``q <= 1.3`` (beyond it steerability's 40.8 points of room overtake tool use's 6.1
on agentic_tool_use); 1.25 is the middle. For comparison, v1's geometric mean meets (b) on 1 task of 7 and
(a) on 3 of 7 at 20M and at 150M; the teacher-normalised geometric mean meets (b) but not (a) on
long_document_qa at 150M (-0.15); progress ``(s - s0) / (t - s0)`` fails both on 6 of 7 tasks.
``tests/test_surrogate_v2.py`` checks (a) and (b) on all 7 tasks and the ends of this interval.
"""

from __future__ import annotations

from typing import ClassVar

import numba
import numpy as np

from read_env.tasks import MULTI_CAPABILITY_TASKS, MULTI_TASK_SHORTFALL_POWER, RANDOM_TASK, TASKS

MIN_SCORE = 1e-6
"""Scores are floored here before powers and logarithms (a power mean with p <= 0 is 0 at a zero score)."""


def _as_rows(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Broadcast to contiguous float64 rows: profile and weights [M, K], power [M], and the batch shape to restore."""
    power = np.asarray(power, dtype=np.float64)
    shape = np.broadcast_shapes(np.shape(profile), np.shape(weights), power.shape + (1,))

    def rows(array: np.ndarray, width: int) -> np.ndarray:
        full = shape[:-1] + (width,)
        array = np.asarray(array, dtype=np.float64)
        return np.ascontiguousarray((array if array.shape == full else np.broadcast_to(array, full)).reshape(-1, width))

    return rows(profile, shape[-1]), rows(weights, shape[-1]), rows(power[..., None], 1)[:, 0], shape[:-1]


def power_mean(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> np.ndarray:
    """``F(s)`` [...] of profiles [..., K] in [0, 1] with weights [..., K] on the simplex and power [...] or scalar."""
    profile, weights, power, batch = _as_rows(profile, weights, power)
    return power_mean_rows(profile, weights, power).reshape(batch)


@numba.njit(cache=True)
def power_mean_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``F(s)`` [M] of rows: profiles and weights [M, K], powers [M] (contiguous float64); compiled, one row at a
    time, so a row's value does not depend on the other rows (single and vector environments agree bit for bit)."""
    utility = np.empty(power.shape[0])
    for r in range(power.shape[0]):
        utility[r] = power_mean_row(profile[r], weights[r], power[r])
    return utility


@numba.njit(cache=True)
def power_mean_row(profile: np.ndarray, weights: np.ndarray, power: float) -> float:
    """``F(s)`` of one profile [K] with weights [K] and power ``power`` (compiled)."""
    total = 0.0
    for c in range(profile.shape[0]):
        total += weights[c] * _power_term(profile[c], power)
    return _power_total(total, power)


@numba.njit(cache=True, inline="always")
def _power_term(score: float, power: float) -> float:
    """A score's term in a power mean's sum: ``s``, ``log s`` or ``s^p`` (floored at MIN_SCORE unless p = 1)."""
    if power == 1.0:
        return score
    if power == 0.0:
        return np.log(max(score, MIN_SCORE))
    return np.exp(power * np.log(max(score, MIN_SCORE)))


@numba.njit(cache=True, inline="always")
def _power_total(total: float, power: float) -> float:
    """The power mean of a weighted sum of :func:`_power_term`'s: ``total``, ``exp(total)`` or ``total^(1/p)``."""
    if power == 1.0:
        return total
    return np.exp(total) if power == 0.0 else np.exp((1.0 / power) * np.log(total))


def project_to_simplex(vector: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``vector`` [..., K] onto the probability simplex (Duchi et al., 2008)."""
    rows = np.ascontiguousarray(np.asarray(vector, dtype=np.float64).reshape(-1, np.shape(vector)[-1]))
    return _project_rows(rows).reshape(np.shape(vector))


def requirement_from_utility(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray) -> np.ndarray:
    """The paper's ``r = Proj_simplex([grad F(s)]_+)`` [..., K] at profile ``s`` [..., K]."""
    profile, weights, power, batch = _as_rows(profile, weights, power)
    return _requirement_rows(profile, weights, power).reshape(*batch, -1)


@numba.njit(cache=True)
def _gradient_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``grad F`` [M, K] of rows (compiled, one row at a time)."""
    out = np.empty_like(profile)
    for r in range(power.shape[0]):
        scores = np.maximum(profile[r], MIN_SCORE)
        utility = max(power_mean_row(scores, weights[r], power[r]), MIN_SCORE)
        for c in range(scores.shape[0]):
            out[r, c] = weights[r, c] * np.exp((power[r] - 1.0) * np.log(scores[c] / utility))
    return out


@numba.njit(cache=True)
def _project_row(vector: np.ndarray, out: np.ndarray) -> None:
    """``out`` [K]: the projection of ``vector`` [K] onto the simplex (sort, then the largest support)."""
    ordered = np.sort(vector)[::-1]
    cumulative = np.cumsum(ordered) - 1.0
    count = 0
    for i in range(ordered.shape[0]):
        if ordered[i] - cumulative[i] / (i + 1) > 0:
            count += 1
    threshold = cumulative[count - 1] / count
    for c in range(vector.shape[0]):
        out[c] = max(vector[c] - threshold, 0.0)


@numba.njit(cache=True)
def _project_rows(vectors: np.ndarray) -> np.ndarray:
    """Projections [M, K] of rows [M, K] onto the simplex."""
    out = np.empty_like(vectors)
    for r in range(vectors.shape[0]):
        _project_row(vectors[r], out[r])
    return out


@numba.njit(cache=True)
def _requirement_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``Proj_simplex([grad F]_+)`` [M, K] of rows (compiled, one row at a time)."""
    return _project_rows(np.maximum(_gradient_rows(profile, weights, power), 0.0))


def task_utility(profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray, teacher: np.ndarray | None = None) -> np.ndarray:
    """``F(s)`` [...] of profiles [..., K]: the ``"scores"`` family without ``teacher``, the ``"shortfall"``
    family ``a . t - M_q(t - s; a)`` with the teacher's profile ``teacher`` [..., K] (computed by :func:`utility_row`)."""
    if teacher is None:
        return power_mean(profile, weights, power)
    profile, weights, power, batch = _as_rows(np.broadcast_arrays(profile, teacher)[0], weights, power)
    teacher = np.ascontiguousarray(np.broadcast_to(teacher, (*batch, profile.shape[-1])), dtype=np.float64).reshape(profile.shape)
    return _utility_rows(profile, weights, power, teacher).reshape(batch)


def task_requirement(start_profile: np.ndarray, weights: np.ndarray, power: float | np.ndarray, teacher: np.ndarray | None = None) -> np.ndarray:
    """The paper's ``r = Proj_simplex([grad F(s0)]_+)`` [..., K] of :func:`task_utility` at ``start_profile`` [..., K].

    For the shortfall family ``dF/ds = grad M_q`` at ``d = t - s0``, so it is :func:`requirement_from_utility` there."""
    return requirement_from_utility(start_profile if teacher is None else teacher - start_profile, weights, power)


@numba.njit(cache=True)
def utility_row(profile: np.ndarray, weights: np.ndarray, power: float, teacher: np.ndarray) -> float:
    """``F(s)`` of one profile [K] (compiled): the scores family for ``teacher`` of length 0, else the shortfall
    family with the teacher's profile ``teacher`` [K]."""
    if teacher.shape[0] == 0:
        return power_mean_row(profile, weights, power)
    linear, total = 0.0, 0.0
    for c in range(profile.shape[0]):
        linear += weights[c] * teacher[c]
        total += weights[c] * _power_term(teacher[c] - profile[c], power)
    return linear - _power_total(total, power)


@numba.njit(cache=True)
def _utility_rows(profile: np.ndarray, weights: np.ndarray, power: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """:func:`utility_row` of rows [M, K] (teacher [M, K] or [M, 0]), one row at a time."""
    utility = np.empty(power.shape[0])
    for r in range(power.shape[0]):
        utility[r] = utility_row(profile[r], weights[r], power[r], teacher[r])
    return utility


class Utility:
    """A utility family: a task's ``power`` (its card's, or drawn for a random task), its utility ``F(s)`` and the
    requirement it implies at the start profile. ``teacher`` arguments are the episode world's teacher profile
    [..., K], which only the shortfall family reads."""

    name: ClassVar[str]
    random_powers: ClassVar[tuple[float, ...]] = ()
    """Powers a random task draws from, uniformly (none: power 1, nothing drawn)."""

    def card_power(self, task_name: str) -> float:
        """The power of a named task (1, linear, for a custom requirement)."""
        return 1.0

    def power(self, task_name: str, rng: np.random.Generator | None) -> float:
        """The power of an episode of ``task_name``: a random task draws one of :attr:`random_powers` from ``rng``;
        otherwise :meth:`card_power` (``rng`` unused, may be ``None``)."""
        if task_name == RANDOM_TASK and self.random_powers:
            return float(self.random_powers[int(rng.integers(len(self.random_powers)))])
        return self.card_power(task_name)

    def teacher_columns(self, teacher: np.ndarray) -> np.ndarray:
        """The teacher columns [..., K or 0] of the compiled step (:func:`utility_row`): width 0 but for the shortfall family."""
        return teacher[..., :0]

    def value(self, profile: np.ndarray, weights: np.ndarray, power: np.ndarray | float, teacher: np.ndarray) -> np.ndarray:
        """``F(s)`` [...] of profiles [..., K]."""
        return power_mean(profile, weights, power)

    def requirement(self, start_profile: np.ndarray, weights: np.ndarray, power: np.ndarray | float, teacher: np.ndarray) -> np.ndarray:
        """The observed requirement ``r = Proj_simplex([grad F(s0)]_+)`` [..., K] at ``start_profile`` [..., K]."""
        return requirement_from_utility(start_profile, weights, power)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Utility):
    """``F = a . s`` whatever the task (the power mean at power 1); its requirement is the weights ``a`` themselves."""

    name = "linear"

    def requirement(self, start_profile: np.ndarray, weights: np.ndarray, power: np.ndarray | float, teacher: np.ndarray) -> np.ndarray:
        shape = np.broadcast_shapes(np.shape(start_profile), np.shape(weights))
        return np.broadcast_to(np.asarray(weights, dtype=np.float64), shape).copy()


class Scores(Utility):
    """``F = M_p(s; a)``, the card's power ``p``; a random task draws it from (1, 0.5, 0, -1): linear to strongly complementary."""

    name = "scores"
    random_powers = (1.0, 0.5, 0.0, -1.0)

    def card_power(self, task_name: str) -> float:
        return float(TASKS[task_name].power) if task_name in TASKS else 1.0


class Shortfall(Utility):
    """``F = a . t - M_q(t - s; a)``: ``q = MULTI_TASK_SHORTFALL_POWER`` for a multi-capability task, 1 for a
    single-capability one; a random task draws it from (1, 1.25, 1.5, 2)."""

    name = "shortfall"
    random_powers = (1.0, 1.25, 1.5, 2.0)

    def card_power(self, task_name: str) -> float:
        return MULTI_TASK_SHORTFALL_POWER if task_name in MULTI_CAPABILITY_TASKS else 1.0

    def teacher_columns(self, teacher: np.ndarray) -> np.ndarray:
        return teacher

    def value(self, profile: np.ndarray, weights: np.ndarray, power: np.ndarray | float, teacher: np.ndarray) -> np.ndarray:
        return task_utility(profile, weights, power, teacher)

    def requirement(self, start_profile: np.ndarray, weights: np.ndarray, power: np.ndarray | float, teacher: np.ndarray) -> np.ndarray:
        return task_requirement(start_profile, weights, power, teacher)


LINEAR, SCORES, SHORTFALL = Linear(), Scores(), Shortfall()
UTILITIES: dict[str, Utility] = {utility.name: utility for utility in (LINEAR, SCORES, SHORTFALL)}
"""The utility families by name."""


def resolve_utility(utility: str | Utility) -> Utility:
    """A :class:`Utility` or the name of one (``UTILITIES``); ``ValueError`` naming the known ones otherwise."""
    if isinstance(utility, Utility):
        return utility
    if isinstance(utility, str) and utility in UTILITIES:
        return UTILITIES[utility]
    raise ValueError(f"unknown utility family {utility!r}; expected one of {list(UTILITIES)}")

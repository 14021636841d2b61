"""Fit a surrogate world (``read_env.surrogate.world.World``) to recorded episodes of any ReAD environment.

Input: :class:`read_env.episodes.Episode` records (:func:`read_env.episodes.load_episodes`).

The fit (deterministic, least squares, numpy only):

* ``student`` = mean start profile; ``teacher`` = the recorded teacher profile (``ReAD-Mini-v0`` writes it)
  or 1, raised to the highest profile observed (a student may pass a noisy teacher), at least student + 0.01;
* calibration budgets ``(B/4, B/2, B)`` with ``B`` the largest episode budget;
* for each forgetting constant ``F`` on a grid (``B`` times 1/64 ... 16, and no forgetting): exposures from
  ``World.advance``; the world's latent gain is linear in its response coefficients, so each measured
  column's latent target ``sigma_j^-1(s_j - s0_j)`` is regressed (ridge) on the responses
  ``1 - exp(-e_i / tau_m)`` of every capability ``i`` and time constant ``m``; the coefficients give the
  transfer matrices at the three budgets (clipped to 99% of the room the world allows);
* the ``F`` with the smallest profile error on the training episodes wins;
* with ``path_terms`` (for ``ReAD-Surrogate-v1``), that world then becomes a
  :class:`~read_env.surrogate.path_dependent_world.PathWorld` whose two path-dependent terms are chosen on a grid by the
  same training error: the default prerequisite graph scaled by ``PREREQUISITE_SCALES`` (0: none) and
  ``repair_tokens`` at ``REPAIR_FACTORS`` times ``B`` (1e30: harm is never repaired, v0's dynamics). The grid
  holds v0's dynamics (scale 0, no repair), so the v1 fit's training error is never above the v0 fit's. The
  transfer matrices stay the v0 fit's (a coordinate fit, not a joint one).

Fit error: root mean square, in points (0-100), of the noise-free world's profiles (``World.profile`` after
each recorded step, fed the recorded allocations and tokens) against the measured profiles, on the training
episodes and on held-out episodes (every ``round(1 / holdout)``-th episode in input order), next to the
error of predicting no change (each step's profile = the episode's start profile). ``probe_noise``
of the fitted world is the mean recorded probe standard error (else the training error).

The output is calibration data in the schema of ``paper_calibration.json`` (plus ``prerequisites`` and
``repair_tokens`` with ``path_terms``), its ``format`` (:data:`~read_env.surrogate.world.CALIBRATED_FORMAT`), the
``env_id`` it is for (:func:`calibrated_env_id`) and a ``fit`` report: ``gym.make("ReAD-Surrogate-v0",
world="world.json", budget_tokens=B)``, or ``ReAD-Surrogate-v1`` (and v2) with ``path_terms``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from read_env.episodes import Episode
from read_env.surrogate.path_dependent_world import MAX_PREREQUISITE_GAIN, PathWorld, default_prerequisites
from read_env.registration import SURROGATE_ID, SURROGATE_V1_ID
from read_env.surrogate.world import CALIBRATED_FORMAT, DEFAULT_TRAIN_NOISE, World

FORGETTING_FACTORS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 8.0, 16.0, 1e6)
"""Forgetting constants tried, in units of the largest episode budget (1e6: no forgetting)."""
PREREQUISITE_SCALES = (0.0, 0.5, 1.0, 2.0)
"""Factors on the default prerequisite graph tried with ``path_terms`` (gains are capped at 2)."""
REPAIR_FACTORS = (1 / 64, 1 / 16, 1 / 4, 1.0, 1e30)
"""``repair_tokens`` tried with ``path_terms``, in units of the largest episode budget (1e30: no repair)."""
BUDGET_FRACTIONS = (0.25, 0.5, 1.0)
ROOM = 0.99
RIDGE = 1e-3


def _saturate(latent: np.ndarray, student: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """The world's profile change for a latent gain [..., K] (documented in ``read_env.surrogate.world``)."""
    scale = np.where(latent >= 0, gap, student)
    return scale * np.tanh(latent / scale)


def _unsaturate(change: np.ndarray, student: np.ndarray, gap: np.ndarray) -> np.ndarray:
    scale = np.where(change >= 0, gap, student)
    return scale * np.arctanh(np.clip(change / scale, -ROOM, ROOM))


def simulate(world: World, episode: Episode) -> np.ndarray:
    """The noise-free profiles [T, K] of ``world`` after each step of ``episode``."""
    return world.profile(_exposures(world, episode))


def _exposures(world: World, episode: Episode) -> np.ndarray:
    exposure = world.initial_state()
    out = []
    for tokens, allocation in zip(episode.tokens, episode.allocations):
        exposure = world.advance(exposure, tokens, allocation, None)
        out.append(exposure)
    return np.array(out)


def rmse_points(world: World, episodes: Sequence[Episode]) -> float | None:
    """Root mean square profile error (points, 0-100) of ``world`` over the steps of ``episodes``; None if none."""
    if not episodes:
        return None
    errors = np.concatenate([(simulate(world, episode) - episode.profiles).ravel() for episode in episodes])
    return float(100 * np.sqrt(np.mean(errors**2)))


def no_change_rmse_points(episodes: Sequence[Episode]) -> float | None:
    """The same error for the prediction "the profile stays at the episode's start profile"; None if no episode."""
    if not episodes:
        return None
    errors = np.concatenate([(episode.profiles - episode.start).ravel() for episode in episodes])
    return float(100 * np.sqrt(np.mean(errors**2)))


def _fit_transfer(base: World, episodes: Sequence[Episode]) -> np.ndarray:
    """Least-squares transfer matrices [3, K, K] of the world ``base`` (its forgetting) to ``episodes``."""
    k, gap = len(base.capabilities), base.gap
    exposures = np.concatenate([_exposures(base, episode) for episode in episodes])  # [N, K]
    features = (1.0 - np.exp(-exposures[:, :, None] / base.time_constants)).reshape(len(exposures), -1)  # [N, K*3]
    targets = _unsaturate(np.concatenate([episode.profiles for episode in episodes]) - base.student, base.student, gap)  # [N, K]
    gram = features.T @ features + RIDGE * len(features) * np.eye(features.shape[1])
    coefficients = np.linalg.solve(gram, features.T @ targets).reshape(k, 3, k)  # [i, m, j]
    basis = 1.0 - np.exp(-base.calibration_budgets[:, None] / base.time_constants[None, :])  # [b, m]
    latent = np.einsum("bm,imj->bij", basis, coefficients)
    change = _saturate(latent, base.student, gap)
    return np.clip(change, -ROOM * base.student, ROOM * gap)


def fit_world(episodes: Sequence[Episode], holdout: float = 0.2, path_terms: bool = False) -> tuple[World, dict[str, Any]]:
    """The world fitted to the training share of ``episodes`` and its fit report (see the module docstring)."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    every = round(1 / holdout) if holdout > 0 else 0
    held = [bool(every) and index % every == every - 1 for index in range(len(episodes))]
    heldout = [episode for episode, out in zip(episodes, held) if out]
    training = [episode for episode, out in zip(episodes, held) if not out]
    if not training:
        raise ValueError("no training episode left: give more episodes or a smaller holdout")
    capabilities = episodes[0].capabilities
    observed = np.concatenate([np.vstack([episode.start, episode.profiles]) for episode in training])
    teachers = [episode.teacher for episode in training if episode.teacher is not None]
    student = np.clip(np.mean([episode.start for episode in training], axis=0), 0.005, 0.98)
    teacher = np.maximum(np.mean(teachers, axis=0) if teachers else np.ones(len(capabilities)), observed.max(axis=0))
    teacher = np.clip(np.maximum(teacher, student + 0.01), None, 1.0)
    largest = max(episode.budget_tokens for episode in episodes)
    budgets = [fraction * largest for fraction in BUDGET_FRACTIONS]
    stderrs = [episode.probe_stderr for episode in training if episode.probe_stderr is not None]
    best: tuple[float, World] | None = None
    for factor in FORGETTING_FACTORS:
        base = World(capabilities, student, teacher, budgets, np.zeros((3, len(capabilities), len(capabilities))), factor * largest)
        world = World(capabilities, student, teacher, budgets, _fit_transfer(base, training), factor * largest, DEFAULT_TRAIN_NOISE)
        error = rmse_points(world, training)
        if best is None or error < best[0]:
            best = (error, world)
    error, world = best
    probe_noise = float(np.mean(stderrs)) if stderrs else error / 100
    world = World(capabilities, student, teacher, budgets, world.transfer, world.forgetting_tokens, DEFAULT_TRAIN_NOISE, probe_noise)
    if path_terms:
        error, world = _fit_path_terms(world, training, largest)
    report = {
        "rmse_train_points": error,
        "rmse_heldout_points": rmse_points(world, heldout),
        "no_change_rmse_train_points": no_change_rmse_points(training),
        "no_change_rmse_heldout_points": no_change_rmse_points(heldout),
        "train_episodes": [episode.source for episode in training],
        "heldout_episodes": [episode.source for episode in heldout],
        "forgetting_factors_tried": list(FORGETTING_FACTORS),
        "budget_tokens": largest,
    }
    return world, report


def _fit_path_terms(world: World, training: Sequence[Episode], largest: int) -> tuple[float, PathWorld]:
    """The best :class:`PathWorld` on the grid of ``PREREQUISITE_SCALES`` x ``REPAIR_FACTORS`` (training error)."""
    graph = default_prerequisites(world.capabilities)
    arguments = (world.capabilities, world.student, world.teacher, world.calibration_budgets, world.transfer, world.forgetting_tokens, world.train_noise, world.probe_noise)
    candidates = []
    for scale in PREREQUISITE_SCALES:
        for factor in REPAIR_FACTORS:
            candidate = PathWorld(*arguments, prerequisites=np.minimum(scale * graph, MAX_PREREQUISITE_GAIN), repair_tokens=factor * largest)
            candidates.append((rmse_points(candidate, training), candidate))
    return min(candidates, key=lambda pair: pair[0])


def calibrated_env_id(world: World) -> str:
    """The environment a fitted calibrated world is for: ``ReAD-Surrogate-v1`` for a :class:`PathWorld` (v2 takes it
    too), else ``ReAD-Surrogate-v0``."""
    return SURROGATE_V1_ID if isinstance(world, PathWorld) else SURROGATE_ID


def write_world(world: World, report: dict[str, Any], path: str | Path) -> Path:
    """Write the world's calibration data with its format, the environment id it is for and the fit report under
    ``"fit"``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": CALIBRATED_FORMAT, "env_id": calibrated_env_id(world), **world.to_calibration(), "fit": report}
    path.write_text(json.dumps(data, indent=1))
    return path

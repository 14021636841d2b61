"""Fit a surrogate world (``read_env.surrogate.world.World``) to recorded episodes of any ReAD environment.

Inputs: run folders of ``ReAD-v0`` / ``ReAD-Mini-v0`` (a ``run_dir`` with ``episode-*/history.jsonl``, one
episode folder, or its ``history.jsonl``), recorded trajectories (``read_env.trajectory`` JSON files) and data
sets of ``read-env log-episodes`` or ``read-env compare`` (a folder with ``episodes.jsonl``, or the file). Each
episode gives its start profile [K], and per step the executed allocation [K], the step's tokens and the
measured profile [K]; steps that ended in a backend error are dropped. Data-set episodes also carry their
schedule (agent and seed), task, requirement and final utility, which validation uses.

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
  :class:`~read_env.surrogate.path_world.PathWorld` whose two path-dependent terms are chosen on a grid by the
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from read_env.surrogate.path_world import MAX_PREREQUISITE_GAIN, PathWorld, default_prerequisites
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


@dataclass
class Episode:
    """One recorded episode: ``start`` [K], ``tokens`` [T], ``allocations`` [T, K], ``profiles`` [T, K]."""

    source: str
    capabilities: list[str]
    budget_tokens: int
    start: np.ndarray
    tokens: np.ndarray
    allocations: np.ndarray
    profiles: np.ndarray
    teacher: np.ndarray | None = None
    probe_stderr: float | None = None
    stderrs: np.ndarray | None = None
    """The probe's standard errors per step [T, K], where recorded."""
    schedule: str = ""
    """What chose the allocations (data sets: ``agent/seed``; the same schedule on every task and budget)."""
    task: str = ""
    requirement: np.ndarray | None = None
    final_utility: float | None = None
    utility_power: float = 1.0
    """The environment's task utility is ``power_mean(s, requirement, utility_power)`` (1: linear, as
    ReAD-Mini's ``r . accuracy``; ``ReAD-Surrogate-v1`` data: the task card's weights and power)."""


def _from_history(path: Path) -> Episode:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records or "config" not in records[0]:
        raise ValueError(f"{path} is not a run folder history (its first line must hold the config and start profile)")
    config = records[0]["config"]
    steps = [record for record in records[1:] if "error" not in record]
    stderr = [np.mean(record["probe_stderr"]) for record in steps if "probe_stderr" in record]
    teacher = config.get("teacher_profile")
    return Episode(
        str(path),
        list(config["capabilities"]),
        int(config["budget_tokens"]),
        np.array(records[0]["profile"], dtype=float),
        np.array([record["tokens_used"] for record in steps], dtype=float),
        np.array([record["allocation"] for record in steps], dtype=float).reshape(len(steps), -1),
        np.array([record["profile"] for record in steps], dtype=float).reshape(len(steps), -1),
        None if teacher is None else np.array(teacher, dtype=float),
        float(np.mean(stderr)) if stderr else None,
    )


def _from_trajectory(path: Path) -> Episode:
    from read_env.capabilities import PAPER_CAPABILITIES
    from read_env.trajectory import Trajectory

    trajectory = Trajectory.load(path)
    steps = trajectory.steps
    capabilities = trajectory.env_kwargs.get("capabilities") or list(PAPER_CAPABILITIES)
    return Episode(
        str(path),
        list(capabilities),
        int(trajectory.env_kwargs.get("budget_tokens", 0)) or int(sum(step["info"]["tokens_used"] for step in steps)),
        np.array(trajectory.initial_observation["profile"], dtype=float),
        np.array([step["info"]["tokens_used"] for step in steps], dtype=float),
        np.array([step["info"]["allocation"] for step in steps], dtype=float).reshape(len(steps), -1),
        np.array([step["observation"]["profile"] for step in steps], dtype=float).reshape(len(steps), -1),
    )


def _from_records(path: Path) -> list[Episode]:
    """The episodes of a data set's ``episodes.jsonl`` (``read-env log-episodes`` / ``compare``), in file order, each key once."""
    from read_env.capabilities import PAPER_CAPABILITIES
    from read_env.registration import SURROGATE_V1_ID
    from read_env.tasks import TASKS

    settings = [path.parent / name for name in ("card.json", "config.json") if (path.parent / name).is_file()]
    env = json.loads(settings[0].read_text()) if settings else {}
    power_mean_utility = (env.get("env_id") or env.get("env", {}).get("env_id")) == SURROGATE_V1_ID  # v1: the card's power mean
    records: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interruption: compare runs that episode again
        records.setdefault(record["key"], record)
    episodes = []
    for record in records.values():
        stderrs = np.array(record["probe_stderrs"], dtype=float) if "probe_stderrs" in record else None
        capabilities = list(record.get("capabilities") or PAPER_CAPABILITIES)
        card = TASKS.get(record["task"]) if power_mean_utility else None
        episodes.append(Episode(
            f"{path}#{record['agent']}/{record['task']}/{record['budget_tokens']}/{record['seed']}",
            capabilities,
            int(record["budget_tokens"]),
            np.array(record["initial_profile"], dtype=float),
            np.array(record["tokens"], dtype=float),
            np.array(record["allocations"], dtype=float).reshape(len(record["tokens"]), -1),
            np.array(record["profiles"], dtype=float).reshape(len(record["tokens"]), -1),
            None,
            None if stderrs is None else float(stderrs.mean()),
            stderrs,
            f"{record['agent']}/{record['seed']}",
            record["task"],
            np.array(record["requirement"], dtype=float) if card is None else card.requirement(capabilities),
            float(record["final_utility"]),
            1.0 if card is None else float(card.power),
        ))  # fmt: skip
    return episodes


def load_episodes(paths: Sequence[str | Path]) -> list[Episode]:
    """Every episode under ``paths`` (run dirs, episode folders, history.jsonl or trajectory .json files, data
    sets with ``episodes.jsonl``), in order.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for a file of another format or an
    episode without a completed step.
    """
    episodes = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"no history or trajectory at {path}")
        if path.name == "episodes.jsonl" or (path.is_dir() and (path / "episodes.jsonl").is_file()):
            found = _from_records(path if path.is_file() else path / "episodes.jsonl")
            if not found or any(len(episode.tokens) == 0 for episode in found):
                raise ValueError(f"{path} holds no episode, or an episode without a completed step")
            episodes += found
            continue
        if path.is_dir():
            files = [path / "history.jsonl"] if (path / "history.jsonl").is_file() else sorted(path.glob("**/history.jsonl"))
            if not files:
                raise ValueError(f"{path} holds no history.jsonl")
        else:
            files = [path]
        for file in files:
            episode = _from_trajectory(file) if file.suffix == ".json" else _from_history(file)
            if len(episode.tokens) == 0:
                raise ValueError(f"{file} has no completed step")
            episodes.append(episode)
    if not episodes:
        raise ValueError("no episodes given")
    names = {tuple(episode.capabilities) for episode in episodes}
    if len(names) > 1:
        raise ValueError(f"episodes measure different capabilities: {sorted(names)}")
    return episodes


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
    world = World(capabilities, student, teacher, budgets, world.transfer, world.forgetting_tokens, DEFAULT_TRAIN_NOISE, float(np.mean(stderrs)) if stderrs else error / 100)
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

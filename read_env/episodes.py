"""Recorded episodes of any ReAD environment, as the world fits (:mod:`read_env.fit`) and benchmarks read them.

Inputs: run folders of ``ReAD-v0`` / ``ReAD-Mini-v0`` (a ``run_dir`` with ``episode-*/history.jsonl``, one
episode folder, or its ``history.jsonl``), recorded trajectories (``read_env.trajectory`` JSON files) and data
sets of ``read-env log-episodes`` or ``read-env compare`` (a folder with ``episodes.jsonl``, or the file). Each
episode gives its start profile [K], and per step the executed allocation [K], the step's tokens and the
measured profile [K]; steps that ended in a backend error are dropped. Data-set episodes also carry their
schedule (agent and seed), task, requirement and final utility, which validation uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.registration import SURROGATE_V1_ID
from read_env.tasks import TASKS
from read_env.trajectory import Trajectory


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

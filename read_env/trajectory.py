"""Episode trajectories: record one with a wrapper, save it as JSON, load it, replay it.

``RecordTrajectory`` seeds every episode explicitly (drawing a seed when ``reset`` gets none), so a recorded
episode of a deterministic environment (the surrogate) replays exactly: same observations, rewards and
infos. Floats are stored as JSON numbers, which round-trip float64 exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from read_env.records import step_record, to_jsonable

FORMAT_VERSION = 1


@dataclass
class Trajectory:
    """One episode: how the environment was made and reset, then per step the action and what came back."""

    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    options: dict[str, Any]
    initial_observation: dict[str, list[float]]
    steps: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trajectory file at {path}")
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: trajectory format {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        return cls(**data)


class RecordTrajectory(gym.Wrapper):
    """Record the current episode in ``self.trajectory`` (a :class:`Trajectory`); ``save(path)`` writes it."""

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env)
        if env.spec is None:
            raise ValueError("RecordTrajectory needs an environment made with gym.make (its spec names how to remake it)")
        self._seeds = np.random.default_rng(seed)
        self.trajectory: Trajectory | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        seed = int(self._seeds.integers(2**31)) if seed is None else int(seed)
        observation, info = self.env.reset(seed=seed, options=options)
        self.trajectory = Trajectory(self.env.spec.id, dict(self.env.spec.kwargs), seed, to_jsonable(dict(options or {})), to_jsonable(observation))
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self.trajectory is None:
            raise RuntimeError("call reset() before step()")
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.trajectory.steps.append(
            {
                "action": to_jsonable(np.asarray(action)),
                "observation": to_jsonable(observation),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "info": step_record(info),
            }
        )
        return observation, reward, terminated, truncated, info

    def save(self, path: str | Path) -> Path:
        if self.trajectory is None:
            raise RuntimeError("nothing recorded yet: call reset() first")
        return self.trajectory.save(path)


def replay(trajectory: Trajectory | str | Path) -> Trajectory:
    """Remake the environment, reset it as recorded and step the recorded actions; return the new trajectory.

    For a deterministic environment the result equals the recording (``replayed == recorded``).
    """
    if not isinstance(trajectory, Trajectory):
        trajectory = Trajectory.load(trajectory)
    env = RecordTrajectory(gym.make(trajectory.env_id, **trajectory.env_kwargs))
    env.reset(seed=trajectory.seed, options=trajectory.options or None)
    dtype = env.action_space.dtype
    for step in trajectory.steps:
        env.step(np.asarray(step["action"], dtype=dtype))
    env.close()
    return env.trajectory

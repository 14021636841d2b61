"""Trajectories export to JSON and replay exactly."""

import json

import gymnasium as gym
import numpy as np
import pytest

from read_env.trajectory import RecordTrajectory, Trajectory, replay


def record(tmp_path, **kwargs):
    env = RecordTrajectory(gym.make("ReAD-Surrogate-v0", **kwargs), seed=1)
    env.reset(options={"task": "coding_assistant"})
    rng = np.random.default_rng(0)
    terminated = False
    while not terminated:
        _, _, terminated, _, _ = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
    return env.save(tmp_path / "episode.json")


@pytest.mark.parametrize("kwargs", [{}, {"world": "random", "task": "random", "budget_tokens": 80_000_000}])
def test_replay_reproduces_the_recorded_episode_exactly(tmp_path, kwargs):
    path = record(tmp_path, **kwargs)
    recorded = Trajectory.load(path)
    assert len(recorded.steps) == 20 and recorded.steps[-1]["terminated"]
    replayed = replay(path)
    assert json.loads(json.dumps(replayed.__dict__)) == json.loads(path.read_text())


def test_replay_detects_a_tampered_trajectory(tmp_path):
    path = record(tmp_path)
    data = json.loads(path.read_text())
    data["steps"][3]["action"][0] = -data["steps"][3]["action"][0] or 0.5
    path.write_text(json.dumps(data))
    replayed = replay(path)
    assert replayed.steps[3]["reward"] != data["steps"][3]["reward"]


def test_loading_a_missing_trajectory_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        Trajectory.load(tmp_path / "nowhere.json")

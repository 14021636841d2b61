"""Record a surrogate episode as JSON and replay it exactly. Run: ``python examples/record_and_replay.py``."""

import json
import tempfile
from pathlib import Path

import gymnasium as gym

import read_env
from read_env.trajectory import RecordTrajectory, replay

env = RecordTrajectory(gym.make(read_env.DEFAULT_ENV_ID, task="random", world="random"), seed=0)
env.reset()
terminated = False
while not terminated:
    _, _, terminated, _, _ = env.step(env.action_space.sample())
path = env.save(Path(tempfile.mkdtemp()) / "episode.json")
replayed = replay(path)
same = json.loads(json.dumps(replayed.__dict__)) == json.loads(path.read_text())
print(f"recorded {len(replayed.steps)} steps to {path}; replay identical: {same}")

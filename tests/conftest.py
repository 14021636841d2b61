import signal
import subprocess
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import read_env

READ_ENV_IDS = [env_id for env_id in gym.registry if env_id.startswith("ReAD-") and gym.registry[env_id].entry_point.startswith(("read_env.surrogate", "read_env.fitted"))]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{"teacher": 2-layer, "student": 1-layer (same tokenizer), "other": different vocabulary}: random tiny Llamas."""
    from read_env.distill.assets import build_tiny_llama

    root = tmp_path_factory.mktemp("tiny")
    teacher = build_tiny_llama(root / "teacher", num_layers=2, seed=0)
    student = build_tiny_llama(root / "student", num_layers=1, seed=1, tokenizer=teacher)
    other = build_tiny_llama(root / "other", num_layers=1, seed=2, vocab_size=320)
    return {"teacher": str(teacher), "student": str(student), "other": str(other)}


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: tiny models gain nothing from more, and on a shared 2-core machine
    two OpenMP threads next to another busy process slow forward passes down ~20x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def paper_world():
    from read_env.surrogate.world import World

    return World.paper()


def rollout(env, seed, actions):
    """Reset with ``seed``, step ``actions`` (resetting when an episode ends); return everything observed."""
    record = [env.reset(seed=seed)]
    for action in actions:
        outcome = env.step(action)
        record.append(outcome)
        if outcome[2] or outcome[3]:
            record.append(env.reset())
    return record


def assert_same(left, right):
    """Recursive exact equality of observations, rewards and infos."""
    if isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            assert_same(left[key], right[key])
    elif isinstance(left, (tuple, list)):
        assert len(left) == len(right)
        for a, b in zip(left, right):
            assert_same(a, b)
    elif isinstance(left, np.ndarray):
        np.testing.assert_array_equal(left, right)
    else:
        assert left == right, (left, right)


def kill_mid_episode(command: list[str], env: dict[str, str], episode_dir: Path, steps: int) -> int:
    """Run ``command`` (an episode writing ``episode_dir``), SIGKILL it after 2 committed steps; return the committed steps."""
    from read_env.distill.env import read_history

    child = subprocess.Popen(command, env=env)
    history = episode_dir / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 3):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    committed = len(read_history(episode_dir)) - 1
    assert 2 <= committed < steps, "the child should die mid-episode"
    return committed


__all__ = ["READ_ENV_IDS", "assert_same", "kill_mid_episode", "read_env", "rollout"]

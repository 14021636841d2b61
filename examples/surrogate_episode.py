"""One surrogate episode per allocation rule, side by side: uniform, the task's requirement, and a rule
that reacts to the measured profile. Run: ``python examples/surrogate_episode.py``.

``read_env.DEFAULT_ENV_ID`` (``ReAD-Surrogate-v2``, every default's id) reads utility with noise during an episode and reports the
noise-free start and final utility in the last step's info; utility is printed in points (100 x utility).
"""

import gymnasium as gym
import numpy as np

import read_env  # registers the environments


def play(policy, seed=0, **kwargs):
    env = gym.make(read_env.DEFAULT_ENV_ID, action_mode="simplex", render_mode="ansi", **kwargs)
    observation, info = env.reset(seed=seed)
    total, terminated = 0.0, False
    while not terminated:
        observation, reward, terminated, _, info = env.step(policy(observation).astype(np.float32))
        total += reward
    return info["initial_utility"], info["final_utility"], total, env.render()


def uniform(observation):
    return np.full(8, 1 / 8)


def requirement(observation):
    return observation["requirement"].astype(np.float64)


def lagging_first(observation):
    """Weight required capabilities by how far they trail the best-measured one (a simple reactive rule)."""
    need = observation["requirement"].astype(np.float64)
    lag = need * (1.0 - observation["profile"])
    return lag / lag.sum()


if __name__ == "__main__":
    for name, policy in (("uniform", uniform), ("w = r_tau", requirement), ("lagging-first", lagging_first)):
        start, end, total, table = play(policy, task="math_word_problems", budget_tokens=150_000_000)
        print(f"{name:14s} utility {100 * start:.2f} -> {100 * end:.2f} points   return {total:+.4f}")
    print()
    print(table)

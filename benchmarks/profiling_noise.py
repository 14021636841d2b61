"""Benchmark: how noisy a profiling reward is, scaled to one episode step, against a real step's reward.

On ``ReAD-Surrogate-v1`` (paper world, math_word_problems, noise on), for each budget: the standard deviation
of each profiling run's step-scale reward (:func:`agents.profiling.profile`, 40 repeats), the standard
deviation of the reward of a real episode step with the same allocation (40 seeds), and how much the mean
real-step reward differs across the profiled allocations (the signal the reward model has to find).

Run: ``python benchmarks/profiling_noise.py``
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401
from agents.base import Setting
from agents.profiling import DEFAULT_PROFILE_FRACTION, profile

ENV_ID, TASK, REPEATS = "ReAD-Surrogate-v1", "math_word_problems", 40


def main() -> None:
    print("| budget | profiling reward sd | real step reward sd | spread of mean step reward across allocations |")
    print("|---|---|---|---|")
    for budget in (20_000_000, 150_000_000):
        setting = Setting(budget_tokens=budget, env_id=ENV_ID)
        env = gym.make(ENV_ID, action_mode="simplex", task=TASK, budget_tokens=budget)
        observation, _ = env.reset(seed=0)
        rng = np.random.default_rng(0)
        profiled = np.array([[run.reward for run in profile(setting, observation["requirement"], DEFAULT_PROFILE_FRACTION, rng)] for _ in range(REPEATS)])
        real = []
        for run in profile(setting, observation["requirement"], DEFAULT_PROFILE_FRACTION, rng):
            rewards = []
            for seed in range(REPEATS):
                env.reset(seed=seed)
                rewards.append(env.step(run.allocation)[1])
            real.append(rewards)
        real = np.array(real)  # [allocations, seeds]
        print(f"| {budget / 1e6:.0f}M | {profiled.std(axis=0).mean():.4f} | {real.std(axis=1).mean():.4f} | {real.mean(axis=1).std():.4f} |")
        env.close()


if __name__ == "__main__":
    main()

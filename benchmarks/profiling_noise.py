"""Benchmark: how noisy a profiling reward is, scaled to one episode step, against a real step's reward.

On ``ReAD-Surrogate-v1`` (paper world, math_word_problems, noise on), for each budget: the standard deviation
of each profiling run's step-scale reward (:func:`agents.policies.profiling.profile`, 40 repeats), the standard
deviation of the reward of a real episode step with the same allocation (40 seeds), and how much the mean
real-step reward differs across the profiled allocations (the signal the reward model has to find). With noise
off: the median ratio of a profiling reward to the real step's reward and their correlation over the
allocations (how good the first-order scaling is).

Run: ``python benchmarks/profiling_noise.py [--repeats 40]`` (the tests: ``--repeats 3``)
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401
from agents.base import Setting
from agents.policies.profiling import DEFAULT_PROFILE_FRACTION, profile

ENV_ID, TASK, REPEATS = "ReAD-Surrogate-v1", "math_word_problems", 40


def first_order_check(budget: int) -> tuple[float, float]:
    """Noise off: (median profiling reward / real step reward, correlation) over the profiled allocations."""
    env = gym.make(ENV_ID, action_mode="simplex", task=TASK, budget_tokens=budget, noise=False)
    observation, _ = env.reset(seed=0)
    runs = profile(Setting(budget_tokens=budget, env_id=ENV_ID, env_kwargs={"noise": False}), observation["requirement"], DEFAULT_PROFILE_FRACTION, np.random.default_rng(0))
    pairs = []
    for run in runs:
        env.reset(seed=0)
        pairs.append((run.reward, env.step(run.allocation)[1]))
    env.close()
    profiled, real = np.array(pairs).T
    return float(np.median(profiled / real)), float(np.corrcoef(profiled, real)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="profiling runs and real-step seeds per allocation")
    repeats = parser.parse_args().repeats
    print("| budget | profiling reward sd | real step reward sd | spread of mean step reward across allocations | noise off: ratio, correlation |")
    print("|---|---|---|---|---|")
    for budget in (20_000_000, 150_000_000):
        setting = Setting(budget_tokens=budget, env_id=ENV_ID)
        env = gym.make(ENV_ID, action_mode="simplex", task=TASK, budget_tokens=budget)
        observation, _ = env.reset(seed=0)
        rng = np.random.default_rng(0)
        runs_per_repeat = [profile(setting, observation["requirement"], DEFAULT_PROFILE_FRACTION, rng) for _ in range(repeats)]
        profiled = np.array([[run.reward for run in runs] for runs in runs_per_repeat])
        real = []
        for run in runs_per_repeat[0]:
            rewards = []
            for seed in range(repeats):
                env.reset(seed=seed)
                rewards.append(env.step(run.allocation)[1])
            real.append(rewards)
        real = np.array(real)  # [allocations, seeds]
        ratio, correlation = first_order_check(budget)
        print(f"| {budget / 1e6:.0f}M | {profiled.std(axis=0).mean():.4f} | {real.std(axis=1).mean():.4f} | {real.mean(axis=1).std():.4f} | {ratio:.2f}, {correlation:.3f} |")
        env.close()


if __name__ == "__main__":
    main()

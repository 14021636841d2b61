"""Benchmark: what ADO's forecast learning speed is worth, against the same agent without it.

On ``ReAD-Surrogate-v1`` (paper world, 15 tasks, 10 seeds, 20M and 150M): ``ado`` and ``ado`` with the
forecast speed replaced by 1 (so ``rho = floor_clip(mu * h^0.5)``: prior, history, floor and smoothing only),
each paired by seed with ``task_static`` on the same episodes; prints the task-averaged difference in points,
its mean and standard deviation over seeds.

Run: ``python benchmarks/ado_speed_ablation.py [--seeds 10] [--tasks all]`` (the tests: ``--seeds 2 --tasks
math,chat_assistant``)
"""

from __future__ import annotations

import argparse

import numpy as np

from agents import make_agent, run_episode
from agents.cli import parse_tasks
from agents.policies.ado import AdoAgent

ENV_ID, BUDGETS = "ReAD-Surrogate-v1", (20_000_000, 150_000_000)


class AdoWithoutSpeed(AdoAgent):
    """ADO with every forecast speed set to 1."""

    def step(self, speed: np.ndarray, steps: int) -> np.ndarray:
        return super().step(np.ones_like(speed), steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (at least 2: the spread over seeds)")
    parser.add_argument("--tasks", type=parse_tasks, default="all", help="comma list of task names or groups (all, single, multi)")
    args = parser.parse_args()
    seeds, tasks = range(args.seeds), args.tasks
    builders = {"ado": lambda s, seed: make_agent("ado", s, seed=seed), "ado without speed": lambda s, seed: AdoWithoutSpeed(s, seed),
                "task_static": lambda s, seed: make_agent("task_static", s, seed=seed)}
    for budget in BUDGETS:
        utility = {name: np.zeros((len(seeds), len(tasks))) for name in builders}
        for i, seed in enumerate(seeds):
            for j, task in enumerate(tasks):
                for name, build in builders.items():
                    episode, _ = run_episode(lambda s: build(s, seed), ENV_ID, task, budget, 20, seed)
                    utility[name][i, j] = 100 * episode.final_utility
        for name in ("ado", "ado without speed"):
            diff = (utility[name] - utility["task_static"]).mean(axis=1)
            print(f"{budget // 1_000_000}M  {name:18s} - task_static: {diff.mean():+.3f} points (sd over seeds {diff.std(ddof=1):.3f})")


if __name__ == "__main__":
    main()

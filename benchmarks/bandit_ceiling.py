"""The one-step ceiling of the ReAD bandit on ReAD-Surrogate-v1, and how close the bandit comes to it.

*Perfect greedy* knows the exact next transition (noise off): each step it plays the candidate of the
bandit's own set ``A(tau)`` (:func:`agents.policies.candidates.candidate_set`, around its previous choice) whose
proxy reward is largest, by stepping a copy of the environment with each candidate. No one-step reward model
can choose better, so it is the ceiling of the paper's method on a world. The script prints, per cell, the
final utility (points) of perfect greedy, task-static and the given agents, with noise off (one episode:
the agents' own seeds still differ) or on (``--noise``, mean over ``--seeds``).

    python benchmarks/bandit_ceiling.py --agents read_bandit,read_lookahead
    python benchmarks/bandit_ceiling.py --agents read_bandit --noise --seeds 3 [--option profile_fraction=0]
    python benchmarks/bandit_ceiling.py --cells 1 --steps 3     # the tests' size
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np

from agents.harness.runner import run_episode
from agents.policies.candidates import candidate_set
from agents.registry import make_agent
from read_env.registration import SURROGATE_V1_ID

CELLS = [(task, budget) for task in ("math", "math_word_problems", "agentic_tool_use") for budget in (20_000_000, 150_000_000)]


def perfect_greedy(task: str, budget: int, num_steps: int) -> float:
    """Final utility (points) of greedy on the exact one-step proxy reward over the bandit's candidates, noise off."""
    import gymnasium as gym

    env = gym.make(SURROGATE_V1_ID, task=task, budget_tokens=budget, num_steps=num_steps, noise=False, action_mode="simplex").unwrapped
    observation, _ = env.reset(seed=0)
    requirement = observation["requirement"] / observation["requirement"].sum()
    previous = None
    for _ in range(num_steps):
        candidates = candidate_set(requirement, previous)
        rewards = [copy.deepcopy(env).step(candidate)[1] for candidate in candidates]
        previous = candidates[int(np.argmax(rewards))]
        _, _, _, _, info = env.step(previous)
    return 100 * info["final_utility"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="read_bandit")
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cells", type=int, default=len(CELLS), help="the first N (task, budget) cells")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an option (JSON value) of every listed agent but task_static; repeatable")
    args = parser.parse_args()
    options = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.option)}
    agents = ["task_static", *args.agents.split(",")]
    start = time.perf_counter()
    print(f"noise {'on' if args.noise else 'off'}, {args.seeds} seed(s), options {options}; points")
    print(f"{'cell':26s} {'perfect_greedy':>14s} " + " ".join(f"{name:>15s}" for name in agents))
    rows = []
    for task, budget in CELLS[: args.cells]:
        values = [perfect_greedy(task, budget, args.steps)]
        for name in agents:
            overrides = options if name != "task_static" else {}
            utilities = [run_episode(lambda setting, name=name, seed=seed: make_agent(name, setting, seed=seed, **overrides), SURROGATE_V1_ID, task, budget, args.steps, seed, {"noise": args.noise})[0].final_utility
                         for seed in range(args.seeds)]
            values.append(100 * float(np.mean(utilities)))
        rows.append(values)
        print(f"{task + ' ' + str(budget // 10**6) + 'M':26s} " + " ".join(f"{value:14.2f} " if i == 0 else f"{value:15.2f}" for i, value in enumerate(values)))
    mean = np.mean(rows, axis=0)
    print(f"{'mean':26s} " + " ".join(f"{value:14.2f} " if i == 0 else f"{value:15.2f}" for i, value in enumerate(mean)))
    print(f"seconds {time.perf_counter() - start:.1f}")


if __name__ == "__main__":
    main()

"""Sim-to-real gap: each method's final utility on a fitted world (predicted) against ReAD-Mini-v1 (measured).

    python benchmarks/sim_to_real.py --world read_env/fitted/data/mini_v1.json --real runs/mini-v1-question \
        --docs docs/results/fitted/mini_v1_sim_to_real

Reads the real evaluation of ``benchmarks/mini_question.py`` (``REAL/episodes.jsonl``; search episodes are left
out) and plays every (task, method, seed) found there again on ``ReAD-Fitted-v1`` with ``--world`` (same task,
``--budget``, steps and seed): a schedule (uniform, task-static, the searched ones) replays its recorded
allocations, an agent (``read_bandit``, ``ppo:PATH``, ...) plays itself. Predicted utility is the fitted
world's noise-free ``final_utility`` (an ensemble draws its member from the seed); measured is the real
episode's final utility on held-out evaluation items. Prints and writes ``sim_to_real.csv``: per task and
method, the measured and predicted means over seeds (points) and the paired gap ``predicted - measured`` with
its 95% t interval, and per task the Spearman correlation between predicted and measured method means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import read_env  # noqa: F401
from agents.harness.runner import run_episode
from agents.harness.stats import mean_ci
from agents.registry import make_agent
from read_env.fit.validate import spearman

SCHEDULES = ("uniform", "task_static", "best_fixed", "best_two_phase", "best_three_phase")


def predicted_utility(record: dict, world: str, budget: int) -> float:
    """The fitted world's noise-free final utility for one real episode's method, task and seed."""
    steps = len(record["allocations"])
    if record["method"] in SCHEDULES:
        env = gym.make("ReAD-Fitted-v1", world=world, task=record["task"], budget_tokens=budget, num_steps=steps, action_mode="simplex")
        env.reset(seed=record["seed"])
        for allocation in record["allocations"]:
            _, _, _, _, info = env.step(np.asarray(allocation, dtype=np.float32))
        return float(info["final_utility"])
    episode, _ = run_episode(lambda setting: make_agent(record["method"], setting, seed=record["seed"]), "ReAD-Fitted-v1", record["task"], budget,
                             steps, record["seed"], {"world": world})
    return float(episode.final_utility)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True, help="a fitted world .json (read-env fit-world --model ...) or a shipped world's name (mini_v1_students: the prior)")
    parser.add_argument("--real", required=True, help="mini_question.py's output folder")
    parser.add_argument("--budget", type=int, default=80_000)
    parser.add_argument("--docs", default=None, help="folder for sim_to_real.csv")
    args = parser.parse_args()
    records = [json.loads(line) for line in (Path(args.real) / "episodes.jsonl").read_text().splitlines() if line.strip()]
    records = [record for record in records if not record["method"].startswith("search-")]
    rows, lines = ["task,method,seeds,measured,predicted,gap,gap_ci95"], []
    for task in dict.fromkeys(record["task"] for record in records):
        means = {}
        for method in dict.fromkeys(record["method"] for record in records if record["task"] == task):
            mine = [record for record in records if record["task"] == task and record["method"] == method]
            measured = 100 * np.array([record["utility"] for record in mine])
            predicted = 100 * np.array([predicted_utility(record, args.world, args.budget) for record in mine])
            gap, half, _ = mean_ci(predicted - measured)
            means[method] = (measured.mean(), predicted.mean())
            rows.append(f"{task},{method},{len(mine)},{measured.mean():.2f},{predicted.mean():.2f},{gap:+.2f},{half:.2f}")
            print(rows[-1], flush=True)
        real, guess = np.array(list(means.values())).T
        lines.append(f"{task}: Spearman(predicted, measured) over {len(means)} methods = {spearman(guess, real):.2f}")
    print("\n".join(lines))
    if args.docs:
        Path(args.docs).mkdir(parents=True, exist_ok=True)
        (Path(args.docs) / "sim_to_real.csv").write_text("\n".join(rows + [f"# {line}" for line in lines]) + "\n")


if __name__ == "__main__":
    main()

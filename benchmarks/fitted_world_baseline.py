"""The calibrated fit (``read-env fit-world``'s default, ``ReAD-Surrogate-v0/v1`` worlds) on the held-out schedules
that ``fit-world --model`` validates on: the same split and measures (:mod:`read_env.fit.validate`), as a baseline.

Run: ``python benchmarks/fitted_world_baseline.py DATA_SET [--holdout 0.33] [--path-terms]``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from read_env.episodes import load_episodes
from read_env.fit import fit
from read_env.fit.calibrated import simulate
from read_env.fit.validate import final_utilities, spearman, split_by_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="data sets or run folders (as fit-world takes them)")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--path-terms", action="store_true", help="fit ReAD-Surrogate-v1's path terms too")
    args = parser.parse_args()
    training, heldout = split_by_schedule(load_episodes(args.data), args.holdout)
    world = fit("calibrated", training, path_terms=args.path_terms)
    predicted = [simulate(world, episode) for episode in heldout]
    errors = np.concatenate([p - e.profiles for p, e in zip(predicted, heldout)])
    guess, real = final_utilities(heldout, predicted)
    groups = defaultdict(list)
    for index, episode in enumerate(heldout):
        groups[(episode.task, episode.budget_tokens)].append(index)
    within = {key: spearman(guess[rows], real[rows]) for key, rows in groups.items() if len(rows) >= 3}
    top3 = [int(np.argmax(real[rows]) in np.argsort(-guess[rows], kind="stable")[:3]) for key, rows in groups.items() if len(rows) >= 3]
    weights = [len(groups[key]) for key in within]
    print(f"calibrated{' + path terms' if args.path_terms else ''}: {len(training)} training, {len(heldout)} held-out episodes")
    print(f"held-out profile RMS {100 * np.sqrt((errors ** 2).mean()):.2f} points; per capability {np.round(100 * np.sqrt((errors ** 2).mean(axis=0)), 1).tolist()}")
    print(f"Spearman within groups {np.average(list(within.values()), weights=weights):.2f} ({ {f'{t}/{b}': round(v, 2) for (t, b), v in within.items()} }), "
          f"pooled {spearman(guess, real):.2f}, best in top 3 {sum(top3)}/{len(top3)}")


if __name__ == "__main__":
    main()

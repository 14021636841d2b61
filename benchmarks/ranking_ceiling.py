"""How well can any world rank schedules measured on one seed? The noise ceiling of a logged data set.

    python benchmarks/ranking_ceiling.py docs/results/fitted/mini-v1-broad/a docs/results/fitted/mini-v1-broad/b

Per (task, budget) group of ``read-env log-episodes`` data sets: ``noise`` is the seed-to-seed standard deviation
of final utility pooled over the schedules played on several seeds (uniform, task-static); ``total`` the standard
deviation over all the group's episodes; ``signal = sqrt(max(0, total^2 - noise^2))`` the spread of the schedules'
true utilities. A perfect world's predictions correlate with single-seed measurements at most
``ceiling = signal / total`` (the square root of the measurement's reliability): a rank correlation goal above
it cannot be met on this data, whatever the model. Points throughout (100 x utility).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from read_env.episodes import load_episodes
from read_env.fit.validate import schedule_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", help="data set folders (episodes.jsonl)")
    args = parser.parse_args()
    groups: dict[tuple[str, int], dict[bytes, list[float]]] = defaultdict(lambda: defaultdict(list))
    for episode in load_episodes(args.data):
        groups[(episode.task, episode.budget_tokens)][schedule_key(episode)].append(100 * episode.final_utility)
    print("task, budget: episodes, schedules, noise sd, total sd, signal sd, ceiling")
    for (task, budget), schedules in sorted(groups.items()):
        repeated = [values for values in schedules.values() if len(values) > 1]
        noise_var = sum(np.var(values, ddof=1) * (len(values) - 1) for values in repeated) / sum(len(values) - 1 for values in repeated)
        everything = [value for values in schedules.values() for value in values]
        total_var = np.var(everything, ddof=1)
        signal = np.sqrt(max(0.0, total_var - noise_var))
        print(f"{task}, {budget}: {len(everything)}, {len(schedules)}, {np.sqrt(noise_var):.2f}, {np.sqrt(total_var):.2f}, {signal:.2f}, "
              f"{signal / np.sqrt(total_var):.2f}")


if __name__ == "__main__":
    main()

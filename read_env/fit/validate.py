"""Validate a fitted world as surrogate benchmarks are validated: on held-out *schedules*, by error and by rank.

Split (:func:`split_by_schedule`): a schedule is a sequence of allocations (rounded to 4 decimals), so the
episodes of one schedule on every task, budget and environment seed (an open-loop schedule's seed, or a fixed
rule such as uniform on every seed) are one schedule; of the distinct schedules, a share ``holdout`` drawn by
a fixed generator (seed 0, so every family can be held out) is held out with all its episodes: no held-out
schedule was seen in fitting.

Measures on the held-out episodes (each replayed from its measured start profile with its recorded
allocations and tokens; an ensemble predicts its members' mean):

* ``rms_points`` [K] and overall: root mean square error of the predicted profiles of every step, in points,
  next to ``probe_stderr_points`` [K], the root mean square of the probe's recorded binomial standard errors
  (a model cannot be checked below that noise), and the error of predicting no change;
* ``spearman``: Spearman rank correlation across held-out *schedules* between predicted final utility (the
  environment's utility of the predicted final profile: ``r . s_T`` for ReAD-Mini) and measured final utility,
  each a schedule's mean over its episodes (seeds) in the group, within each (task, budget) group of at least 3
  held-out schedules, averaged weighted by the group's schedules (the goal: >= 0.8), and pooled over every
  (task, budget, schedule);
* ``best_in_top3``: the share of groups whose measured best schedule is among the 3 predicted best.

:func:`fit_and_validate` fits candidate models (:func:`read_env.fit.fit`) to the training schedules, validates them
on the held-out ones and writes the chosen world with its report (``read-env fit-world --model``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from read_env.episodes import Episode
from read_env.fit import fit
from read_env.fitted import kernel
from read_env.fitted.world import FittedWorld
from read_env.utility import power_mean

MIN_GROUP = 3
SPLIT_SEED = 0


def split_by_schedule(episodes: Sequence[Episode], holdout: float) -> tuple[list[Episode], list[Episode]]:
    """(training, held-out) episodes: a share ``holdout`` of the distinct schedules held out (see the module docstring)."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    keys = [schedule_key(episode) for episode in episodes]
    schedules = list(dict.fromkeys(keys))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(schedules))
    held = {schedules[index] for index in order[: round(holdout * len(schedules))]}
    training = [episode for episode, key in zip(episodes, keys) if key not in held]
    heldout = [episode for episode, key in zip(episodes, keys) if key in held]
    if not training or not heldout:
        raise ValueError(f"{len(schedules)} distinct schedules cannot be split with holdout {holdout}: log more schedules")
    return training, heldout


def schedule_key(episode: Episode) -> bytes:
    """What identifies an episode's schedule: its allocations [T, K] rounded to 4 decimals."""
    return np.round(episode.allocations, 4).tobytes()


def predict(world: FittedWorld, episodes: Sequence[Episode]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per episode, the predicted profiles [T, K] (the members' mean) and the members' standard deviation [T, K]."""
    means, spreads = [], []
    for episode in episodes:
        budget = np.array([episode.budget_tokens])
        runs = np.stack([world.rollout(episode.tokens[None], episode.allocations[None], budget, episode.start[None], member)[0]
                         for member in range(world.members)])
        means.append(runs.mean(axis=0))
        spreads.append(runs.std(axis=0))
    return means, spreads


def spearman(first: Sequence[float], second: Sequence[float]) -> float:
    """Spearman's rank correlation (ties share their mean rank); NaN when either side is constant."""
    ranks = [_ranks(np.asarray(values, dtype=float)) for values in (first, second)]
    if min(np.std(rank) for rank in ranks) == 0:
        return float("nan")
    return float(np.corrcoef(*ranks)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def final_utilities(episodes: Sequence[Episode], predicted: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(predicted final utility, measured final utility) [E] of data-set episodes: the environment's utility
    (``Episode.utility_power``; linear ``r . s_T`` for ReAD-Mini) of the predicted final profile."""
    missing = [episode.source for episode in episodes if episode.requirement is None or episode.final_utility is None]
    if missing:
        raise ValueError(f"episodes without requirement or final utility (log them with read-env log-episodes): {missing[:3]}")
    guess = [float(power_mean(profiles[-1], episode.requirement, episode.utility_power)) for episode, profiles in zip(episodes, predicted)]
    return np.array(guess), np.array([episode.final_utility for episode in episodes])


def validate(world: FittedWorld, heldout: Sequence[Episode]) -> dict[str, Any]:
    """The measures of the module docstring on ``heldout`` episodes, JSON-able (points are 0-100)."""
    predicted, spread = predict(world, heldout)
    errors = np.concatenate([profiles - episode.profiles for episode, profiles in zip(heldout, predicted)])
    unchanged = np.concatenate([episode.profiles - episode.start for episode in heldout])
    stderrs = [episode.stderrs for episode in heldout if episode.stderrs is not None]
    guess, real = final_utilities(heldout, predicted)
    cells: dict[tuple[str, int, bytes], list[int]] = defaultdict(list)  # (task, budget, schedule) -> episodes
    for index, episode in enumerate(heldout):
        cells[(episode.task, episode.budget_tokens, schedule_key(episode))].append(index)
    cell_guess = {cell: guess[rows].mean() for cell, rows in cells.items()}
    cell_real = {cell: real[rows].mean() for cell, rows in cells.items()}
    groups: dict[tuple[str, int], list[tuple[str, int, bytes]]] = defaultdict(list)
    for cell in cells:
        groups[cell[:2]].append(cell)
    ranked = {key: members for key, members in groups.items() if len(members) >= MIN_GROUP}
    within = {f"{task}/{budget}": spearman([cell_guess[c] for c in members], [cell_real[c] for c in members])
              for (task, budget), members in ranked.items()}
    sizes = [len(members) for members in ranked.values()]
    values = np.array(list(within.values()))
    finite = np.isfinite(values)
    top3 = [bool(np.argmax([cell_real[c] for c in members]) in np.argsort([-cell_guess[c] for c in members], kind="stable")[:3])
            for members in ranked.values()]
    return {
        "heldout_episodes": len(heldout),
        "heldout_schedules": len({schedule_key(episode) for episode in heldout}),
        "rms_points": (100 * np.sqrt((errors**2).mean(axis=0))).tolist(),
        "rms_points_all": float(100 * np.sqrt((errors**2).mean())),
        "no_change_rms_points_all": float(100 * np.sqrt((unchanged**2).mean())),
        "probe_stderr_points": (100 * np.sqrt((np.concatenate(stderrs) ** 2).mean(axis=0))).tolist() if stderrs else None,
        "member_spread_points": float(100 * np.mean([values.mean() for values in spread])),
        "spearman_within": within,
        "spearman": float(np.average(values[finite], weights=np.array(sizes)[finite])) if finite.any() else None,
        "spearman_pooled": spearman(list(cell_guess.values()), list(cell_real.values())),
        "best_in_top3": float(np.mean(top3)) if top3 else None,
        "utility_predicted": guess.tolist(),
        "utility_measured": real.tolist(),
        "episodes": [episode.source for episode in heldout],
    }


def choose(results: dict[str, dict[str, Any]]) -> str:
    """The model that validates better: the higher within-group Spearman, then the lower held-out profile error."""
    def key(name: str) -> tuple[float, float]:
        rho = results[name]["spearman"]
        return (round(rho, 6) if rho is not None else -2.0, -results[name]["rms_points_all"])  # rounding: equal ranks tie

    return max(results, key=key)


def fit_and_validate(episodes: Sequence[Episode], models: Sequence[str], holdout: float, output: str | Path,
                     report: str | Path | None = None, seed: int = 0, data: str = "", options: dict[str, dict[str, Any]] | None = None,
                     refit_all: bool = False) -> tuple[FittedWorld, dict[str, dict[str, Any]]]:
    """Fit each of ``models`` (``recency``, ``ensemble``) to the training schedules, validate on the held-out ones
    (the measures above), write the better world to ``output`` (its ``fit`` record holds every
    model's validation) and the report to ``report`` (default: ``OUTPUT_report``); ``options[model]`` go to
    its fit (``iterations``, ``members``, ``hidden``). With ``refit_all`` the chosen model is fitted again on
    every episode, held-out ones included, and that world is written (the validation then describes the
    procedure on a split, not the written world). Returns (world, results)."""
    unknown = [name for name in models if name not in kernel.KINDS]
    if unknown:
        raise ValueError(f"models {unknown} are not fitted-world kinds; expected some of {list(kernel.KINDS)}")
    training, heldout = split_by_schedule(episodes, holdout)
    worlds = {name: fit(name, training, seed=seed, **(options or {}).get(name, {})) for name in models}
    results = {name: validate(world, heldout) for name, world in worlds.items()}
    for name, world in worlds.items():
        results[name]["rms_points_train"] = validate(world, training)["rms_points_all"]
    chosen = choose(results)
    output = Path(output)
    folder = Path(report) if report is not None else output.with_name(output.stem + "_report")
    write_report(results, worlds, heldout, chosen, folder, data)
    world = fit(chosen, episodes, seed=seed, **(options or {}).get(chosen, {})) if refit_all else worlds[chosen]
    steps = [len(episode.tokens) for episode in training]
    world.fit = {"data": data, "num_steps": max(set(steps), key=steps.count), "training_episodes": len(training),
                 "training_schedules": len({schedule_key(e) for e in training}), "chosen": chosen,
                 "rule": "the higher within-group Spearman on held-out schedules, then the lower held-out profile RMS",
                 "validation": {name: {key: value for key, value in result.items() if key != "episodes"}
                                for name, result in results.items()},
                 "heldout_episodes": results[chosen]["episodes"], "report": str(folder / "report.md"), "seed": seed,
                 "fitted_on": f"all {len(episodes)} episodes, after validation" if refit_all else f"the {len(training)} training episodes"}
    world.save(output)
    return world, results


def write_report(results: dict[str, dict[str, Any]], worlds: dict[str, FittedWorld], heldout: Sequence[Episode], chosen: str,
                 out: str | Path, data: str = "") -> Path:
    """``out/report.md`` with ``out/profiles.png`` (predicted against measured per capability) and ``out/ranking.png``
    (the held-out schedules ranked by measured and by predicted final utility, side by side), per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    capabilities = heldout[0].capabilities
    names = list(results)
    figure, axes = plt.subplots(len(names), len(capabilities), figsize=(2.2 * len(capabilities), 2.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        predicted, _ = predict(worlds[name], heldout)
        measured, guessed = np.concatenate([e.profiles for e in heldout]), np.concatenate(predicted)
        for column, capability in enumerate(capabilities):
            axis = axes[row, column]
            axis.scatter(100 * measured[:, column], 100 * guessed[:, column], s=6, alpha=0.6)
            axis.plot([0, 100], [0, 100], color="grey", linewidth=0.8)
            axis.set(xlim=(0, 100), ylim=(0, 100), title=f"{capability}\n{name}: RMS {results[name]['rms_points'][column]:.1f}")
            axis.title.set_fontsize(7)
            axis.tick_params(labelsize=6)
        axes[row, 0].set_ylabel(f"{name}: predicted", fontsize=7)
    figure.supxlabel("measured score (points), held-out steps", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "profiles.png", dpi=110)
    plt.close(figure)

    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for index, episode in enumerate(heldout):
        groups[(episode.task, episode.budget_tokens)].append(index)
    keys = sorted(groups)
    height = sum(0.22 * len(groups[key]) + 0.8 for key in keys)
    figure, axes = plt.subplots(len(keys), len(names), figsize=(5 * len(names), height), squeeze=False,
                                gridspec_kw={"height_ratios": [len(groups[key]) + 3 for key in keys]})
    for row, key in enumerate(keys):
        rows = groups[key]
        for axis, name in zip(axes[row], names):
            guess, real = np.array(results[name]["utility_predicted"])[rows], np.array(results[name]["utility_measured"])[rows]
            real_rank, guess_rank = _ranks(-real), _ranks(-guess)
            for index, episode in enumerate(heldout[i] for i in rows):
                axis.plot([0, 1], [real_rank[index], guess_rank[index]], marker="o", linewidth=0.8)
                axis.text(-0.05, real_rank[index], f"{episode.schedule}  {100 * real[index]:.1f}", ha="right", va="center", fontsize=6)
                axis.text(1.05, guess_rank[index], f"{100 * guess[index]:.1f}", ha="left", va="center", fontsize=6)
            rho = results[name]["spearman_within"].get(f"{key[0]}/{key[1]}")
            axis.set(xlim=(-1.3, 1.4), ylim=(len(rows) - 0.5, -0.5), xticks=[0, 1], xticklabels=["measured", "predicted"], yticks=[])
            ranked_by = f", Spearman {rho:.2f}" if rho is not None and np.isfinite(rho) else ""
            axis.set_title(f"{name}: {key[0]}, {key[1]:,} tokens{ranked_by}", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "ranking.png", dpi=110)
    plt.close(figure)

    def number(value: Any, digits: int = 2) -> str:
        return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"

    first = results[names[0]]
    lines = [f"# Fitted world: validation on held-out schedules{f' ({data})' if data else ''}", "",
             f"{first['heldout_episodes']} held-out episodes of {first['heldout_schedules']} schedules never used in fitting. "
             f"Chosen: **{chosen}** (the higher within-group Spearman, then the lower profile error).", "",
             "| model | profile RMS (points) | no change | Spearman within (task, budget) | Spearman pooled | best in predicted top 3 "
             "| member spread (points) |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        r = results[name]
        lines.append(f"| {name} | {number(r['rms_points_all'])} | {number(r['no_change_rms_points_all'])} | {number(r['spearman'])} | "
                     f"{number(r['spearman_pooled'])} | {number(r['best_in_top3'])} | {number(r['member_spread_points'])} |")
    lines += ["", "Per capability, RMS error of the held-out profiles (points) against the probe's binomial standard error:", "",
              "| capability | " + " | ".join(names) + " | probe standard error |", "|---|" + "---|" * (len(names) + 1)]
    stderr = first["probe_stderr_points"]
    for column, capability in enumerate(capabilities):
        errors = " | ".join(number(results[name]["rms_points"][column], 1) for name in names)
        lines.append(f"| {capability} | {errors} | {number(stderr[column], 1) if stderr else 'n/a'} |")
    lines += ["", "![predicted against measured](profiles.png)", "", "![rankings](ranking.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path

"""The fitted world validated on ReAD-Mini-v2 as surrogate benchmarks are (protocol amendment 1,
``docs/results/mini_v2/protocol.md``).

    python benchmarks/mini_v2_world.py --out runs/mini-v2 --docs docs/results/mini_v2 [--save read_env/fitted/data/mini_v2.json]

Fits ``read_env.fitted``'s two models to the experiment's pilot and grid episodes (no evaluation seed) and
compares their predictions with the held-out fixed schedules of the evaluation seeds: per target (the final
utility on evaluation items; the final utility of the probe profile) R², Spearman's rho and Kendall's tau over the
schedules' seed means, the designed contrasts (predicted beside measured, with the measured 95% interval), and the
noise ceiling (the same measures between the means of two random halves of the seeds). Writes
``world_validation.csv`` and ``world_validation.txt`` to ``--docs``; ``--save`` refits the better model to every
fixed-schedule episode and saves that world, only if the protocol's criterion is met.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mini_v2_experiment as experiment  # noqa: E402  (the experiment's plan, records and contrasts)

from read_env.episodes import Episode, load_episodes  # noqa: E402
from read_env.fit import fit  # noqa: E402
from read_env.fit.validate import predict  # noqa: E402

FIXED = ("uniform", "task_static", "grid_best", "prerequisite_first", "prerequisite_last", "grid_best_fragile_late")
MODELS = ("recency", "ensemble")
SPLITS = 200


def episode_of(out: Path, record: dict, steps: int) -> Episode:
    """The recorded episode's history (the last complete one of its run folder), with its task and requirement."""
    folder = out / "runs" / record["key"].replace("|", "-")
    complete = [e for e in (load_episodes([path])[0] for path in sorted(folder.glob("episode-*/history.jsonl"))) if len(e.tokens) == steps]
    if not complete:
        raise ValueError(f"{folder} holds no complete episode of {steps} steps")
    episode = complete[-1]
    episode.task, episode.requirement = record["task"], experiment.requirement(record["task"])
    return episode


def utility(profile: np.ndarray, requirement: np.ndarray) -> float:
    return float(100 * requirement @ profile / requirement.sum())


def measures(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """R² of ``predicted`` as a model of ``measured`` [n] and their Spearman and Kendall correlations."""
    residual, total = ((measured - predicted) ** 2).sum(), ((measured - measured.mean()) ** 2).sum()
    return {"r2": float(1 - residual / total), "spearman": float(stats.spearmanr(predicted, measured)[0]), "kendall": float(stats.kendalltau(predicted, measured)[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/mini-v2")
    parser.add_argument("--docs", default="docs/results/mini_v2")
    parser.add_argument("--save", help="where to save the world refitted to every fixed-schedule episode, if it validates")
    parser.add_argument("--steps", type=int, default=experiment.Design.steps)
    parser.add_argument("--eval-seeds", type=int, default=len(experiment.Design().eval_seeds))
    parser.add_argument("--iterations", type=int, help="fit iterations (default: the models' own)")
    args = parser.parse_args()
    out, docs, design = Path(args.out), Path(args.docs), experiment.Design()
    seeds = tuple(range(args.eval_seeds))
    records = experiment.read_records(out)
    training_seeds = set(design.pilot_seeds) | set(design.validation_seeds)
    training = [episode_of(out, r, args.steps) for r in records.values() if r["seed"] in training_seeds and not r["method"].startswith("read_")]
    cells = [(task, method) for task in experiment.ORDER_TASKS for method in FIXED] + [(experiment.CONTROL_TASK, m) for m in ("uniform", "task_static")]
    heldout = {(task, method, seed): records[f"{task}|{method}|{seed}"] for task, method in cells for seed in seeds}
    episodes = {key: episode_of(out, record, args.steps) for key, record in heldout.items()}
    options = {} if args.iterations is None else {"iterations": args.iterations}
    measured = {"evaluation": {key: 100 * record["final_utility"] for key, record in heldout.items()},
                "probe": {key: utility(np.array(record["profile"]), experiment.requirement(key[0])) for key, record in heldout.items()}}

    lines = [f"training: {len(training)} episodes (pilot and grid seeds); held out: {len(cells)} fixed schedules x {len(seeds)} evaluation seeds"]
    rows = ["model,target,r2,spearman,kendall"]
    rng = np.random.default_rng(0)
    for target, values in measured.items():  # the noise ceiling: half the seeds' means against the other half's
        ceiling = []
        for _ in range(SPLITS):
            half = rng.permutation(seeds)[: len(seeds) // 2]
            means = [np.array([np.mean([values[(t, m, s)] for s in seeds if (s in half) == side]) for t, m in cells]) for side in (True, False)]
            ceiling.append(measures(*means))
        row = {name: float(np.mean([c[name] for c in ceiling])) for name in ("r2", "spearman", "kendall")}
        rows.append(f"noise ceiling,{target},{row['r2']:.3f},{row['spearman']:.3f},{row['kendall']:.3f}")
        lines.append(f"noise ceiling ({target}): R2 {row['r2']:.3f}, Spearman {row['spearman']:.3f}, Kendall {row['kendall']:.3f} "
                     f"(means of {len(seeds) // 2} seeds against the other {len(seeds) - len(seeds) // 2}, {SPLITS} splits)")
    verdicts = {}
    for model in MODELS:
        world = fit(model, training, seed=0, **options)
        profiles, _ = predict(world, list(episodes.values()))
        guess = {key: utility(p[-1], experiment.requirement(key[0])) for key, p in zip(episodes, profiles)}
        results = {}
        for target, values in measured.items():
            cell_guess = np.array([np.mean([guess[(t, m, s)] for s in seeds]) for t, m in cells])
            cell_real = np.array([np.mean([values[(t, m, s)] for s in seeds]) for t, m in cells])
            results[target] = measures(cell_guess, cell_real)
            rows.append(f"{model},{target},{results[target]['r2']:.3f},{results[target]['spearman']:.3f},{results[target]['kendall']:.3f}")
            lines.append(f"{model} ({target}): R2 {results[target]['r2']:.3f}, Spearman {results[target]['spearman']:.3f}, "
                         f"Kendall {results[target]['kendall']:.3f} over {len(cells)} schedule means")
        agree = True
        for task, a, b, question in experiment.CONTRASTS:
            if a not in FIXED or b not in FIXED or (task, a) not in cells:
                continue
            real = np.array([measured["evaluation"][(task, a, s)] - measured["evaluation"][(task, b, s)] for s in seeds])
            predicted = float(np.mean([guess[(task, a, s)] - guess[(task, b, s)] for s in seeds]))
            s = experiment.summarize(real)
            low, high = s["mean"] - s["half"], s["mean"] + s["half"]
            excludes = low > 0 or high < 0
            agree &= not excludes or np.sign(predicted) == np.sign(s["mean"])
            lines.append(f"{model} contrast {task} ({question}) {a} - {b}: predicted {predicted:+.2f}, measured {s['mean']:+.2f} [{low:+.2f}, {high:+.2f}]")
        verdicts[model] = (results["evaluation"]["spearman"] >= 0.7 and results["evaluation"]["kendall"] >= 0.5
                           and results["probe"]["r2"] >= 0.5 and agree)
        lines.append(f"{model}: {'validates' if verdicts[model] else 'does not validate'} under the protocol's criterion "
                     "(evaluation Spearman >= 0.7, Kendall >= 0.5; probe R2 >= 0.5; every clear contrast's sign)")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "world_validation.csv").write_text("\n".join(rows) + "\n")
    (docs / "world_validation.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    passing = [model for model in MODELS if verdicts[model]]
    if args.save and passing:
        everything = training + list(episodes.values())
        world = fit(passing[0], everything, seed=0, **options)
        world.fit = {"data": str(out), "chosen": passing[0], "training_episodes": len(everything), "num_steps": args.steps,
                     "rule": "protocol amendment 1 of docs/results/mini_v2/protocol.md; refitted to every fixed-schedule episode"}
        world.save(args.save)
        print(f"saved {passing[0]} world fitted to {len(everything)} episodes: {args.save}")
    elif args.save:
        print("no model validates: nothing saved")


if __name__ == "__main__":
    main()

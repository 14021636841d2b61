"""How much a shared teacher pool tightens paired comparisons on ReAD-v0.

Two allocations (even, and a fixed skew) are compared on the same seeds, once with ReAD-v0's online generation
(each episode draws and generates its own prompts) and once from one teacher pool (``teacher_pool``, grown
on demand by ``pool_fallback``: every episode of a seed draws the same prompt streams and trains on the same
answers). Per seed, the paired difference is the skewed allocation's final mean probe profile minus the even
one's (points, 100 x profile); the script prints the mean and the standard deviation of the paired differences
over seeds for each mode, and the ratio of the standard deviations (online / pooled; above 1: the pool tightens
the comparison).

    python benchmarks/teacher_pool.py --tiny --seeds 8      # tiny random models (a few minutes on 2 CPU cores)
    python benchmarks/teacher_pool.py --seeds 4 --budget 6000   # the embedded SmolLM2 pair (hours on a CPU)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np


def final_profile(models: dict[str, str], run_dir: Path, seed: int, action: np.ndarray, args: argparse.Namespace,
                  pool: Path | None) -> float:
    """100 x the mean probe profile after one episode."""
    import gymnasium as gym

    import read_env  # noqa: F401  (registers the ids)

    options = {"temperature": args.temperature, "probe_items": 4, "eval_items": 2, "lr": 1e-3, "use_banks": False}
    if models:
        options.update({"max_new_tokens": 16, "probe_max_new_tokens": 6, "eval_max_new_tokens": 8, "batch_size": 4, "micro_batch": 4})
    if pool is not None:
        options["pool_fallback"] = True
    env = gym.make("ReAD-v0", **models, run_dir=str(run_dir), device="cpu", budget_tokens=args.budget, num_steps=args.steps,
                   task="math_word_problems", progress=False, keep_episodes=1, distiller_config=options,
                   teacher_pool=None if pool is None else str(pool))
    observation, _ = env.reset(seed=seed)
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(action)
        if "error" in info:
            raise RuntimeError(info["error"])
        done = terminated or truncated
    env.close()
    return 100.0 * float(np.mean(observation["profile"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="paired seeds")
    parser.add_argument("--budget", type=int, default=1200, help="episode budget in tokens")
    parser.add_argument("--steps", type=int, default=3, help="steps per episode")
    parser.add_argument("--temperature", type=float, default=0.2, help="teacher sampling temperature (ReAD-v0's default 0.2)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models built from configs instead of the embedded pair")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    even, skewed = np.zeros(8, dtype=np.float32), np.linspace(-1, 1, 8, dtype=np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        models: dict[str, str] = {}
        if args.tiny:
            from read_env.distill.assets import build_tiny_llama

            teacher = build_tiny_llama(Path(scratch) / "teacher", num_layers=2, seed=0)
            student = build_tiny_llama(Path(scratch) / "student", num_layers=1, seed=1, tokenizer=teacher)
            models = {"teacher": str(teacher), "student": str(student)}
        print(f"ReAD-v0, {args.budget:,} tokens, {args.steps} steps, temperature {args.temperature}, {args.seeds} seeds"
              f"{' (tiny models)' if models else ''}: skewed - even final mean profile (points)")
        differences: dict[str, list[float]] = {"online": [], "pooled": []}
        for seed in range(args.seeds):
            for mode, pool in (("online", None), ("pooled", Path(scratch) / "pool")):
                pair = [final_profile(models, Path(scratch) / f"{mode}-{name}", seed, action, args, pool)
                        for name, action in (("even", even), ("skewed", skewed))]
                differences[mode].append(pair[1] - pair[0])
            print(f"seed {seed}: online {differences['online'][-1]:+.3f}, pooled {differences['pooled'][-1]:+.3f}", flush=True)
    sd = {mode: statistics.stdev(values) if len(values) > 1 else float("nan") for mode, values in differences.items()}
    for mode, values in differences.items():
        print(f"{mode:7s} paired difference: mean {statistics.fmean(values):+.3f}, sd {sd[mode]:.3f} points over {len(values)} seeds")
    ratio = f"{sd['online'] / sd['pooled']:.2f}" if sd["pooled"] > 0 else "none (the pooled sd is 0)"
    print(f"sd ratio online / pooled: {ratio}")


if __name__ == "__main__":
    main()

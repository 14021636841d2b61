"""Throughput of the distillation backend vs a straightforward reference, same machine and models.

* Teacher generation tokens/s: :func:`read_env.distill.generation.generate_batch` (batched, left
  padding, per-row caps) vs one prompt at a time with ``model.generate``.
* Student training tokens/s (prompt + answer tokens, no padding): :class:`Trainer` (length-bucketed
  batches, answer-only logits) vs batch of one, no packing, ``model(..., labels=...)`` + AdamW step.

Usage::

    python benchmarks/distill_throughput.py                # embedded SmolLM2 teacher + 6-layer student
    python benchmarks/distill_throughput.py --tiny         # tiny random models (no wheel needed)
    python benchmarks/distill_throughput.py --threads 1    # on a busy 2-core box, 2 OpenMP threads thrash
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from read_env.distill.assets import (build_tiny_llama, ensure_default_student, ensure_default_teacher, load_model,
                                     load_tokenizer)
from read_env.distill.generation import SamplingConfig, chat_text, eos_ids, generate_batch
from read_env.distill.prompts import CAPABILITIES, PromptSampler
from read_env.distill.training import TrainExample, Trainer


def reference_generation(model, tok, texts, max_new):
    """One prompt at a time; counts tokens up to and including EOS."""
    eos = eos_ids(model, tok)
    n, outs = 0, []
    for t in texts:
        enc = tok(t, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
        gen = out[0, enc["input_ids"].shape[1]:].tolist()
        cut = next((i for i, x in enumerate(gen) if x in eos), None)
        gen = gen if cut is None else gen[:cut + 1]
        outs.append(gen)
        n += len(gen)
    return n, outs


def reference_training(model, examples, lr):
    """Batch of one, no packing, full-vocabulary logits, one AdamW step per example."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    n = 0
    for ex in examples:
        ids = torch.tensor([ex.input_ids])
        labels = torch.tensor([ex.labels()])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        n += len(ex)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny random models instead of SmolLM2")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.tiny:
        d = tempfile.mkdtemp()
        t_dir = build_tiny_llama(f"{d}/t", num_layers=4, hidden_size=256, num_heads=4, intermediate_size=512)
        s_dir = build_tiny_llama(f"{d}/s", num_layers=2, hidden_size=256, num_heads=4, intermediate_size=512,
                                 tokenizer=t_dir, seed=1)
    else:
        t_dir, s_dir = ensure_default_teacher(), ensure_default_student()
    tok = load_tokenizer(t_dir)
    teacher, student = load_model(t_dir).eval(), load_model(s_dir)
    sampler = PromptSampler(list(CAPABILITIES), seed=0)
    prompts = [sampler.sample_one(CAPABILITIES[i % len(CAPABILITIES)], 0.5) for i in range(args.prompts)]
    texts = [chat_text(tok, p.text) for p in prompts]
    print(f"threads={torch.get_num_threads()} prompts={len(texts)} max_new_tokens={args.max_new_tokens} "
          f"teacher={t_dir} student={s_dir}")

    with torch.no_grad():
        t0 = time.perf_counter()
        n_ref, _ = reference_generation(teacher, tok, texts, args.max_new_tokens)
        ref_gen = n_ref / (time.perf_counter() - t0)
        cfg = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=args.batch)
        t0 = time.perf_counter()
        rows = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for k in range(0, len(order), args.batch):
            idx = order[k:k + args.batch]
            rows += generate_batch(teacher, tok, [texts[i] for i in idx], [args.max_new_tokens] * len(idx), cfg)
        ours_gen = sum(len(r[0]) for r in rows) / (time.perf_counter() - t0)
    print(f"generation tokens/s: reference {ref_gen:.1f}  ours {ours_gen:.1f}  ratio {ours_gen / ref_gen:.2f}x")

    prompt_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    examples = [TrainExample(p + r[0], len(p)) for p, r in zip([prompt_ids[i] for i in order], rows)]
    examples = examples * 2
    ref_model = load_model(s_dir)
    t0 = time.perf_counter()
    n = reference_training(ref_model, examples, 2e-5)
    ref_train = n / (time.perf_counter() - t0)
    trainer = Trainer(student, pad_id=tok.pad_token_id, lr=2e-5, batch_size=16, micro_batch=16)
    stats = trainer.train(examples, np.random.default_rng(0))
    ours_train = stats.tokens / stats.seconds
    print(f"training tokens/s:   reference {ref_train:.1f}  ours {ours_train:.1f}  ratio {ours_train / ref_train:.2f}x")


if __name__ == "__main__":
    main()

"""Probe cost and noise: today's LM head against continuation-only log-probs, and the imitation against the correctness probe.

1. Imitation probe (``ProbeSuite.run``) seconds per step with today's ``continuation_logprobs`` (the LM head from each
   batch's shortest prompt onward, :func:`today_logprobs`) and with the new one (the LM head on continuation positions
   only, in batches capped at 20% padding), interleaved in one run on the same student; the largest profile difference;
   the LM head's GFLOP and the share of padded tokens of each; the peak extra resident memory of one probe pass of
   each, in a fresh child process (``/proc/self/statm`` polled every 2 ms: torch's allocations are invisible to
   tracemalloc).
2. Per model (the student, and the teacher with ``--with-teacher``) and capability: the imitation and correctness
   probes (``probe_score="correctness"``: the greedy answer passes the item's check) with their standard errors and
   seconds, and the held-out evaluation; the Pearson correlation of each probe with the evaluation over the
   (model, capability) pairs. Both probes are deterministic (no sampling): repeated readings of one student are equal,
   so their noise is the item sampling, the standard error.

Usage::

    python benchmarks/probe_cost.py                       # embedded SmolLM2 teacher + 6-layer student, 16 probe items
    python benchmarks/probe_cost.py --with-teacher        # also probe and evaluate the teacher (slow on a CPU)
    python benchmarks/probe_cost.py --tiny --items 2 --repeats 1   # tiny random models (the test's settings)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from read_env.distill import probes
from read_env.distill.assets import build_tiny_llama, ensure_default_student, ensure_default_teacher, load_model, load_tokenizer
from read_env.distill.engines.hf import HFEngine
from read_env.distill.evaluation import Evaluator
from read_env.distill.prompts import CAPABILITIES

NEW_LOGPROBS = probes.continuation_logprobs


@torch.no_grad()
def today_logprobs(model, pairs, pad_id, batch_size=16):
    """Today's ``continuation_logprobs`` (before this benchmark's change): the LM head on every position from the
    batch's shortest prompt onward, full-vocabulary fp32 log-softmax."""
    device = next(model.parameters()).device
    out = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        ids, mask = probes.pad_right([pairs[i][0] + pairs[i][1] for i in idx], pad_id)
        L = ids.shape[1]
        start = max(min(len(pairs[i][0]) for i in idx) - 1, 0)
        keep = torch.arange(start, L - 1, device=device)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep).logits
        logp = F.log_softmax(logits.float(), dim=-1)
        for r, i in enumerate(idx):
            p, c = pairs[i]
            pos = torch.arange(len(p) - 1 - start, len(p) - 1 - start + len(c), device=device)
            out[i] = logp[r, pos, torch.tensor(c, device=device)].double().cpu().numpy()
    return out


VARIANTS = {"today": today_logprobs, "new": NEW_LOGPROBS}


def head_cost(pairs, batch_size: int, hidden: int, vocab: int) -> dict[str, float]:
    """LM head GFLOP of each variant (2 * hidden * vocab per projected position) and each one's share of padded tokens
    (today: chunks of ``batch_size`` in length order; new: :func:`~read_env.distill.probes.length_batches`)."""
    lengths = [len(p) + len(c) for p, c in pairs]
    order = sorted(range(len(pairs)), key=lambda i: lengths[i])
    batches = {"today": [order[k:k + batch_size] for k in range(0, len(order), batch_size)],
               "new": probes.length_batches(lengths, batch_size)}
    today = sum(len(b) * (max(lengths[i] for i in b) - max(min(len(pairs[i][0]) for i in b) - 1, 0) - 1) for b in batches["today"])
    padding = {name: 1 - sum(lengths) / sum(len(b) * max(lengths[i] for i in b) for b in bs) for name, bs in batches.items()}
    flop = 2 * hidden * vocab / 1e9
    return {"today": today * flop, "new": sum(len(c) for _, c in pairs) * flop, "padding": padding}


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def child_peak(args) -> None:
    """In a fresh process: the peak extra resident memory (MB) of one imitation probe pass with ``args.child``."""
    student, tok = load_model(args.student_dir).eval(), load_tokenizer(args.student_dir)
    suite = probes.ProbeSuite(args.caps, args.items, not args.tiny)
    suite.build_references(lambda: sys.exit("references missing"), args.ref_tokens, cache_file=args.references)
    suite._pairs(tok)  # tokenized before the baseline
    probes.continuation_logprobs = VARIANTS[args.child]
    base, peak, done = resident_bytes(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=poll)
    thread.start()
    suite.run(student, tok)
    done.set()
    thread.join()
    print(json.dumps({"peak_extra_mb": (max(peak[0], resident_bytes()) - base) / 2**20}))


def compare_lm_heads(args, suite, student, tok, s_dir, references) -> None:
    """Part 1 (module docstring): today's and the new ``continuation_logprobs`` in the imitation probe."""
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    profiles: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        for name in (list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]):
            probes.continuation_logprobs = VARIANTS[name]
            result = suite.run(student, tok)
            seconds[name].append(result.seconds)
            profiles[name] = result.profile
    probes.continuation_logprobs = NEW_LOGPROBS
    free = [(p, c) for rows in suite._pairs(tok) for p, c, ref in rows if ref is not None]
    cost = head_cost(free, 16, student.config.hidden_size, student.config.vocab_size)
    print(f"LM head GFLOP per probe: today {cost['today']:.1f}  new {cost['new']:.1f}; padded share of the batches' tokens: "
          f"today {cost['padding']['today']:.3f}  new {cost['padding']['new']:.3f}")
    print(f"largest |profile today - new|: {np.abs(profiles['today'] - profiles['new']).max():.2e}")
    peaks = {}
    for name in VARIANTS:
        command = [sys.executable, __file__, "--child", name, "--student-dir", str(s_dir), "--references", str(references),
                   "--items", str(args.items), "--ref-tokens", str(args.ref_tokens), "--threads", str(torch.get_num_threads())]
        out = subprocess.run(command + (["--tiny"] if args.tiny else []), capture_output=True, text=True, check=True).stdout
        peaks[name] = json.loads(out.strip().splitlines()[-1])["peak_extra_mb"]
    print(f"peak extra resident memory of a probe pass (MB): today {peaks['today']:.0f}  new {peaks['new']:.0f}")
    print("probe seconds per step: " + "  ".join(f"{name} {np.mean(s):.2f} (runs {', '.join(f'{x:.2f}' for x in s)})"
                                                 for name, s in seconds.items())
          + f"  ratio today/new {np.mean(seconds['today']) / np.mean(seconds['new']):.2f}x")


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny random models and template items instead of SmolLM2 and the banks")
    ap.add_argument("--items", type=int, default=16, help="probe items per capability")
    ap.add_argument("--eval-items", type=int, default=8, help="evaluation items per capability")
    ap.add_argument("--repeats", type=int, default=3, help="timed probe passes per variant (interleaved; 0: skip part 1)")
    ap.add_argument("--ref-tokens", type=int, default=32, help="teacher reference tokens (probe_max_new_tokens)")
    ap.add_argument("--answer-tokens", type=int, default=128, help="student answer cap of correctness and evaluation (eval_max_new_tokens)")
    ap.add_argument("--with-teacher", action="store_true", help="also probe and evaluate the teacher")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--work", default=None, help="folder for the references and tiny models (default: a temporary one)")
    ap.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--student-dir", help=argparse.SUPPRESS)
    ap.add_argument("--references", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.caps = list(CAPABILITIES)
    if args.child:
        return child_peak(args)
    torch.manual_seed(0)
    work = Path(args.work or tempfile.mkdtemp())
    if args.tiny:
        t_dir = build_tiny_llama(work / "teacher", num_layers=2, hidden_size=64)
        s_dir = build_tiny_llama(work / "student", num_layers=1, hidden_size=64, tokenizer=t_dir, seed=1)
    else:
        t_dir, s_dir = ensure_default_teacher(), ensure_default_student()
    tok = load_tokenizer(s_dir)
    teacher, student = load_model(t_dir).eval(), load_model(s_dir).eval()
    references = work / f"probe_references_{'tiny' if args.tiny else 'smollm2'}_{args.items}_{args.ref_tokens}.json"
    suite = probes.ProbeSuite(args.caps, args.items, not args.tiny)
    t0 = time.perf_counter()
    teacher_tok = load_tokenizer(t_dir)
    suite.build_references(lambda: (HFEngine(teacher, teacher_tok), teacher_tok), args.ref_tokens, cache_file=references)
    print(f"threads={torch.get_num_threads()} items={args.items}/capability teacher={t_dir} student={s_dir} "
          f"references {time.perf_counter() - t0:.1f} s")

    if args.repeats:
        compare_lm_heads(args, suite, student, tok, s_dir, references)

    evaluator = Evaluator(args.caps, args.eval_items, not args.tiny, args.answer_tokens)
    try:
        correct = probes.ProbeSuite(args.caps, args.items, not args.tiny, "correctness", evaluator.hashes(), args.answer_tokens)
    except ValueError as error:
        print(f"correctness probe not built: {error}")
        return
    models = {"student": student, **({"teacher": teacher} if args.with_teacher else {})}
    rows = []
    for model_name, model in models.items():
        imitation, correctness, evaluation = suite.run(model, tok), correct.run(model, tok), evaluator.run(model, tok)
        print(f"{model_name}: seconds per probe imitation {imitation.seconds:.2f}  correctness {correctness.seconds:.2f}  "
              f"(evaluation {evaluation.seconds:.2f})")
        print(f"{'capability':18s} {'imitation':>16s} {'correctness':>16s} {'evaluation':>10s}")
        for k, c in enumerate(args.caps):
            print(f"{c:18s} {imitation.profile[k]:8.3f} +- {imitation.stderr[k]:.3f} {correctness.profile[k]:8.3f} +- "
                  f"{correctness.stderr[k]:.3f} {evaluation.scores[k]:10.3f}")
            rows.append((imitation.profile[k], correctness.profile[k], evaluation.scores[k]))
        print(f"mean standard error: imitation {imitation.stderr.mean():.3f}  correctness {correctness.stderr.mean():.3f}")
    a = np.array(rows)
    print(f"Pearson with evaluation over {len(a)} (model, capability) pairs: imitation {pearson(a[:, 0], a[:, 2]):.2f}  "
          f"correctness {pearson(a[:, 1], a[:, 2]):.2f}")


if __name__ == "__main__":
    main()

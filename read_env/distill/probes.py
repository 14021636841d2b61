"""Fixed, held-out probe suite: a low-noise capability profile ``s in [0, 1]^K``.

Scoring (per item, then the mean over a capability's items; ``stderr = std(ddof=1) / sqrt(n)``):

* **Multiple-choice** items (MMLU for general knowledge, ARC for reasoning, when the banks are
  installed): the probability mass the student puts on the correct option letter, normalized
  over the option letters, ``p(gold) / sum_o p(o)`` (continuous, so lower noise than accuracy);
  one forward pass per item (the letters are single next tokens).
* **Free-form** items (all other items): the teacher's share of the two cross-entropies on the
  teacher's own greedy reference answer, in mean negative log-probability per token::

      score = nll_teacher / (nll_teacher + nll_student)       in (0, 1)

  0.5 when the student predicts the reference as well as the teacher does, falling toward 0 as
  the student's per-token loss grows (0.11 for a student at 12 nats/token against a teacher at
  1.5), above 0.5 if it beats the teacher; smooth and never clipped. It stays informative for a
  student worse than chance, where the inverse perplexity ``exp(-nll_student)`` (about 1e-5) or a
  chance-normalized score (below 0) shows nothing. References and ``nll_teacher`` are
  computed once per teacher (:meth:`ProbeSuite.build_references`) and can be cached on disk.

Items come from the probe split of the real banks or from template items with a fixed seed per
capability (``10_000 + index in CAPABILITIES``), never from the generation stream (their hashes
go into the leakage filter). Tokenization is cached; forward passes are batched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import banks, decontamination
from .generation import SamplingConfig, chat_text, generate_batch
from .prompts import CAPABILITIES, Prompt, template_items, text_hash
from .safe_files import replace_file

PROBE_SEED_BASE = 10_000


@dataclass
class ProbeResult:
    """``profile`` [K] in [0,1], ``stderr`` [K] (>= 0), ``seconds`` wall time of the probe pass."""

    profile: np.ndarray
    stderr: np.ndarray
    seconds: float
    item_scores: list[np.ndarray] = field(default_factory=list)


def probe_items(capability: str, n: int, use_banks: bool = True, item_source: str = "legacy", clip: bool = False) -> list[Prompt]:
    """The ``n`` fixed probe items of ``capability`` (``"legacy"``: bank probe split first, then templates;
    ``"full_splits"``: :func:`~read_env.distill.decontamination.take`, all of them with ``clip`` when fewer exist, else
    a ``ValueError``)."""
    if item_source == "full_splits":
        return decontamination.take(capability, "probe", n, use_banks, clip)
    items: list[Prompt] = []
    if use_banks:
        items = list(banks.bank_splits(capability)["probe"][:n])
    if len(items) < n:
        seed = PROBE_SEED_BASE + CAPABILITIES.index(capability)
        items += template_items(capability, n - len(items), seed)
    return items


@torch.no_grad()
def continuation_logprobs(model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int,
                          batch_size: int = 16) -> list[np.ndarray]:
    """Per-token log-probs of each continuation given its prompt (token-id lists).

    Returns one float64 array per pair with ``len(continuation)`` entries.
    """
    device = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for k in tqdm(range(0, len(order), batch_size), desc="scoring answers", unit="batch", delay=5, leave=False):
        idx = order[k:k + batch_size]
        seqs = [pairs[i][0] + pairs[i][1] for i in idx]
        L = max(map(len, seqs))
        ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        start = max(min(len(pairs[i][0]) for i in idx) - 1, 0)
        keep = torch.arange(start, L - 1, device=device)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep).logits
        logp = F.log_softmax(logits.float(), dim=-1)
        for r, i in enumerate(idx):
            p, c = pairs[i]
            pos = torch.arange(len(p) - 1 - start, len(p) - 1 - start + len(c), device=device)
            out[i] = logp[r, pos, torch.tensor(c, device=device)].double().cpu().numpy()
    return out  # type: ignore[return-value]


@torch.no_grad()
def option_probabilities(model, items: Sequence[tuple[list[int], list[int]]], pad_id: int,
                         batch_size: int = 16) -> list[np.ndarray]:
    """For (prompt ids, option token ids) items: the next-token probabilities of the options,
    normalized over the options (one forward pass per item, batched, right-padded)."""
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for k in tqdm(range(0, len(items), batch_size), desc="scoring options", unit="batch", delay=5, leave=False):
        chunk = items[k:k + batch_size]
        L = max(len(p) for p, _ in chunk)
        ids = torch.full((len(chunk), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), L), dtype=torch.long)
        for r, (p, _) in enumerate(chunk):
            ids[r, :len(p)] = torch.tensor(p)
            mask[r, :len(p)] = 1
        last = sorted({len(p) - 1 for p, _ in chunk})  # the vocabulary projection only where a row's prompt ends
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=torch.tensor(last, device=device)).logits
        for r, (p, options) in enumerate(chunk):
            logp = F.log_softmax(logits[r, last.index(len(p) - 1)].float(), dim=-1)[torch.tensor(options, device=device)]
            prob = torch.softmax(logp, dim=-1)
            out.append(prob.double().cpu().numpy())
    return out


class ProbeSuite:
    """Probe items for ``capabilities`` with cached tokenization for one student tokenizer."""

    def __init__(self, capabilities: Sequence[str], n_items: int = 16, use_banks: bool = True, item_source: str = "legacy",
                 clip_items: bool = False):
        self.capabilities = list(capabilities)
        self.items = {c: probe_items(c, n_items, use_banks, item_source, clip_items) for c in self.capabilities}
        self.references: dict[str, dict] = {}  # item hash -> {"text", "teacher_logprob"}
        self._cache: dict[int, list[list[tuple[list[int], list[int], int | None]]]] = {}

    def hashes(self) -> set[str]:
        return {text_hash(p.text) for items in self.items.values() for p in items}

    def build_references(self, load_teacher: Callable[[], tuple[Any, Any]], max_new_tokens: int = 32, batch_size: int = 16,
                         cache_file: str | Path | None = None) -> None:
        """Greedy teacher answers for the free-form items and the teacher's mean log-probability of
        each (loaded from ``cache_file`` if present, missing ones added and saved). ``load_teacher()``
        returns (teacher model, tokenizer); it is called only when some reference is missing."""
        path = Path(cache_file) if cache_file else None
        if path is not None and path.exists():
            self.references = json.loads(path.read_text())
        self._cache.clear()
        todo = [p for items in self.items.values() for p in items
                if p.check != "mc" and text_hash(p.text) not in self.references]
        if not todo:
            return
        teacher, teacher_tok = load_teacher()
        cfg = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
        enc = lambda text: teacher_tok(text, add_special_tokens=False)["input_ids"]
        for k in tqdm(range(0, len(todo), batch_size), desc="teacher probe references", unit="batch", delay=5, leave=False):
            chunk = todo[k:k + batch_size]
            rows = generate_batch(teacher, teacher_tok, [chat_text(teacher_tok, p.text) for p in chunk],
                                  [max_new_tokens] * len(chunk), cfg)
            texts = [teacher_tok.decode(toks, skip_special_tokens=False) for toks, _ in rows]
            pairs = [(enc(chat_text(teacher_tok, p.text)), enc(text) or [teacher_tok.eos_token_id])
                     for p, text in zip(chunk, texts)]
            lps = continuation_logprobs(teacher, pairs, teacher_tok.pad_token_id, batch_size)
            for p, text, lp in zip(chunk, texts, lps):
                self.references[text_hash(p.text)] = {"text": text, "teacher_logprob": float(lp.mean())}
        if path is not None:
            replace_file(path, json.dumps(self.references).encode())

    def _pairs(self, tokenizer) -> list[list[tuple[list[int], list[int], float | None]]]:
        """Per capability, per item: (prompt ids, continuation ids, teacher mean log-prob or None).

        For multiple-choice items the continuation holds the option letters' single token ids.
        """
        key = id(tokenizer)
        if key not in self._cache:
            enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
            per_cap = []
            for c in self.capabilities:
                rows = []
                for p in self.items[c]:
                    prompt_ids = enc(chat_text(tokenizer, p.text))
                    if p.check == "mc":
                        letters = [enc(banks.LETTERS[o]) for o in range(len(p.choices or []))]
                        if any(len(ids) != 1 for ids in letters):
                            raise ValueError("option letters must be single tokens for this tokenizer")
                        rows.append((prompt_ids, [ids[0] for ids in letters], None))
                    else:
                        ref = self.references.get(text_hash(p.text))
                        if ref is None:
                            raise RuntimeError("probe references missing: call build_references first")
                        rows.append((prompt_ids, enc(ref["text"]) or [tokenizer.eos_token_id], ref["teacher_logprob"]))
                per_cap.append(rows)
            self._cache[key] = per_cap
        return self._cache[key]

    @torch.no_grad()
    def run(self, model, tokenizer, batch_size: int = 16) -> ProbeResult:
        """Score ``model``: profile [K] in [0,1] with standard errors (see module docstring)."""
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        per_cap = self._pairs(tokenizer)
        mc = [(p, c) for rows in per_cap for p, c, ref in rows if ref is None]
        free = [(p, c) for rows in per_cap for p, c, ref in rows if ref is not None]
        mc_scores = iter(option_probabilities(model, mc, tokenizer.pad_token_id, batch_size))
        free_lps = iter(continuation_logprobs(model, free, tokenizer.pad_token_id, batch_size))
        profile, stderr, all_scores = [], [], []
        for c, rows in zip(self.capabilities, per_cap):
            scores = []
            for p, (_, _, teacher_lp) in zip(self.items[c], rows):
                if teacher_lp is None:
                    scores.append(float(next(mc_scores)[p.gold]))
                else:
                    teacher_nll, student_nll = -teacher_lp, -next(free_lps).mean()
                    scores.append(float(teacher_nll / max(teacher_nll + student_nll, 1e-12)))
            s = np.clip(np.array(scores), 0.0, 1.0)
            all_scores.append(s)
            profile.append(s.mean())
            stderr.append(s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else 0.0)
        if was_training:
            model.train()
        return ProbeResult(np.array(profile), np.array(stderr), time.perf_counter() - t0, all_scores)

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

With ``score="correctness"`` (:data:`PROBE_SCORES`) a free-form item instead scores 1 when the student's greedy
answer passes the item's automatic check (:func:`~read_env.distill.evaluation.check_answer`, as evaluation
scores it: exact number, contains, unit tests, ...) and 0 otherwise; no teacher references are needed.

Items come from the probe split of the real banks or from template items with a fixed seed per
capability (``10_000 + index in CAPABILITIES``), never from the generation stream (their hashes
go into the leakage filter). The correctness probe draws only items with a check, distinct and outside
the evaluation items (``exclude``). Tokenization is cached; forward passes and generation are batched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import banks, decontamination
from .config import PROBE_SCORES
from .generation import SamplingConfig, chat_text, generate_batch
from .prompts import CAPABILITIES, Prompt, template_items, text_hash
from .safe_files import replace_file

PROBE_SEED_BASE = 10_000
MAX_PADDING = 0.2  # largest share of padded tokens in a batch of continuation_logprobs


@dataclass
class ProbeResult:
    """``profile`` [K] in [0,1], ``stderr`` [K] (>= 0), ``seconds`` wall time of the probe pass."""

    profile: np.ndarray
    stderr: np.ndarray
    seconds: float
    item_scores: list[np.ndarray] = field(default_factory=list)


def probe_items(capability: str, n: int, use_banks: bool = True, exclude: Collection[str] | None = None,
                item_source: str = "legacy", clip: bool = False) -> list[Prompt]:
    """The ``n`` fixed probe items of ``capability``.

    ``item_source="full_splits"``: :func:`~read_env.distill.decontamination.take` (disjoint from the evaluation items
    by construction; those with an automatic check when ``exclude`` is a set; all of them with ``clip`` when fewer
    exist, else a ``ValueError``). ``"legacy"``: bank probe
    split first, then templates; ``exclude=None``: the imitation probe's items, as ReAD-v0 draws them; a set of text
    hashes (the evaluation items'): only distinct items with an automatic check whose hash is not in it; fewer than
    ``n`` such items raises ``ValueError``.
    """
    if item_source == "full_splits":
        if exclude is None:
            return decontamination.take(capability, "probe", n, use_banks, clip)
        items = [p for p in decontamination.held_out_splits(capability, use_banks)["probe"] if p.check is not None]
        if len(items) < n and not (clip and items):
            raise ValueError(f"{capability}: {n} probe items with a check requested, {len(items)} available "
                             "(item_source='full_splits'; lower probe_items or set clip_items=True)")
        return items[:n]
    items: list[Prompt] = list(banks.bank_splits(capability)["probe"][:n]) if use_banks else []
    seed = PROBE_SEED_BASE + CAPABILITIES.index(capability)
    if exclude is None:
        return items + (template_items(capability, n - len(items), seed) if len(items) < n else [])
    chosen, seen = [], set(exclude)
    for p in items + template_items(capability, 8 * n + 64, seed):
        if p.check is not None and text_hash(p.text) not in seen and len(chosen) < n:
            chosen.append(p)
            seen.add(text_hash(p.text))
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} distinct {capability} probe items with a check lie outside the evaluation items; "
                         f"asked for {n} (lower probe_items)")
    return chosen


def length_batches(lengths: Sequence[int], batch_size: int, max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indices into ``lengths`` in batches of ascending length: at most ``batch_size`` each, and a new batch wherever
    the next (longer) item would make padding more than ``max_padding`` of the batch's padded tokens."""
    batches: list[list[int]] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and len(batches[-1]) < batch_size and total + lengths[i] >= (1 - max_padding) * (len(batches[-1]) + 1) * lengths[i]:
            batches[-1].append(i)
            total += lengths[i]
        else:
            batches.append([i])
            total = lengths[i]
    return batches


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as right-padded ``(ids, attention_mask)``, both ``[len(seqs), longest]`` long tensors."""
    ids = torch.full((len(seqs), max(map(len, seqs))), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, :len(s)] = 1
    return ids, mask


@torch.no_grad()
def continuation_logprobs(model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int,
                          batch_size: int = 16) -> list[np.ndarray]:
    """Per-token log-probs of each continuation given its (non-empty) prompt (token-id lists).

    Pairs are batched by total length (:func:`length_batches`, right-padded); the decoder (``model.get_decoder()``) runs on each batch
    and the LM head (``model.get_output_embeddings()``, so logits = ``head(last_hidden_state)`` as in Llama,
    Qwen2 and Mistral) only on the hidden states that predict a continuation token: ``sum(len(c))`` rows of
    the vocabulary projection per batch, not ``batch x (longest - shortest prompt + continuation)``.
    Returns one float64 array per pair with ``len(continuation)`` entries.
    """
    if any(not p for p, _ in pairs):
        raise ValueError("continuation_logprobs needs a non-empty prompt for every pair (the first token has no prediction)")
    device = next(model.parameters()).device
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    out: list[np.ndarray | None] = [None] * len(pairs)
    batches = length_batches([len(p) + len(c) for p, c in pairs], batch_size)
    for idx in tqdm(batches, desc="scoring answers", unit="batch", delay=5, leave=False):
        ids, mask = pad_right([pairs[i][0] + pairs[i][1] for i in idx], pad_id)
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).last_hidden_state  # [B, L, H]
        rows = torch.tensor([r for r, i in enumerate(idx) for _ in pairs[i][1]], dtype=torch.long, device=device)
        cols = torch.tensor([len(pairs[i][0]) - 1 + t for i in idx for t in range(len(pairs[i][1]))], dtype=torch.long, device=device)
        targets = torch.tensor([t for i in idx for t in pairs[i][1]], dtype=torch.long, device=device)
        logits = head(hidden[rows, cols]).float()  # [N, V], N = continuation tokens of the batch
        logp = (logits.gather(1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)).double().cpu()
        for i, part in zip(idx, logp.split([len(pairs[i][1]) for i in idx])):
            out[i] = part.numpy()
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
        ids, mask = pad_right([p for p, _ in chunk], pad_id)
        last = sorted({len(p) - 1 for p, _ in chunk})  # the vocabulary projection only where a row's prompt ends
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=torch.tensor(last, device=device)).logits
        for r, (p, options) in enumerate(chunk):
            logp = F.log_softmax(logits[r, last.index(len(p) - 1)].float(), dim=-1)[torch.tensor(options, device=device)]
            prob = torch.softmax(logp, dim=-1)
            out.append(prob.double().cpu().numpy())
    return out


class ProbeSuite:
    """Probe items for ``capabilities`` with cached tokenization for one student tokenizer."""

    def __init__(self, capabilities: Sequence[str], n_items: int = 16, use_banks: bool = True, score: str = "imitation",
                 exclude: Collection[str] = (), max_new_tokens: int = 128, item_source: str = "legacy", clip_items: bool = False):
        """``score`` in :data:`PROBE_SCORES`; for ``"correctness"``: ``exclude`` the evaluation items' text hashes,
        ``max_new_tokens`` the cap of the student's greedy answers (the imitation probe ignores both); ``item_source`` and ``clip_items`` as in :func:`probe_items`."""
        if score not in PROBE_SCORES:
            raise ValueError(f"unknown probe score {score!r}; expected one of {list(PROBE_SCORES)}")
        self.capabilities = list(capabilities)
        self.score, self.max_new_tokens = score, max_new_tokens
        drawn_outside = set(exclude) if score == "correctness" else None
        self.items = {c: probe_items(c, n_items, use_banks, drawn_outside, item_source, clip_items) for c in self.capabilities}
        self.references: dict[str, dict] = {}  # item hash -> {"text", "teacher_logprob"}
        self._cache: dict[int, list[list[tuple[list[int], list[int], float | None]]]] = {}

    def hashes(self) -> set[str]:
        return {text_hash(p.text) for items in self.items.values() for p in items}

    def build_references(self, load_teacher: Callable[[], tuple[Any, Any]], max_new_tokens: int = 32, batch_size: int = 16,
                         cache_file: str | Path | None = None) -> None:
        """Greedy teacher answers for the free-form items and the teacher's mean log-probability of
        each (loaded from ``cache_file`` if present, missing ones added and saved). ``load_teacher()``
        returns (teacher engine, teacher tokenizer), the engine answering ``generate`` and ``reference_logprobs``
        (:class:`~read_env.distill.engines.TeacherEngine`); it is called only when some reference is missing.
        A reference is the answer's tokens decoded with their special tokens (its end-of-sequence token when
        finished; an engine without token ids: its text and the tokenizer's EOS token when finished). The
        correctness probe needs none: nothing is done."""
        if self.score == "correctness":
            return
        path = Path(cache_file) if cache_file else None
        if path is not None and path.exists():
            self.references = json.loads(path.read_text())
        self._cache.clear()
        todo = [p for items in self.items.values() for p in items
                if p.check != "mc" and text_hash(p.text) not in self.references]
        if not todo:
            return
        engine, teacher_tok = load_teacher()
        cfg = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
        enc = lambda text: teacher_tok(text, add_special_tokens=False)["input_ids"]
        for k in tqdm(range(0, len(todo), batch_size), desc="teacher probe references", unit="batch", delay=5, leave=False):
            chunk = todo[k:k + batch_size]
            answers = engine.generate([p.text for p in chunk], [max_new_tokens] * len(chunk), cfg)
            texts = [teacher_tok.decode(a.token_ids, skip_special_tokens=False) if a.token_ids is not None
                     else a.text + (teacher_tok.eos_token if a.finished else "") for a in answers]
            pairs = [(enc(chat_text(teacher_tok, p.text)), enc(text) or [teacher_tok.eos_token_id])
                     for p, text in zip(chunk, texts)]
            lps = engine.reference_logprobs(pairs)
            for p, text, lp in zip(chunk, texts, lps):
                self.references[text_hash(p.text)] = {"text": text, "teacher_logprob": float(np.mean(lp))}
        if path is not None:
            replace_file(path, json.dumps(self.references).encode())

    def _pairs(self, tokenizer) -> list[list[tuple[list[int], list[int], float | None]]]:
        """Per capability, per item: (prompt ids, continuation ids, teacher mean log-prob or None).

        For multiple-choice items the continuation holds the option letters' single token ids; free-form items of the
        correctness probe have no continuation and ``None``.
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
                    elif self.score == "correctness":
                        rows.append((prompt_ids, [], None))
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
        rows = [(p, row) for c, cap_rows in zip(self.capabilities, per_cap) for p, row in zip(self.items[c], cap_rows)]
        mc = [row[:2] for p, row in rows if p.check == "mc"]
        free = [(p, row) for p, row in rows if p.check != "mc"]
        mc_scores = iter(option_probabilities(model, mc, tokenizer.pad_token_id, batch_size))
        if self.score == "correctness":
            free_scores = iter(self._correct(model, tokenizer, free, batch_size))
        else:
            free_lps = continuation_logprobs(model, [row[:2] for _, row in free], tokenizer.pad_token_id, batch_size)
            free_scores = iter(imitation_score(row[2], lp) for (_, row), lp in zip(free, free_lps))
        profile, stderr, all_scores = [], [], []
        for c in self.capabilities:
            scores = [float(next(mc_scores)[p.gold]) if p.check == "mc" else next(free_scores) for p in self.items[c]]
            s = np.clip(np.array(scores), 0.0, 1.0)
            all_scores.append(s)
            profile.append(s.mean())
            stderr.append(s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else 0.0)
        if was_training:
            model.train()
        return ProbeResult(np.array(profile), np.array(stderr), time.perf_counter() - t0, all_scores)

    def _correct(self, model, tokenizer, free: Sequence[tuple[Prompt, tuple[list[int], list[int], None]]],
                 batch_size: int) -> list[float]:
        """1.0 where the student's greedy answer (at most ``max_new_tokens``) to a free-form item passes its check,
        else 0.0; generated in batches of similar prompt lengths."""
        from .evaluation import check_answer  # evaluation imports this module

        cfg = SamplingConfig(max_new_tokens=self.max_new_tokens, temperature=0.0, batch_size=batch_size)
        order = sorted(range(len(free)), key=lambda i: len(free[i][1][0]))
        scores = [0.0] * len(free)
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            texts = [chat_text(tokenizer, free[i][0].text) for i in idx]
            answers = generate_batch(model, tokenizer, texts, [self.max_new_tokens] * len(idx), cfg)
            for i, (tokens, _) in zip(idx, answers):
                scores[i] = float(check_answer(free[i][0], tokenizer.decode(tokens, skip_special_tokens=True)))
        return scores


def imitation_score(teacher_logprob: float, student_logprobs: np.ndarray) -> float:
    """``nll_t / (nll_t + nll_s)`` from the teacher's mean log-prob of its reference and the student's per-token
    log-probs of it (see module docstring)."""
    teacher_nll, student_nll = -teacher_logprob, -student_logprobs.mean()
    return float(teacher_nll / max(teacher_nll + student_nll, 1e-12))

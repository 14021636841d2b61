"""Batched teacher generation with exact generated-token counts under a token budget.

Prompts are rendered with the teacher's chat template (one user turn, generation prompt added),
left-padded and generated in batches (greedy when ``temperature == 0``, else temperature /
top-p sampling through the global torch RNG). Every row has its own cap on new tokens
(``StoppingCriteria`` per row); a row's **generated count** is the number of tokens the teacher
produced up to and including its first end-of-sequence token, or its cap -- never padding.

:func:`generate_budgeted` draws prompts (answered by a teacher engine, :mod:`read_env.distill.engines`) until the generation cap ``G`` (teacher tokens) or the
step allotment ``T`` (generated + student prompt + answer tokens) is exhausted: each prompt's cap
is ``min(max_new_tokens, G_left, (T_left - student_prompt_tokens) // 2)`` (an answer token costs
one generation and one training token), reserved before generation and refunded by its unused
part afterwards, so ``sum(generated) <= G`` and ``generated + planned training <= T`` exactly.
:func:`generate_budgeted_together` runs that rule for several capabilities at once, their prompts in the
same engine calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .prompts import Prompt


@dataclass
class SamplingConfig:
    """Decoding settings: ``temperature == 0`` means greedy; ``top_p`` in (0, 1]."""

    max_new_tokens: int = 64
    temperature: float = 0.2
    top_p: float = 0.95
    batch_size: int = 16


@dataclass
class Completion:
    """A teacher answer to ``prompt``: ``n_generated`` counted teacher tokens (EOS included if produced);
    ``token_ids`` are those tokens when the engine returns them (``None`` for a remote server)."""

    prompt: Prompt
    token_ids: list[int] | None
    text: str
    finished: bool  # ended with EOS (not cut by its cap)
    n_generated: int


@dataclass
class GenerationResult:
    completions: list[Completion] = field(default_factory=list)
    generated: int = 0  # teacher tokens produced (== sum of completion lengths)
    planned_training: int = 0  # student prompt + completion tokens (same-tokenizer estimate)
    seconds: float = 0.0


def chat_text(tokenizer, user_text: str) -> str:
    """The chat-template rendering of one user turn with the assistant generation prompt."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}], tokenize=False,
                                             add_generation_prompt=True)
    return f"User: {user_text}\nAssistant: "


def eos_ids(model, tokenizer) -> set[int]:
    """All token ids that end a teacher answer."""
    ids = set()
    for src in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif src is not None:
            ids.update(int(i) for i in src)
    return ids


class _RowCaps:
    """Per-row stopping: row i is done once it has ``caps[i]`` new tokens."""

    def __init__(self, prompt_len: int, caps: Sequence[int], device):
        self.prompt_len = prompt_len
        self.caps = torch.tensor(list(caps), device=device)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_len) >= self.caps


@torch.no_grad()
def generate_batch(model, tokenizer, texts: Sequence[str], caps: Sequence[int],
                   cfg: SamplingConfig) -> list[tuple[list[int], bool]]:
    """Generate for already chat-rendered ``texts`` with per-row caps (>= 1).

    Returns, per row, (generated token ids cut at first EOS inclusive or at the cap, finished).
    """
    from transformers import GenerationConfig, StoppingCriteriaList

    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    plen = enc["input_ids"].shape[1]
    eos = sorted(eos_ids(model, tokenizer))
    sample = cfg.temperature > 0
    gcfg = GenerationConfig(max_new_tokens=int(max(caps)), do_sample=sample,
                            temperature=cfg.temperature if sample else None,
                            top_p=cfg.top_p if sample else None, top_k=None,
                            pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, bos_token_id=None)
    out = model.generate(**enc, generation_config=gcfg,
                         stopping_criteria=StoppingCriteriaList([_RowCaps(plen, caps, device)]))
    gen = out[:, plen:].tolist()
    eos_set = set(eos)
    rows = []
    for toks, cap in zip(gen, caps):
        toks = toks[:cap]
        cut = next((i for i, t in enumerate(toks) if t in eos_set), None)
        rows.append((toks[:cut + 1], True) if cut is not None else (toks, False))
    return rows


def generate_budgeted(engine, next_prompt: Callable[[], Prompt], gen_budget: int,
                      total_budget: int, student_prompt_len: Callable[[Prompt], int],
                      cfg: SamplingConfig, min_new_tokens: int = 8) -> GenerationResult:
    """Draw prompts from ``next_prompt`` and generate until a budget is exhausted.

    Guarantees ``result.generated <= gen_budget`` and (for a student sharing the teacher's
    tokenizer) ``result.generated + result.planned_training <= total_budget``. Stops when the
    next prompt cannot receive ``min_new_tokens`` within both budgets (the rest stays unspent).
    """
    return generate_budgeted_together(engine, [(next_prompt, gen_budget, total_budget)], student_prompt_len, cfg, min_new_tokens)[0]


def generate_budgeted_together(engine, requests: Sequence[tuple[Callable[[], Prompt], int, int]],
                               student_prompt_len: Callable[[Prompt], int], cfg: SamplingConfig,
                               min_new_tokens: int = 8) -> list[GenerationResult]:
    """:func:`generate_budgeted` for several ``(next_prompt, gen_budget, total_budget)`` requests at once (one per
    capability): each round reserves up to ``cfg.batch_size`` prompts of every unfinished request and the engine
    answers all of them in one call; each request keeps its own budgets, so its prompts, caps and answers (under
    greedy decoding) are those of its own :func:`generate_budgeted`. Prompts are drawn round by round, request by
    request. ``seconds`` of each result: the wall time of the whole call.
    """
    results = [GenerationResult() for _ in requests]
    t0 = time.perf_counter()
    left = [[int(gen_budget), int(total_budget)] for _, gen_budget, total_budget in requests]
    active = list(range(len(requests)))
    floor = max(1, min(min_new_tokens, cfg.max_new_tokens))
    while active:
        batch: list[tuple[int, Prompt, int, int]] = []  # (request, prompt, student prompt tokens, cap)
        for r in list(active):
            budget, taken = left[r], 0
            while taken < cfg.batch_size:
                p = requests[r][0]()
                plen = student_prompt_len(p)
                cap = min(cfg.max_new_tokens, budget[0], (budget[1] - plen) // 2)
                if cap < floor:
                    active.remove(r)
                    break
                budget[0] -= cap
                budget[1] -= plen + 2 * cap
                batch.append((r, p, plen, cap))
                taken += 1
        if not batch:
            break
        batch.sort(key=lambda b: len(b[1].text))  # similar lengths -> less left padding
        answers = engine.generate([p.text for _, p, _, _ in batch], [c for *_, c in batch], cfg)
        for (r, p, plen, cap), answer in zip(batch, answers):
            n, res = answer.generated, results[r]
            left[r][0] += cap - n
            left[r][1] += 2 * (cap - n)
            res.generated += n
            res.planned_training += plen + n
            res.completions.append(Completion(p, answer.token_ids, answer.text, answer.finished, n))
    for res in results:
        res.seconds = time.perf_counter() - t0
    return results

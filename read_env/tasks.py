"""Task cards: what a task needs, as a requirement vector ``r_tau`` on the capability simplex.

The paper derives ``r_tau`` from a task card (description, format, exemplars); its public code prefers a
manual vector in the card, which is what these cards hold. The eight single-capability tasks are the
paper's per-capability evaluations; the multi-capability tasks mix capabilities the way their benchmarks
do. ``"random"`` draws a requirement per episode: ``Dirichlet(0.5)`` over the capabilities, from the
episode's seeded generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from read_env.capabilities import PAPER_CAPABILITIES

SIMPLEX_ATOL = 1e-3
"""Largest ``|sum - 1|`` accepted for a vector that must lie on the simplex (float32 rounding is ~1e-7)."""

MULTI_TASK_POWER = 0.0
"""Power of the multi-capability tasks' utility in ``ReAD-Surrogate-v1``: the weighted geometric mean, so each
required capability is a complement (a modelling choice; the paper leaves ``F_tau`` unspecified)."""

MULTI_TASK_SHORTFALL_POWER = 1.25
"""Power ``q`` of the multi-capability tasks' shortfall utility in ``ReAD-Surrogate-v2``, ``F = a . t - M_q(t - s; a)``
(calibrated in :mod:`read_env.utility` so that ``w = r`` beats uniform and ``r``'s top capability is the card's)."""

RANDOM_TASK = "random"
RANDOM_TASK_CONCENTRATION = 0.5


@dataclass(frozen=True)
class TaskCard:
    """A named task: its card text, an example benchmark, and its utility over capabilities.

    ``weights`` (by capability) are the manual requirement vector of ``ReAD-Surrogate-v0`` and the public
    code; ``ReAD-Surrogate-v1`` reads them, with ``power``, as the task utility ``F_tau``, a weighted power
    mean (:mod:`read_env.utility`; ``power=1`` is linear). ``input_format`` and ``exemplars`` complete the
    card text that the paper's requirement identifier reads.
    """

    name: str
    description: str
    benchmark: str
    weights: Mapping[str, float] = field(default_factory=dict)
    power: float = 1.0
    input_format: str = ""
    exemplars: tuple[str, ...] = ()

    def requirement(self, capabilities: Sequence[str]) -> np.ndarray:
        """The requirement vector over ``capabilities``, float64 shape [K], renormalized to sum to 1.

        Capabilities the card does not name get weight 0; a card that needs none of ``capabilities`` is an
        error.
        """
        vector = np.array([self.weights.get(name, 0.0) for name in capabilities], dtype=np.float64)
        if vector.sum() <= 0:
            raise ValueError(f"task {self.name!r} needs none of the capabilities {list(capabilities)}")
        return vector / vector.sum()


def _single(capability: str, description: str, benchmark: str, input_format: str, exemplars: tuple[str, ...]) -> TaskCard:
    return TaskCard(capability, description, benchmark, {capability: 1.0}, input_format=input_format, exemplars=exemplars)


TASKS: dict[str, TaskCard] = {
    card.name: card
    for card in (
        _single(
            "general_knowledge", "Answer factual questions across academic subjects.", "MMLU",
            'A multiple-choice question with four options.',
            ('Q: Which gas do plants absorb? (A) oxygen (B) carbon dioxide (C) helium (D) neon A: B', 'Q: In which century did the printing press appear in Europe? A: the 15th'),
        ),
        _single(
            "reasoning", "Solve multi-step logic and commonsense puzzles.", "BBH",
            'A puzzle stated in a few sentences, then a question.',
            ('Q: Ann is taller than Bo, Bo is taller than Cy. Who is shortest? A: Cy', 'Q: The glass fell on stone. Is it likely intact? A: no'),
        ),
        _single(
            "math", "Solve competition and grade-school math problems.", "MATH / GSM8K",
            'A math problem; the answer is a number or expression.',
            ('Q: A shirt costs 12 dollars. How much do 4 cost? A: 48', 'Q: Find x if 3x - 7 = 11. A: 6'),
        ),
        _single(
            "code", "Write functions that pass unit tests.", "HumanEval / MBPP",
            'A python function signature with a docstring and tests.',
            ('Q: def square(n): """Return n squared.""" A: return n * n', 'Q: def first(xs): """Return the first item or None.""" A: return xs[0] if xs else None'),
        ),
        _single(
            "tool_use", "Choose tools and fill their arguments as JSON calls.", "BFCL",
            'A user request and tool definitions as JSON schemas.',
            ('Q: Convert 10 euros to dollars. A: {"tool": "convert", "amount": 10, "from": "EUR", "to": "USD"}', 'Q: Remind me at 9am. A: {"tool": "reminder", "time": "09:00"}'),
        ),
        _single(
            "long_context", "Find and combine facts spread over long documents.", "LongBench",
            'A document of many thousand words followed by a question.',
            ('Q: [a 30-page contract] When does the lease end? A: 31 March 2027', 'Q: [meeting minutes] Who approved the budget? A: the finance committee'),
        ),
        _single(
            "steerability", "Follow formatting and content instructions exactly.", "IFEval",
            'An instruction with explicit constraints on format, length or content.',
            ('Q: List three fruits, lowercase, comma separated. A: apple, pear, plum', 'Q: Write one sentence without the letter e. A: A cat sat on a mat.'),
        ),
        _single(
            "multilingual", "Understand and answer in many languages.", "MGSM / XCOPA",
            'A question or premise written in one of many languages.',
            ('Q: Wie viele Beine hat eine Spinne? A: acht', 'Q: ¿Cuál es el río más largo de África? A: el Nilo'),
        ),
        TaskCard(
            "math_word_problems",
            "Grade-school word problems: read the story, reason step by step, compute the number.",
            "GSM8K",
            {"math": 0.5, "reasoning": 0.3, "general_knowledge": 0.2},
            power=MULTI_TASK_POWER,
            input_format='A short story problem; the answer is a single number.',
            exemplars=('Q: Tom has 3 boxes of 12 eggs and breaks 5. How many are left? A: 31', 'Q: A bus leaves at 9:40 and the ride takes 35 minutes. When does it arrive? A: 10:15'),
        ),
        TaskCard(
            "science_qa",
            "Multiple-choice science questions that need facts and some inference.",
            "ARC-Challenge",
            {"general_knowledge": 0.5, "reasoning": 0.35, "math": 0.15},
            power=MULTI_TASK_POWER,
            input_format='A science question with four answer options.',
            exemplars=('Q: Which material conducts heat best? (A) wood (B) copper (C) glass (D) wool A: B', 'Q: A ball is dropped; what force pulls it down? A: gravity'),
        ),
        TaskCard(
            "coding_assistant",
            "Write code to a user's specification and format, calling tools when asked.",
            "MBPP with format constraints",
            {"code": 0.5, "steerability": 0.2, "reasoning": 0.15, "tool_use": 0.15},
            power=MULTI_TASK_POWER,
            input_format='A coding request with style and format requirements, sometimes with tools to call.',
            exemplars=('Q: Write a python function that reverses a string; code only, no comments. A: def reverse(s): return s[::-1]', 'Q: Run the tests for utils.py. A: {"tool": "run_tests", "path": "utils.py"}'),
        ),
        TaskCard(
            "agentic_tool_use",
            "Plan and call tools over a long interaction, following a system prompt.",
            "tau-bench",
            {"tool_use": 0.45, "steerability": 0.25, "long_context": 0.15, "code": 0.15},
            power=MULTI_TASK_POWER,
            input_format='A system prompt, tool schemas and a long conversation with a user.',
            exemplars=('Q: [policy, 20 turns] Change my flight to Friday. A: {"tool": "update_booking", "day": "Friday"}', 'Q: [policy] Refund order 512. A: {"tool": "refund", "order_id": 512}'),
        ),
        TaskCard(
            "multilingual_qa",
            "Answer knowledge questions asked in several languages, in the asker's language.",
            "MMLU-ProX",
            {"multilingual": 0.45, "general_knowledge": 0.35, "steerability": 0.2},
            power=MULTI_TASK_POWER,
            input_format='A knowledge question in one of several languages; answer in that language.',
            exemplars=('Q: Quel est le plus grand océan? A: le Pacifique', 'Q: ¿Quién pintó la Mona Lisa? A: Leonardo da Vinci'),
        ),
        TaskCard(
            "long_document_qa",
            "Answer questions whose evidence is spread over a long report.",
            "LongBench QA",
            {"long_context": 0.45, "general_knowledge": 0.3, "reasoning": 0.25},
            power=MULTI_TASK_POWER,
            input_format='A long report of many sections, then a question about it.',
            exemplars=('Q: [annual report, 80 pages] Which region grew fastest? A: Asia', 'Q: [court ruling] On what grounds was the appeal denied? A: lack of new evidence'),
        ),
        TaskCard(
            "chat_assistant",
            "A general assistant: instructions first, then knowledge, languages and light coding.",
            "MT-Bench",
            {"steerability": 0.4, "general_knowledge": 0.2, "multilingual": 0.15, "reasoning": 0.15, "code": 0.1},
            power=MULTI_TASK_POWER,
            input_format='A chat message from a user, with instructions about tone and format.',
            exemplars=('Q: Explain photosynthesis in two sentences for a child. A: Plants use sunlight to make food. They breathe in air and give out oxygen.', 'Q: Translate "thank you" into Italian and answer in bold. A: **grazie**'),
        ),
    )
}

SINGLE_CAPABILITY_TASKS: tuple[str, ...] = PAPER_CAPABILITIES
MULTI_CAPABILITY_TASKS: tuple[str, ...] = tuple(name for name in TASKS if name not in PAPER_CAPABILITIES)


def check_simplex(vector: object, size: int, what: str) -> np.ndarray:
    """Return ``vector`` as float64 [size] if it is finite, non-negative and sums to 1 within SIMPLEX_ATOL.

    The result is renormalized to sum to exactly 1. Raises ``ValueError`` naming ``what`` otherwise.
    """
    array = np.asarray(vector, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f"{what} must have shape ({size},), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} must be finite, got {array.tolist()}")
    if (array < 0).any():
        raise ValueError(f"{what} must be non-negative, got {array.tolist()}")
    if abs(array.sum() - 1.0) > SIMPLEX_ATOL:
        raise ValueError(f"{what} must sum to 1 (within {SIMPLEX_ATOL}), sums to {array.sum():.6g}")
    return array / array.sum()


def resolve_requirement(
    task: str | None,
    requirement: object | None,
    capabilities: Sequence[str],
    rng: np.random.Generator | None = None,
) -> tuple[str, np.ndarray]:
    """The episode's (task name, requirement vector [K]).

    ``requirement`` (a vector [K] or a ``{capability: weight}`` mapping, on the simplex) wins over ``task``;
    ``task="random"`` draws ``Dirichlet(0.5)`` from ``rng`` (required then). Unknown task or capability names raise
    ``ValueError``.
    """
    if requirement is not None:
        if isinstance(requirement, Mapping):
            unknown = [name for name in requirement if name not in capabilities]
            if unknown:
                raise ValueError(f"requirement names unknown capabilities {unknown}; known: {list(capabilities)}")
            requirement = [float(requirement.get(name, 0.0)) for name in capabilities]
        return "custom", check_simplex(requirement, len(capabilities), "requirement")
    if task == RANDOM_TASK:
        if rng is None:
            raise ValueError("task='random' draws its requirement: pass a generator")
        return RANDOM_TASK, rng.dirichlet(np.full(len(capabilities), RANDOM_TASK_CONCENTRATION))
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {[*TASKS, RANDOM_TASK]}")
    return task, TASKS[task].requirement(capabilities)

"""The teacher of ReAD-Mini: each family's exact solver, wrong at a documented rate per family.

Why an exact solver rather than a trained teacher transformer: it costs no training time, it is the same on
every machine, and its quality is known exactly (held-out accuracy ``1 - error_rate`` in expectation), which
makes the teacher's ceiling a measured fact rather than something to estimate. The error rates make the
teacher imperfect as in the paper (its teacher is far from 100 on every benchmark) and vary by family, so
distillation has a different ceiling per capability; a student trained on the teacher's answers learns its
systematic skill and averages over its errors.

An error replaces one answer character (chosen uniformly) with another character of the same kind (digit
for digit, letter for letter, otherwise any other character of the answer alphabet).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

import numpy as np

from read_env.mini.families import CHARACTERS, Family

ERROR_RATES: dict[str, float] = {
    "general_knowledge": 0.08,
    "reasoning": 0.10,
    "math": 0.05,
    "code": 0.10,
    "tool_use": 0.03,
    "long_context": 0.06,
    "steerability": 0.02,
    "multilingual": 0.04,
}
"""Probability that the teacher's answer to an item of each family is wrong (one character changed)."""


def check_error_rates(overrides: Mapping[str, float] | None, capabilities: Sequence[str]) -> np.ndarray:
    """Error rates [K] in [0, 1) for ``capabilities``: :data:`ERROR_RATES` with ``overrides`` applied.

    Raises ``ValueError`` naming an unknown capability or a rate outside [0, 1).
    """
    rates = dict(ERROR_RATES)
    for name, rate in (overrides or {}).items():
        if name not in rates:
            raise ValueError(f"teacher error rate for unknown capability {name!r}; known: {list(rates)}")
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"teacher error rate of {name} must be in [0, 1), got {rate!r}")
        rates[name] = float(rate)
    return np.array([rates[name] for name in capabilities])


class Teacher:
    """Answers training items of the given families: exact, except with probability ``error_rates[k]``."""

    def __init__(self, families: Sequence[Family], error_rates: np.ndarray) -> None:
        self.families = list(families)
        self.error_rates = np.asarray(error_rates, dtype=np.float64)

    @property
    def profile(self) -> np.ndarray:
        """The teacher's expected held-out exact-match accuracy [K] in (0, 1]: ``1 - error_rates``."""
        return 1.0 - self.error_rates

    def answer(self, index: int, prompt: str, rng: np.random.Generator) -> str:
        """The teacher's answer to ``prompt`` of family ``index``: the exact answer, or one character changed."""
        answer = self.families[index].solve(prompt)
        if rng.random() >= self.error_rates[index]:
            return answer
        position = int(rng.integers(len(answer)))
        old = answer[position]
        kind = string.digits if old.isdigit() else string.ascii_lowercase if old.isalpha() else CHARACTERS
        new = str(rng.choice([char for char in kind if char != old]))
        return answer[:position] + new + answer[position + 1 :]

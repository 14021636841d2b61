"""Teacher engines: where the teacher's answers are generated (``"hf"``, ``"openai"``, ``"vllm"``).

Every engine answers ``generate(prompts, caps, sampling) -> list[Answer]``: one user turn per prompt (the
engine applies the teacher's chat template), at most ``caps[i]`` new tokens for prompt ``i``. ``Answer.generated``
is the number of tokens the teacher produced (its end-of-sequence token included), never more than the cap;
the budget ledger charges exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ..generation import SamplingConfig


class TeacherEngineError(RuntimeError):
    """The teacher engine is missing, unreachable, serves another model, or broke the token contract."""


@dataclass
class Answer:
    """One teacher answer: ``token_ids`` in the teacher's vocabulary when the engine returns them (else ``None``)."""

    text: str
    generated: int  # teacher tokens produced, EOS included; <= the request's cap
    finished: bool  # ended by the model (EOS / stop), not cut by the cap
    token_ids: list[int] | None = None


class TeacherEngine(Protocol):
    name: str

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        """Answers to user-turn ``prompts`` with per-prompt new-token caps (>= 1)."""
        ...

    def reference_logprobs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> Sequence[Sequence[float]]:
        """For (prompt ids, continuation ids) pairs in the teacher's vocabulary: the teacher's log-probability of
        each continuation token given the tokens before it (one value per continuation token)."""
        ...


def check_answer(answer: Answer, cap: int, source: str) -> Answer:
    """Refuse an answer longer than its cap (the ledger would overspend)."""
    if not 0 <= answer.generated <= cap:
        raise TeacherEngineError(f"{source} returned {answer.generated} tokens for a request capped at {cap}: the budget would be exceeded")
    return answer

"""``"hf"`` teacher engine: transformers ``generate`` in this process (batched, per-row token caps)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..generation import SamplingConfig, chat_text, generate_batch
from . import Answer, check_answer


class HFEngine:
    """Generate with a loaded causal LM and its tokenizer (see :func:`~read_env.distill.generation.generate_batch`)."""

    name = "hf"

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        rows = generate_batch(self.model, self.tokenizer, [chat_text(self.tokenizer, text) for text in prompts], caps, sampling)
        return [check_answer(Answer(self.tokenizer.decode(ids, skip_special_tokens=True), len(ids), finished, ids), cap, "the hf engine")
                for (ids, finished), cap in zip(rows, caps)]

    def reference_logprobs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        """Per-token log-probabilities of each continuation given its prompt (token-id lists), in one batch."""
        from ..probes import continuation_logprobs

        return continuation_logprobs(self.model, pairs, self.tokenizer.pad_token_id, max(1, len(pairs)))

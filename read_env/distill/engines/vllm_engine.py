"""``"vllm"`` teacher engine: vLLM's offline ``LLM`` in this process (GPU only; ``pip install 'read-env[vllm]'``).

Each prompt gets its own ``SamplingParams(max_tokens=cap)``; ``generated`` is the length of vLLM's output
token ids (its end-of-sequence token included). A sampled request's seed is drawn from the global torch RNG
(which the episode seeds and its checkpoints save), so one engine serves every episode of a process, whatever
its seed. :meth:`VLLMEngine.reference_logprobs` scores given answers with vLLM's ``prompt_logprobs``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..generation import SamplingConfig
from . import Answer, TeacherEngineError, check_answer


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    """Raise ``TeacherEngineError`` with the install command when vLLM is missing."""
    if not vllm_installed():
        raise TeacherEngineError("teacher_engine='vllm' needs vLLM, which is not installed: pip install 'read-env[vllm]' (GPU only)")


def llm_options(tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.5, max_num_seqs: int | None = None,
                max_model_len: int | None = None) -> dict:
    """Keyword arguments of ``vllm.LLM`` for these options (``None``: vLLM's default, not passed)."""
    options = {"tensor_parallel_size": tensor_parallel_size, "gpu_memory_utilization": gpu_memory_utilization,
               "max_num_seqs": max_num_seqs, "max_model_len": max_model_len}
    return {name: value for name, value in options.items() if value is not None}


class VLLMEngine:
    """vLLM generation of the model at ``path`` (a local folder or cached hub id) with :func:`llm_options`."""

    name = "vllm"

    def __init__(self, path: str, **options) -> None:
        require_vllm()
        from vllm import LLM

        self.llm = LLM(model=path, **llm_options(**options))

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        from vllm import SamplingParams

        sample = sampling.temperature > 0
        params = [SamplingParams(max_tokens=int(cap), temperature=sampling.temperature, top_p=sampling.top_p if sample else 1.0,
                                 seed=int(torch.randint(2**31 - 1, ())) if sample else None) for cap in caps]
        outputs = self.llm.chat([[{"role": "user", "content": text}] for text in prompts], sampling_params=params, use_tqdm=False)
        answers = []
        for output, cap in zip(outputs, caps):
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            answers.append(check_answer(Answer(completion.text, len(ids), completion.finish_reason == "stop", ids), cap, "vLLM"))
        return answers

    def reference_logprobs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Per-token log-probabilities of each continuation given its prompt (token-id lists): vLLM's
        ``prompt_logprobs`` over prompt + continuation, no new token."""
        from vllm import SamplingParams, TokensPrompt

        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=prompt + continuation) for prompt, continuation in pairs],
                                    SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0), use_tqdm=False)
        scores = []
        for output, (prompt, continuation) in zip(outputs, pairs):
            positions = output.prompt_logprobs[len(prompt):]
            scores.append([position[token].logprob for position, token in zip(positions, continuation)])
        return scores

"""``"vllm"`` teacher engine: vLLM's offline ``LLM`` in this process (GPU only; ``pip install 'read-env[vllm]'``).

Each prompt gets its own ``SamplingParams(max_tokens=cap)``; ``generated`` is the length of vLLM's output
token ids (its end-of-sequence token included).
"""

from __future__ import annotations

from typing import Sequence

from ..generation import SamplingConfig
from . import Answer, TeacherEngineError, check_answer


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    """Raise ``TeacherEngineError`` with the install command when vLLM is missing."""
    if not vllm_installed():
        raise TeacherEngineError("teacher_engine='vllm' needs vLLM, which is not installed: pip install 'read-env[vllm]' (GPU only)")


class VLLMEngine:
    """vLLM generation of the model at ``path`` (a local folder or cached hub id), ``seed`` for sampling."""

    name = "vllm"

    def __init__(self, path: str, seed: int = 0, gpu_memory_utilization: float = 0.5) -> None:
        require_vllm()
        from vllm import LLM

        self.llm = LLM(model=path, seed=seed, gpu_memory_utilization=gpu_memory_utilization)

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        from vllm import SamplingParams

        params = [SamplingParams(max_tokens=int(cap), temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0)
                  for cap in caps]
        outputs = self.llm.chat([[{"role": "user", "content": text}] for text in prompts], sampling_params=params, use_tqdm=False)
        answers = []
        for output, cap in zip(outputs, caps):
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            answers.append(check_answer(Answer(completion.text, len(ids), completion.finish_reason == "stop", ids), cap, "vLLM"))
        return answers

"""``"openai"`` teacher engine: any OpenAI-compatible server (vLLM, SGLang, TGI, ``transformers serve``).

Requests go to ``POST {url}/chat/completions`` (one user turn each), ``concurrency`` of them in flight.
Each request's ``max_tokens`` is its cap from the step's allotment, and the tokens charged are the server's
``usage.completion_tokens`` (checked to be within the cap). Transient errors (connection, timeout, 408,
409, 429, 5xx) are retried ``retries`` times with exponential backoff by the ``openai`` client.
:func:`check_teacher_server` (run by ``gym.make``) asks the server once, with a short timeout.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ..generation import SamplingConfig
from . import Answer, TeacherEngineError, check_answer

REACH_TIMEOUT_S = 5.0  # how long gym.make waits for the teacher server's list of models


def _openai():
    try:
        import openai
    except ImportError as error:
        raise TeacherEngineError("teacher_engine='openai' needs the openai client: pip install 'read-env[serve]'") from error
    return openai


def _check_served(client, url: str, model: str | None, timeout_s: float) -> None:
    """Raise ``TeacherEngineError`` naming ``teacher_url`` when ``client``'s server does not list its models or
    not ``model`` (``None``: any)."""
    try:
        served = [entry.id for entry in client.models.list()]
    except _openai().APIError as error:
        raise TeacherEngineError(f"the teacher server at teacher_url={url} did not answer GET /models within {timeout_s:g} s "
                                 f"({type(error).__name__}: {error})") from error
    if model is not None and model not in served:
        raise TeacherEngineError(f"the teacher server at teacher_url={url} serves {served}, not teacher_model {model!r}")


def check_teacher_server(url: str, model: str | None, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Ask the server at ``url`` once (no retry, ``timeout_s``) for its models; see :func:`_check_served`."""
    _check_served(_openai().OpenAI(base_url=url, api_key="not-needed", max_retries=0, timeout=timeout_s), url, model, timeout_s)


class OpenAIEngine:
    """Client of an OpenAI-compatible server at ``url`` (``http://HOST:PORT/v1``) serving ``model``.

    Construction checks that the server answers and lists ``model``; otherwise ``TeacherEngineError`` names
    the URL (and the models the server does serve).
    """

    name = "openai"

    def __init__(self, url: str, model: str, concurrency: int = 8, retries: int = 4, timeout_s: float = 600.0) -> None:
        self._openai = _openai()
        self.url, self.model, self.concurrency = url, model, concurrency
        self.client = self._openai.OpenAI(base_url=url, api_key="not-needed", max_retries=retries, timeout=timeout_s)
        _check_served(self.client, url, model, timeout_s)

    def _answer(self, prompt: str, cap: int, sampling: SamplingConfig) -> Answer:
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=int(cap),
                temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0)
        except self._openai.APIError as error:
            raise TeacherEngineError(f"teacher request to {self.url} failed ({type(error).__name__}: {error})") from error
        if response.usage is None or not response.choices:
            raise TeacherEngineError(f"the teacher server at {self.url} returned no token usage: the ledger cannot count its tokens")
        choice = response.choices[0]
        answer = Answer(choice.message.content or "", int(response.usage.completion_tokens), choice.finish_reason == "stop")
        return check_answer(answer, cap, f"the teacher server at {self.url}")

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda pair: self._answer(pair[0], pair[1], sampling), zip(prompts, caps)))

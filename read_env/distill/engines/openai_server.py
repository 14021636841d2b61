"""``"openai"`` teacher engine: any OpenAI-compatible server (vLLM, SGLang, TGI, ``transformers serve``).

Requests go to ``POST {url}/chat/completions`` (one user turn each) through one thread pool kept for the
engine's life: ``concurrency`` requests in flight, a new one sent as soon as one returns (no batch waits for
its slowest request before the next starts). Each request's ``max_tokens`` is its cap from the step's allotment,
and the tokens charged are the server's ``usage.completion_tokens`` (checked to be within the cap). Transient
errors (connection, timeout, 408, 409, 429, 5xx) are retried ``retries`` times with exponential backoff by the
``openai`` client; a request that still fails fails the call at once (its unsent requests are dropped).
:meth:`OpenAIEngine.reference_logprobs` scores given answers with ``POST {url}/completions`` (prompt token ids,
``echo=True, logprobs=0, max_tokens=0``: the log-probability of every prompt token; vLLM and SGLang serve it,
``transformers serve`` does not). :func:`check_teacher_server` (run by ``gym.make``) asks the server once, with a
short timeout.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

from ..generation import SamplingConfig
from . import Answer, TeacherEngineError, check_answer

REACH_TIMEOUT_S = 5.0  # how long gym.make waits for the teacher server's list of models
T = TypeVar("T")


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
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="teacher-request")

    def _all(self, request: Callable[..., T], *arguments: Sequence) -> list[T]:
        """``request`` of every tuple of ``arguments``, through the pool, in order; the first failure is raised
        once the requests in flight have returned, the requests not yet sent are dropped."""
        futures = [self.pool.submit(request, *row) for row in zip(*arguments)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((future for future in futures if future in done and future.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed.exception()
        return [future.result() for future in futures]

    def _call(self, create: Callable[..., T], **request) -> T:
        try:
            return create(model=self.model, **request)
        except self._openai.APIError as error:
            raise TeacherEngineError(f"teacher request to {self.url} failed ({type(error).__name__}: {error})") from error

    def _answer(self, prompt: str, cap: int, sampling: SamplingConfig) -> Answer:
        response = self._call(self.client.chat.completions.create, messages=[{"role": "user", "content": prompt}], max_tokens=int(cap),
                              temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0)
        if response.usage is None or not response.choices:
            raise TeacherEngineError(f"the teacher server at {self.url} returned no token usage: the ledger cannot count its tokens")
        choice = response.choices[0]
        answer = Answer(choice.message.content or "", int(response.usage.completion_tokens), choice.finish_reason == "stop")
        return check_answer(answer, cap, f"the teacher server at {self.url}")

    def generate(self, prompts: Sequence[str], caps: Sequence[int], sampling: SamplingConfig) -> list[Answer]:
        return self._all(lambda prompt, cap: self._answer(prompt, cap, sampling), prompts, caps)

    def _logprobs(self, prompt: list[int], continuation: list[int]) -> list[float]:
        response = self._call(self.client.completions.create, prompt=prompt + continuation, echo=True, logprobs=0, max_tokens=0,
                              temperature=0.0)
        logprobs = response.choices[0].logprobs if response.choices else None
        scores = ((logprobs.token_logprobs or []) if logprobs is not None else [])[len(prompt):len(prompt) + len(continuation)]
        if len(scores) < len(continuation) or None in scores:
            raise TeacherEngineError(f"the teacher server at {self.url} returned no prompt log-probabilities (POST /completions with echo=True, "
                                     "logprobs=0, max_tokens=0): serve the teacher with vLLM or SGLang, or set engine_references=False")
        return scores

    def reference_logprobs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Per-token log-probabilities of each continuation given its prompt (token-id lists), as the server's
        ``/completions`` echoes them."""
        return self._all(self._logprobs, [prompt for prompt, _ in pairs], [continuation for _, continuation in pairs])

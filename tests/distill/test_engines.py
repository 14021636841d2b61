"""Teacher engines that keep the hardware busy: a step's capabilities in the same engine calls, one persistent
request pool for a server, vLLM options, the teacher's dtype, and probe references from the serving engine."""

from __future__ import annotations

import importlib.machinery
import json
import signal
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from read_env.distill import models as models_module
from read_env.distill.assets import load_model, load_tokenizer
from read_env.distill.config import DistillerConfig
from read_env.distill.engines import TeacherEngineError
from read_env.distill.engines.hf import HFEngine
from read_env.distill.engines.openai_server import OpenAIEngine
from read_env.distill.generation import SamplingConfig, chat_text, generate_budgeted, generate_budgeted_together
from read_env.distill.probes import ProbeSuite
from read_env.distill.prompts import PromptSampler, text_hash
from tests.conftest import free_port, start_teacher_server

CAPS = ("math", "code", "steerability")


class CountingEngine:
    """Wraps an engine, recording the number of prompts of each ``generate`` call."""

    def __init__(self, engine):
        self.engine, self.name, self.calls = engine, engine.name, []

    def generate(self, prompts, caps, sampling):
        self.calls.append(len(prompts))
        return self.engine.generate(prompts, caps, sampling)


def run_capabilities(engine, budgets, together: bool, cfg: SamplingConfig, tok):
    """Each capability's ``(gen_budget, total_budget)`` answered from its own seeded prompt stream."""
    samplers = {c: PromptSampler([c], seed=3) for c in CAPS}
    plen = lambda p: len(tok(chat_text(tok, p.text), add_special_tokens=False)["input_ids"])
    requests = [(lambda c=c: samplers[c].sample_one(c, 0.5), g, t) for c, (g, t) in zip(CAPS, budgets)]
    if together:
        return generate_budgeted_together(engine, requests, plen, cfg, min_new_tokens=4)
    return [generate_budgeted(engine, *request, plen, cfg, min_new_tokens=4) for request in requests]


def test_capabilities_together_give_each_capability_its_own_answers_and_counts_under_greedy(tiny_models):
    tok, model = load_tokenizer(tiny_models["teacher"]), load_model(tiny_models["teacher"])
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.0, batch_size=2)
    budgets = [(60, 500), (30, 90), (9, 400)]  # several rounds, a total-budget limit, one short capability
    engines = {together: CountingEngine(HFEngine(model, tok)) for together in (False, True)}
    results = {together: run_capabilities(engines[together], budgets, together, cfg, tok) for together in (False, True)}
    for alone, together, (g, t) in zip(results[False], results[True], budgets):
        assert [(c.prompt.text, c.token_ids, c.n_generated, c.finished) for c in together.completions] == \
               [(c.prompt.text, c.token_ids, c.n_generated, c.finished) for c in alone.completions]
        assert (together.generated, together.planned_training) == (alone.generated, alone.planned_training)
        assert together.generated <= g and together.generated + together.planned_training <= t
    assert len(engines[True].calls) < len(engines[False].calls) and max(engines[True].calls) > cfg.batch_size


def test_batch_capabilities_step_uses_one_call_per_round_and_keeps_the_budget_rule(make_distiller):
    together = make_distiller(batch_capabilities=True, temperature=0.0)
    counting = CountingEngine(together.engine)
    together.engine = counting
    report = together.distill(np.array([300, 200, 101]), progress=0.5)
    assert report.tokens_spent + report.carry_out == 601 and report.examples > 0
    assert np.all(report.generated + report.trained <= np.array([300, 200, 101]))
    assert len(counting.calls) <= 3 and sum(counting.calls) == report.examples  # every prompt of a round in one call
    assert report.generation_seconds > 0


def test_batch_capabilities_is_off_by_default_and_changes_nothing_then(make_distiller, tmp_path):
    assert DistillerConfig().batch_capabilities is False and DistillerConfig().teacher_dtype is None
    ledgers = []
    for name in ("a", "b"):
        d = make_distiller(run_dir=tmp_path / name, temperature=0.0)
        d.distill(np.array([300, 200, 101]), progress=0.5)
        ledgers.append((tmp_path / name / "ledger.jsonl").read_text())
    assert ledgers[0] == ledgers[1]


@pytest.mark.parametrize("option,device,capability,expected", [
    (None, "cpu", "AMX", torch.float32), (None, "cuda", "", torch.bfloat16), ("auto", "cpu", "AVX512", torch.float32),
    ("auto", "cpu", "AMX_BF16", torch.bfloat16), ("float32", "cuda", "", torch.float32), ("bfloat16", "cpu", "AVX2", torch.bfloat16)])
def test_teacher_dtype(monkeypatch, option, device, capability, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert models_module.teacher_dtype(option, torch.device(device)) == expected


def test_teacher_dtype_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="teacher_dtype 'fp16'"):
        DistillerConfig(teacher_dtype="fp16")


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in ``vllm`` module: records the ``LLM`` options, answers chat with fixed ids, and scores prompt tokens
    with log-probability ``-position / 10``."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    built = []

    class LLM:
        def __init__(self, model, **options):
            built.append(options)
            self.params = []

        def chat(self, conversations, sampling_params, use_tqdm):
            self.params = sampling_params
            completion = types.SimpleNamespace(token_ids=[5, 6, 2], text="ab", finish_reason="stop")
            return [types.SimpleNamespace(outputs=[completion]) for _ in conversations]

        def generate(self, prompts, params, use_tqdm):
            return [types.SimpleNamespace(prompt_logprobs=[None] + [{token: types.SimpleNamespace(logprob=-i / 10)} for i, token in
                                                                    enumerate(prompt.prompt_token_ids[1:], 1)]) for prompt in prompts]

    module.LLM, module.built = LLM, built
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    module.TokensPrompt = lambda prompt_token_ids: types.SimpleNamespace(prompt_token_ids=prompt_token_ids)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(models_module, "_last", None)
    return module


def test_vllm_options_reach_the_engine_and_one_engine_serves_every_seed(fake_vllm, tiny_models):
    config = DistillerConfig(teacher=tiny_models["teacher"], student=tiny_models["student"], teacher_engine="vllm", tensor_parallel_size=2,
                             gpu_memory_utilization=0.9, max_num_seqs=512)
    first = models_module.shared_models(config, "cpu")
    assert fake_vllm.built == [{"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_num_seqs": 512}]
    assert models_module.shared_models(config, "cpu") is first and len(fake_vllm.built) == 1
    models_module.shared_models(DistillerConfig(**{**config.to_dict(), "max_model_len": 4096}), "cpu")
    assert fake_vllm.built[-1]["max_model_len"] == 4096
    seeds = []
    for _ in range(2):
        torch.manual_seed(7)  # an episode's seed: the requests' sampling seeds follow it
        first.engine.generate(["a", "b"], [4, 4], SamplingConfig(temperature=0.5))
        seeds.append([params.seed for params in first.engine.llm.params])
    assert seeds[0] == seeds[1] and seeds[0][0] != seeds[0][1]
    assert first.engine.reference_logprobs([([1, 2], [3, 4])]) == [[-0.2, -0.3]]


def test_vllm_options_are_checked():
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        DistillerConfig(gpu_memory_utilization=1.5)
    with pytest.raises(ValueError, match="max_num_seqs"):
        DistillerConfig(max_num_seqs=0)


class FakeServer:
    """A real HTTP server in a thread speaking the OpenAI API for one model: chat answers from ``answer(prompt,
    max_tokens) -> (text, tokens, finished)``, ``/completions`` echoes ``logprobs(ids)`` (``None``: no logprobs,
    as ``transformers serve``); it records the most requests in flight at once."""

    def __init__(self, answer, logprobs=None, model="teacher"):
        self.answer, self.logprobs, self.model = answer, logprobs, model
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.reply({"object": "list", "data": [{"id": server.model, "object": "model", "created": 0, "owned_by": "test"}]})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    self.reply(server.chat(request) if self.path.endswith("/chat/completions") else server.complete(request))
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def chat(self, request):
        text, tokens, finished = self.answer(request["messages"][0]["content"], request["max_tokens"])
        return {"id": "c", "object": "chat.completion", "created": 0, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop" if finished else "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}}

    def complete(self, request):
        ids = request["prompt"]
        logprobs = None if self.logprobs is None else {"tokens": [str(i) for i in ids], "token_logprobs": self.logprobs(ids),
                                                       "top_logprobs": None, "text_offset": list(range(len(ids)))}
        return {"id": "t", "object": "text_completion", "created": 0, "model": self.model,
                "choices": [{"index": 0, "text": "", "finish_reason": "length", "logprobs": logprobs}],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}}

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def slow_answer(prompt, max_tokens):
    time.sleep(0.05)
    return "x" * max_tokens, max_tokens, False


def test_openai_engine_keeps_concurrency_requests_in_flight_with_one_pool():
    server = FakeServer(slow_answer)
    try:
        engine = OpenAIEngine(server.url, "teacher", concurrency=4, retries=0)
        pool = engine.pool
        answers = engine.generate([f"q{i}" for i in range(16)], [3] * 16, SamplingConfig())
        assert [a.generated for a in answers] == [3] * 16 and server.most_in_flight == 4
        engine.generate(["q"] * 8, [2] * 8, SamplingConfig())
        assert engine.pool is pool and sum(t.name.startswith("teacher-request") for t in threading.enumerate()) <= 4 * 2
    finally:
        server.close()


def test_openai_engine_answers_all_capabilities_of_a_round_together():
    server = FakeServer(slow_answer)
    try:
        engine = OpenAIEngine(server.url, "teacher", concurrency=8, retries=0)
        cfg, sampler = SamplingConfig(max_new_tokens=4, temperature=0.0, batch_size=1), PromptSampler(list(CAPS), seed=0)
        requests = [(lambda c=c: sampler.sample_one(c, 0.0), 4, 100) for c in CAPS]
        results = generate_budgeted_together(engine, requests, lambda p: 1, cfg, min_new_tokens=1)
        assert [r.generated for r in results] == [4, 4, 4] and server.most_in_flight == len(CAPS)
    finally:
        server.close()


def test_a_failing_request_fails_the_call_naming_the_url_and_the_pool_serves_the_next_call():
    calls = []

    def answer(prompt, max_tokens):
        calls.append(prompt)
        if prompt == "bad":
            raise RuntimeError("boom")  # the handler dies: the client sees the connection close
        return slow_answer(prompt, max_tokens)

    server = FakeServer(answer)
    try:
        engine = OpenAIEngine(server.url, "teacher", concurrency=2, retries=0)
        with pytest.raises(TeacherEngineError, match=f"teacher request to {server.url} failed"):
            engine.generate(["bad"] + ["ok"] * 40, [2] * 41, SamplingConfig())
        assert len(calls) < 41  # the requests not yet sent were dropped
        assert [a.generated for a in engine.generate(["ok"] * 3, [2] * 3, SamplingConfig())] == [2, 2, 2]
    finally:
        server.close()


def served_tiny_teacher(tiny_models, model="teacher") -> FakeServer:
    """A :class:`FakeServer` answering greedily with the tiny teacher and echoing its log-probabilities."""
    local = HFEngine(load_model(tiny_models["teacher"]), load_tokenizer(tiny_models["teacher"]))

    def answer(prompt, max_tokens):
        (reply,) = local.generate([prompt], [max_tokens], SamplingConfig(max_new_tokens=max_tokens, temperature=0.0))
        return reply.text, reply.generated, reply.finished

    return FakeServer(answer, lambda ids: [None, *map(float, local.reference_logprobs([(ids[:1], ids[1:])])[0])], model)


def test_probe_references_from_a_served_teacher_equal_its_log_probabilities(tiny_models):
    """The references' log-probabilities are the server's echoed ones over prompt + answer tokens; here the
    server scores with the tiny teacher, so they equal the in-process scores of the same answers."""
    tok = load_tokenizer(tiny_models["teacher"])
    local = HFEngine(load_model(tiny_models["teacher"]), tok)
    server = served_tiny_teacher(tiny_models)
    try:
        served = ProbeSuite(list(CAPS), n_items=2, use_banks=False)
        served.build_references(lambda: (OpenAIEngine(server.url, "teacher", concurrency=4, retries=0), tok), max_new_tokens=6)
    finally:
        server.close()
    in_process = ProbeSuite(list(CAPS), n_items=2, use_banks=False)
    in_process.build_references(lambda: (local, tok), max_new_tokens=6)
    assert len(served.references) == 2 * len(CAPS) and served.references.keys() == in_process.references.keys()
    for key, ref in served.references.items():
        assert ref["text"] == in_process.references[key]["text"]
        assert ref["teacher_logprob"] == pytest.approx(in_process.references[key]["teacher_logprob"], abs=1e-4)


def test_a_server_without_prompt_logprobs_is_named(tiny_models):
    server = FakeServer(slow_answer, logprobs=None)
    try:
        engine = OpenAIEngine(server.url, "teacher", retries=0)
        with pytest.raises(TeacherEngineError, match="no prompt log-probabilities.*engine_references=False"):
            engine.reference_logprobs([([1, 2], [3])])
    finally:
        server.close()


def test_engine_references_keep_a_served_teacher_out_of_process(tiny_models, tmp_path, monkeypatch):
    """Under ``engine_references`` the probe references come from the openai engine; the teacher's weights are
    never loaded here (and the reference file is named apart from the in-process one)."""
    from read_env.distill.distiller import Distiller

    server = served_tiny_teacher(tiny_models, model=tiny_models["teacher"])

    def load_student_only(path, *args):
        assert path != tiny_models["teacher"], "the served teacher was loaded in process"
        return load_model(path, *args)

    monkeypatch.setattr(models_module, "load_model", load_student_only)
    try:
        config = DistillerConfig(teacher=tiny_models["teacher"], student=tiny_models["student"], teacher_engine="openai",
                                 teacher_url=server.url, engine_references=True, probe_items=2, probe_max_new_tokens=4, eval_items=1,
                                 use_banks=False, max_new_tokens=6)
        d = Distiller(list(CAPS), config, tmp_path / "run", device="cpu")
        assert d.models._teacher is None and len(d.probes.references) == 2 * len(CAPS)
        names = [path.name for path in (tmp_path / "run").glob("probe_references_*.json")]
        assert names == [f"probe_references_{text_hash(tiny_models['teacher'] + '|openai')[:12]}.json"]
    finally:
        server.close()


def test_a_server_killed_mid_generation_fails_the_call_naming_the_url(tiny_models):
    """A real ``transformers serve`` killed by pid while requests are in flight: the client retries each request
    (``retries``), then the call raises ``TeacherEngineError`` naming the URL, dropping the unsent requests
    (an engine whose call failed serves the next one: see the test of a failing request)."""
    server, url = start_teacher_server(tiny_models["teacher"], free_port())
    engine = OpenAIEngine(url, tiny_models["teacher"], concurrency=4, retries=2, timeout_s=60)
    answered, outcome = [], {}
    answer = engine._answer
    engine._answer = lambda *args: answered.append(answer(*args)) or answered[-1]
    cfg = SamplingConfig(max_new_tokens=16, temperature=0.0)

    def generate():
        try:
            engine.generate([f"Count to {i}." for i in range(2000)], [16] * 2000, cfg)
        except TeacherEngineError as error:
            outcome["error"] = error

    worker = threading.Thread(target=generate)
    try:
        worker.start()
        while len(answered) < 8 and worker.is_alive():
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait()
        worker.join(timeout=300)
        assert not worker.is_alive(), "the call hung after the server died"
        assert f"teacher request to {url} failed (APIConnectionError" in str(outcome["error"]) and 8 <= len(answered) < 2000
    finally:
        server.kill()

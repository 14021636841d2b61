"""Teacher generation tokens/s: the in-process ``"hf"`` engine one capability at a time (ReAD-v0) vs a step's
capabilities together (``batch_capabilities``), and the ``"openai"`` engine against a real local server
(``transformers serve``) at several request concurrencies.

* ``hf``: a step of ``--gen-tokens`` generation tokens per capability for the 8 capabilities (the embedded
  demo's 6,000-token, 5-step episode gives each about 60), greedy, each capability answering its own seeded
  prompt stream: :func:`~read_env.distill.generation.generate_budgeted` per capability vs one
  :func:`~read_env.distill.generation.generate_budgeted_together`, interleaved ``--repeats`` times (machine
  load hits both alike); it checks that both give the same answers. In bf16 too where the device computes it
  natively (``teacher_dtype="auto"``: CUDA, a CPU with AMX).
* ``openai``: ``transformers serve TEACHER --device cpu`` started here, then ``OpenAIEngine.generate`` of
  ``--requests-per-slot`` x concurrency prompts capped at ``--max-new-tokens``; tokens/s = the server's
  counted completion tokens / wall time.

Every figure is printed with the command that measured it. Usage::

    python benchmarks/teacher_throughput.py                    # the embedded SmolLM2-135M teacher
    python benchmarks/teacher_throughput.py --tiny --threads 1 # a tiny random teacher (the test's settings)
    python benchmarks/teacher_throughput.py --skip-hf --serve-args=--continuous-batching   # the server batches requests
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from read_env.distill.assets import build_tiny_llama, ensure_default_teacher, load_model, load_tokenizer
from read_env.distill.engines.hf import HFEngine
from read_env.distill.engines.openai_server import OpenAIEngine
from read_env.distill.generation import SamplingConfig, chat_text, generate_budgeted, generate_budgeted_together
from read_env.distill.models import native_bf16
from read_env.distill.prompts import CAPABILITIES, PromptSampler


def step(engine, tok, gen_tokens: int, cfg: SamplingConfig, together: bool):
    """One step's generation for every capability from its own prompt stream: (results, seconds)."""
    samplers = {c: PromptSampler([c], seed=index) for index, c in enumerate(CAPABILITIES)}
    plen = lambda p: len(tok(chat_text(tok, p.text), add_special_tokens=False)["input_ids"])
    requests = [(lambda c=c: samplers[c].sample_one(c, 0.5), gen_tokens, 10 * gen_tokens) for c in CAPABILITIES]
    start = time.perf_counter()
    if together:
        results = generate_budgeted_together(engine, requests, plen, cfg, min_new_tokens=8)
    else:
        results = [generate_budgeted(engine, *request, plen, cfg, min_new_tokens=8) for request in requests]
    return results, time.perf_counter() - start


def hf_figures(teacher: Path, args, command: str) -> None:
    tok = load_tokenizer(teacher)
    cfg = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=16)
    dtypes = [torch.float32] + ([torch.bfloat16] if native_bf16(torch.device("cpu")) else [])
    for dtype in dtypes:
        engine = HFEngine(load_model(teacher, "cpu", dtype).eval(), tok)
        tokens, seconds, answers = {False: 0, True: 0}, {False: 0.0, True: 0.0}, {}
        for _ in range(args.repeats):
            for together in (False, True):
                results, wall = step(engine, tok, args.gen_tokens, cfg, together)
                tokens[together] += sum(r.generated for r in results)
                seconds[together] += wall
                answers[together] = [[c.token_ids for c in r.completions] for r in results]
        rate = {together: tokens[together] / seconds[together] for together in (False, True)}
        name = str(dtype).removeprefix("torch.")
        print(f"hf {name}, one capability at a time (ReAD-v0): {rate[False]:.1f} tokens/s   [{command}]")
        print(f"hf {name}, capabilities together:             {rate[True]:.1f} tokens/s ({rate[True] / rate[False]:.2f}x), "
              f"same answers: {answers[True] == answers[False]}   [{command}]")
    if len(dtypes) == 1:
        print(f"hf bfloat16: not measured, this CPU ({torch.backends.cpu.get_cpu_capability()}) has no AMX")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(teacher: Path, threads: int, serve_args: list[str]) -> tuple[subprocess.Popen, str, str]:
    """``transformers serve`` of ``teacher`` (and ``serve_args``) on a free port: (process, URL, command) once it answers."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(teacher), "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu", *serve_args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, deadline = f"http://127.0.0.1:{port}/v1", time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read()
            return server, url, shlex.join(command)
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                raise RuntimeError(f"{shlex.join(command)} did not start")
            time.sleep(0.5)


def server_figures(teacher: Path, args, command: str) -> None:
    server, url, serve = start_server(teacher, args.threads, shlex.split(args.serve_args))
    try:
        sampler = PromptSampler(list(CAPABILITIES), seed=0)
        cfg = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.0)
        OpenAIEngine(url, str(teacher), 1, 0).generate(["Say hi."], [2], cfg)  # the server loads the model on first use
        for concurrency in args.concurrency:
            engine = OpenAIEngine(url, str(teacher), concurrency, retries=0)
            count = args.requests_per_slot * concurrency
            prompts = [sampler.sample_one(CAPABILITIES[i % len(CAPABILITIES)], 0.5).text for i in range(count)]
            start = time.perf_counter()
            answers = engine.generate(prompts, [args.max_new_tokens] * len(prompts), cfg)
            wall = time.perf_counter() - start
            print(f"openai concurrency {concurrency}: {sum(a.generated for a in answers) / wall:.1f} tokens/s "
                  f"({len(prompts)} requests, {wall:.1f} s)   [{command}; server: {serve}]")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="a tiny random teacher instead of SmolLM2-135M")
    ap.add_argument("--gen-tokens", type=int, default=60, help="generation tokens per capability in the hf step")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=lambda text: [int(c) for c in text.split(",")], default=[1, 8, 64])
    ap.add_argument("--requests-per-slot", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads here and in the server (0: torch default)")
    ap.add_argument("--serve-args", default="", help="more arguments of transformers serve, e.g. --continuous-batching")
    ap.add_argument("--skip-hf", action="store_true", help="measure the openai engine only")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/teacher_throughput.py", *sys.argv[1:]])
    teacher = build_tiny_llama(Path(tempfile.mkdtemp()) / "teacher", num_layers=2) if args.tiny else ensure_default_teacher()
    print(f"teacher={teacher} threads={torch.get_num_threads()} load average={os.getloadavg()[0]:.2f}")
    if not args.skip_hf:
        hf_figures(teacher, args, command)
    server_figures(teacher, args, command)


if __name__ == "__main__":
    main()
